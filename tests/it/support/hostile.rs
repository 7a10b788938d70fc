//! A hostile registry: a small server of our own that speaks enough of the
//! distribution API to serve an image from memory, for the answers no real
//! registry gives (huge records, lying sizes, escape sequences, drips,
//! silence, redirect loops). Each test passes a `special` handler that may
//! answer any request first; everything it does not answer is served
//! plainly. Every request is logged with the address it reached and the
//! `Authorization` it carried.

use super::http::{serve_on, serve_tls_on, Request, Response, Server};
use super::image::{sha256, TestImage};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What the registry holds.
#[derive(Clone, Default)]
pub struct Content {
    /// Tag or digest -> (media type, bytes).
    pub manifests: HashMap<String, (String, Arc<Vec<u8>>)>,
    /// Digest -> bytes.
    pub blobs: HashMap<String, Arc<Vec<u8>>>,
}

impl Content {
    /// `img` under `tag` (and its digest).
    pub fn image(img: &TestImage, tag: &str) -> Content {
        let mut c = Content::default();
        c.add_image(img, tag);
        c
    }

    pub fn add_image(&mut self, img: &TestImage, tag: &str) {
        let t = img.format.manifest_type();
        self.manifest(tag, t, img.manifest.clone());
        self.manifest(&img.manifest_digest, t, img.manifest.clone());
        self.blob(img.config.clone());
        for l in &img.layers {
            self.blob(l.blob.clone());
        }
    }

    pub fn manifest(&mut self, reference: &str, media_type: &str, bytes: Vec<u8>) {
        self.manifests.insert(
            reference.to_string(),
            (media_type.to_string(), Arc::new(bytes)),
        );
    }

    /// Store a blob under its sha256; returns the digest.
    pub fn blob(&mut self, bytes: Vec<u8>) -> String {
        let d = sha256(&bytes);
        self.blobs.insert(d.clone(), Arc::new(bytes));
        d
    }
}

/// A request as it arrived: which server, what, with which Authorization.
#[derive(Clone, Debug)]
pub struct Seen {
    pub server: String,
    pub method: String,
    pub target: String,
    pub auth: Option<String>,
}

pub type Log = Arc<Mutex<Vec<Seen>>>;

pub struct Hostile {
    pub server: Server,
    pub log: Log,
}

impl Hostile {
    /// `127.0.0.1:PORT`: a loopback name, so plain HTTP.
    pub fn host(&self) -> String {
        self.server.addr.to_string()
    }

    /// Requests whose target contains `part`.
    pub fn count(&self, part: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.target.contains(part))
            .count()
    }
}

/// Start on 127.0.0.1, answering with `special` first.
pub async fn start<F>(content: Content, special: F) -> Hostile
where
    F: Fn(&Request) -> Option<Response> + Send + Sync + 'static,
{
    start_on(
        "127.0.0.1",
        content,
        Arc::new(Mutex::new(Vec::new())),
        special,
    )
    .await
}

/// As [`start`], over HTTPS (the test CA's certificate).
pub async fn start_tls<F>(content: Content, special: F) -> Hostile
where
    F: Fn(&Request) -> Option<Response> + Send + Sync + 'static,
{
    start_with(
        "127.0.0.1",
        true,
        content,
        Arc::new(Mutex::new(Vec::new())),
        special,
    )
    .await
}

/// Start on `ip`, logging into `log` (shared by several servers).
pub async fn start_on<F>(ip: &str, content: Content, log: Log, special: F) -> Hostile
where
    F: Fn(&Request) -> Option<Response> + Send + Sync + 'static,
{
    start_with(ip, false, content, log, special).await
}

async fn start_with<F>(ip: &str, tls: bool, content: Content, log: Log, special: F) -> Hostile
where
    F: Fn(&Request) -> Option<Response> + Send + Sync + 'static,
{
    let content = Arc::new(content);
    let special = Arc::new(special);
    let name = Arc::new(Mutex::new(String::new()));
    let (l, n) = (log.clone(), name.clone());
    let handler = move |req: Request| {
        l.lock().unwrap().push(Seen {
            server: n.lock().unwrap().clone(),
            method: req.method.clone(),
            target: req.target.clone(),
            auth: req.header("authorization").map(str::to_string),
        });
        let answer = special(&req).unwrap_or_else(|| plain(&content, &req));
        async move { answer }
    };
    let server = match tls {
        true => serve_tls_on(ip, handler).await,
        false => serve_on(ip, handler).await,
    };
    *name.lock().unwrap() = server.addr.to_string();
    Hostile { server, log }
}

/// What a plain registry answers.
pub fn plain(content: &Content, req: &Request) -> Response {
    let path = req.path();
    if path == "/v2/" || path == "/v2" {
        return Response::new(200, "{}").header("Docker-Distribution-API-Version", "registry/2.0");
    }
    if let Some((_, reference)) = path.rsplit_once("/manifests/") {
        return match content.manifests.get(reference) {
            Some((t, bytes)) => Response::new(200, bytes.to_vec())
                .header("Content-Type", t)
                .header("Docker-Content-Digest", &sha256(bytes)),
            None => not_found("MANIFEST_UNKNOWN"),
        };
    }
    if let Some((_, digest)) = path.rsplit_once("/blobs/") {
        let Some(bytes) = content.blobs.get(digest) else {
            return not_found("BLOB_UNKNOWN");
        };
        let from = req
            .header("range")
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.split('-').next())
            .and_then(|s| s.parse::<usize>().ok());
        return match from {
            Some(start) if start < bytes.len() => Response::new(206, bytes[start..].to_vec())
                .header(
                    "Content-Range",
                    &format!("bytes {start}-{}/{}", bytes.len() - 1, bytes.len()),
                ),
            _ => Response::new(200, bytes.to_vec()),
        };
    }
    not_found("NAME_UNKNOWN")
}

fn not_found(code: &str) -> Response {
    Response::new(
        404,
        format!(r#"{{"errors":[{{"code":"{code}","message":"unknown"}}]}}"#),
    )
}

/// A manifest of an image whose config and layers are given as raw
/// descriptors (sizes and digests may lie), OCI types.
pub fn manifest_of(config: serde_json::Value, layers: Vec<serde_json::Value>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": layers,
    }))
    .unwrap()
}

/// A gzip stream of many members: `head` (compressed once) then `repeat`
/// members each holding `unit` bytes of `byte` — gigabytes of output from
/// a few megabytes, made in milliseconds (the decoder reads every member).
pub fn gzip_bomb(head: &[u8], byte: u8, unit: usize, repeat: usize, tail: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let gz = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let member = gz(&vec![byte; unit]);
    let mut out = gz(head);
    for _ in 0..repeat {
        out.extend_from_slice(&member);
    }
    out.extend(gz(tail));
    out
}
