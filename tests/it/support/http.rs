//! A minimal HTTP/1.1 server for the token server and the fault proxy:
//! one request per connection; request bodies up to 64 MiB are read (the
//! proxy forwards uploads).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// The body, when a Content-Length announced one.
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as `application/x-www-form-urlencoded` pairs.
    pub fn form(&self, key: &str) -> Option<String> {
        reqwest::Url::parse(&format!(
            "http://x/?{}",
            String::from_utf8_lossy(&self.body)
        ))
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    pub fn query(&self, key: &str) -> Vec<String> {
        let Some((_, q)) = self.target.split_once('?') else {
            return vec![];
        };
        reqwest::Url::parse(&format!("http://x/?{q}"))
            .unwrap()
            .query_pairs()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
            .collect()
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send the body at about this many bytes per second.
    pub throttle: Option<u64>,
    /// Send only this many bytes of the body, then close (a reset).
    pub cut_at: Option<usize>,
    /// Send this many bytes of the body, then nothing (a stalled body; the
    /// connection stays open until the client gives up).
    pub stall_at: Option<usize>,
    /// Announce no length: the body ends when the connection closes.
    pub unsized_body: bool,
    /// Send the body one byte at a time, this long apart (a drip).
    pub drip: Option<std::time::Duration>,
    /// Never answer at all: the connection stays open, silent, until the
    /// client gives up.
    pub hang: bool,
    /// `Transfer-Encoding: chunked`, no Content-Length.
    pub chunked: bool,
    /// Wait this long before answering at all.
    pub delay: Option<std::time::Duration>,
    /// Close the connection without a word (a link cut mid-request).
    pub abort: bool,
}

impl Response {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![],
            body: body.into(),
            throttle: None,
            cut_at: None,
            stall_at: None,
            unsized_body: false,
            drip: None,
            hang: false,
            chunked: false,
            delay: None,
            abort: false,
        }
    }

    /// The connection closed, no answer.
    pub fn abort() -> Response {
        Response {
            abort: true,
            ..Response::new(200, "")
        }
    }

    /// An answer that never comes.
    pub fn hang() -> Response {
        Response {
            hang: true,
            ..Response::new(200, "")
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Response {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
}

/// Stops the server when dropped.
pub struct Server {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve<F, Fut>(handler: F) -> Server
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send,
{
    serve_on("127.0.0.1", handler).await
}

/// As [`serve`], on another loopback address (`127.0.0.2`: another host).
pub async fn serve_on<F, Fut>(ip: &str, handler: F) -> Server
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send,
{
    serve_with(ip, None, handler).await
}

/// As [`serve_on`], over TLS with the test CA's server certificate (valid
/// for 127.0.0.1-3): `https://IP:PORT`.
pub async fn serve_tls_on<F, Fut>(ip: &str, handler: F) -> Server
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send,
{
    serve_with(ip, Some(tls_acceptor()), handler).await
}

fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let c = super::certs::get();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&c.server_pem)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(&c.server_key).unwrap();
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

async fn serve_with<F, Fut>(ip: &str, tls: Option<tokio_rustls::TlsAcceptor>, handler: F) -> Server
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send,
{
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(handler);
    let task = tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    None => answer(sock, handler).await,
                    Some(t) => {
                        if let Ok(s) = t.accept(sock).await {
                            answer(s, handler).await
                        }
                    }
                }
            });
        }
    });
    Server { addr, task }
}

/// Read one request from `sock` and write the handler's answer.
async fn answer<S, F, Fut>(mut sock: S, handler: Arc<F>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    F: Fn(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let Some(req) = read_head(&mut sock).await else {
        return;
    };
    let head_only = req.method == "HEAD";
    let resp = handler(req).await;
    if resp.abort {
        return;
    }
    if let Some(d) = resp.delay {
        tokio::time::sleep(d).await;
    }
    if resp.hang {
        let mut buf = [0u8; 64];
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(300), sock.read(&mut buf)).await;
        return;
    }
    let mut out = format!("HTTP/1.1 {} X\r\n", resp.status);
    let mut has_len = false;
    for (k, v) in &resp.headers {
        if k.eq_ignore_ascii_case("content-length") {
            if !head_only {
                continue;
            }
            has_len = true;
        }
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if resp.chunked && !head_only {
        out.push_str("Transfer-Encoding: chunked\r\n");
    } else if !has_len && !resp.unsized_body {
        out.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    }
    out.push_str("Connection: close\r\n\r\n");
    let _ = sock.write_all(out.as_bytes()).await;
    if head_only {
        let _ = sock.shutdown().await;
        return;
    }
    if let Some(n) = resp.stall_at {
        let _ = sock.write_all(&resp.body[..n.min(resp.body.len())]).await;
        let _ = sock.flush().await;
        // Hold the connection until the client closes it.
        let mut buf = [0u8; 64];
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(300), sock.read(&mut buf)).await;
        return;
    }
    if let Some(n) = resp.cut_at {
        let _ = sock.write_all(&resp.body[..n.min(resp.body.len())]).await;
        let _ = sock.flush().await;
        return;
    }
    if let Some(pause) = resp.drip {
        for b in &resp.body {
            if sock.write_all(&[*b]).await.is_err() || sock.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(pause).await;
        }
        let _ = sock.shutdown().await;
        return;
    }
    let chunk = 64 * 1024;
    let pause = resp
        .throttle
        .map(|rate| std::time::Duration::from_secs_f64(chunk as f64 / rate as f64));
    for part in resp.body.chunks(chunk) {
        let written = match resp.chunked {
            true => {
                let head = format!("{:x}\r\n", part.len());
                sock.write_all(head.as_bytes()).await.is_ok()
                    && sock.write_all(part).await.is_ok()
                    && sock.write_all(b"\r\n").await.is_ok()
            }
            false => sock.write_all(part).await.is_ok(),
        };
        if !written {
            return;
        }
        if let Some(p) = pause {
            tokio::time::sleep(p).await;
        }
    }
    if resp.chunked {
        let _ = sock.write_all(b"0\r\n\r\n").await;
    }
    let _ = sock.shutdown().await;
}

async fn read_head<S: tokio::io::AsyncRead + Unpin>(sock: &mut S) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 64 << 10 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if !buf.is_empty() && !buf[0].is_ascii_uppercase() {
            return None;
        }
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut req = Request {
        method,
        target,
        headers,
        body: buf[end..].to_vec(),
    };
    let len: usize = req
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
        .min(64 << 20);
    while req.body.len() < len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        req.body.extend_from_slice(&chunk[..n]);
    }
    Some(req)
}
