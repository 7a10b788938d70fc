//! Writing to a registry (the distribution spec's push): a blob the
//! repository has is skipped (`HEAD`), one another repository of the
//! registry has is mounted (`POST ?mount=&from=`; a `202` is an upload
//! session instead), any other is uploaded: `POST`, then one `PUT
//! ?digest=` carrying a small blob, or `PATCH`es of `chunk` bytes (at least
//! `OCI-Chunk-Min-Length`, following the `Range` each answer reports) and
//! an empty closing `PUT`. A failed request asks the registry where the
//! upload stands (`GET` on its URL) and goes on from there; an upload the
//! registry dropped starts over. The bytes are hashed as they are read: a
//! blob that does not match its digest is never committed.
//! Manifests are `PUT` byte for byte.

use super::redirect::{Payload, Taken};
use super::send::Req;
use super::{RegistryClient, RegistryError, Tries};
use crate::cache::BlobSource;
use crate::oci::digest::{Digest, Verifier};
use crate::progress::{BlobState, Reporter};
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Method, Response, StatusCode, Url};
use std::sync::{Arc, Mutex};

/// Bytes read from a source per piece of a request body.
const PIECE: usize = 256 << 10;

/// The scope a push to `repository` needs.
pub fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

/// What became of one blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pushed {
    /// The repository had it.
    Present,
    /// Mounted from another repository of the registry.
    Mounted,
    Uploaded,
}

/// One blob to push.
pub struct Upload<'a> {
    pub repository: &'a str,
    pub digest: &'a Digest,
    pub size: u64,
    pub source: &'a BlobSource,
    /// Repositories of the same registry that may hold it, tried in order.
    pub mount_from: &'a [String],
    /// Blobs up to this size go in one request; bigger ones in PATCHes of
    /// this size.
    pub chunk: u64,
    pub reporter: &'a dyn Reporter,
}

/// The bytes read so far, hashed in order: complete only when one pass
/// read the blob from its first byte to its last. The last piece of a
/// pass is sent only once the whole matches the digest, so a wrong blob
/// never reaches the registry whole.
struct Hashed {
    next: u64,
    verifier: Option<Verifier>,
    /// What the bytes hashed to, when not to the digest.
    mismatch: Option<Digest>,
}

/// An upload session: where to send the next bytes, and how many the
/// registry holds.
struct Session {
    url: Url,
    at: u64,
}

impl RegistryClient {
    /// `BASE/v2/PATH` (pushes go to the registry itself, never a mirror).
    fn push_url(&self, path: &str) -> String {
        format!("{}/v2/{path}", self.base)
    }

    /// Whether `repository` has blob `digest` (`HEAD`).
    pub async fn blob_present(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let url = self.push_url(&format!("{repository}/blobs/{digest}"));
        let req = Req::to(Method::HEAD, &url, &push_scope(repository));
        let what = format!("blob {digest} in {}/{repository}", self.registry);
        let tries = Tries::new(self.retry.attempts);
        match self.send(repository, &what, &req, &tries).await {
            Ok(_) => Ok(true),
            Err(RegistryError::NotFound { .. }) => Ok(false),
            Err(e) => Err(push_refused(e, repository)),
        }
    }

    /// Before any byte is sent: `Ok(pushed)` when the repository has the
    /// blob or it was mounted, else the session a mount opened instead
    /// (`None`: none did).
    async fn prelude(
        &self,
        repository: &str,
        digest: &Digest,
        mount_from: &[String],
    ) -> Result<Result<Pushed, Option<Session>>, RegistryError> {
        if self.blob_present(repository, digest).await? {
            return Ok(Ok(Pushed::Present));
        }
        self.mount_any(repository, digest, mount_from).await
    }

    /// Mount `digest` from the first of `mount_from` that has it: `Ok`
    /// when mounted, else the session a mount opened instead (`None`:
    /// none did).
    async fn mount_any(
        &self,
        repository: &str,
        digest: &Digest,
        mount_from: &[String],
    ) -> Result<Result<Pushed, Option<Session>>, RegistryError> {
        for from in mount_from.iter().filter(|f| *f != repository) {
            match self.mount(repository, digest, from).await {
                Ok(None) => return Ok(Ok(Pushed::Mounted)),
                Ok(Some(s)) => return Ok(Err(Some(s))),
                Err(e) => self.notes.say(&format!(
                    "{}: no mount of {digest} from {from}: {e}",
                    self.registry
                )),
            }
        }
        Ok(Err(None))
    }

    /// Push one blob whose bytes `body` streams as they arrive (a copy
    /// uploading what downloads): skipped or mounted as a whole blob
    /// would be, else one PATCH of the whole blob and the closing PUT. One
    /// try: a failure is for the caller to repair from a whole copy.
    pub async fn push_streamed(
        &self,
        repository: &str,
        digest: &Digest,
        size: u64,
        mount_from: &[String],
        body: Payload,
    ) -> Result<Pushed, RegistryError> {
        let session = match self.prelude(repository, digest, mount_from).await? {
            Ok(pushed) => return Ok(pushed),
            Err(s) => s,
        };
        let s = match session {
            Some(s) => s,
            None => self.start_upload(repository).await?,
        };
        let scope = push_scope(repository);
        let what = format!("upload of {digest}");
        let mut url = s.url;
        if size > 0 {
            let req = Req::to(Method::PATCH, url.as_str(), &scope)
                .header(CONTENT_RANGE, &format!("0-{}", size - 1))
                .body(body);
            let resp = self.send(repository, &what, &req, &Tries::new(1)).await?;
            if held(&resp).is_some_and(|h| h != size) {
                return Err(self.bad_upload(format!("the registry holds part of {digest}")));
            }
            url = self.location(&resp)?;
        }
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let req = Req::to(Method::PUT, url.as_str(), &scope).body(empty());
        self.send(repository, &what, &req, &Tries::new(1)).await?;
        Ok(Pushed::Uploaded)
    }

    /// Push one blob the repository lacks (the caller asked
    /// [`Self::blob_present`]): mounted or uploaded.
    pub async fn push_blob(&self, up: &Upload<'_>) -> Result<Pushed, RegistryError> {
        let mut session = match self
            .mount_any(up.repository, up.digest, up.mount_from)
            .await?
        {
            Ok(pushed) => return Ok(pushed),
            Err(s) => s,
        };
        let tries = Tries::new(self.retry.attempts);
        let hashed = Arc::new(Mutex::new(Hashed {
            next: 0,
            verifier: Some(Verifier::of(up.digest.algorithm())),
            mismatch: None,
        }));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let s = match session.take() {
                Some(s) => s,
                None => self.start_upload(up.repository).await?,
            };
            let sent = self.send_blob(up, s, &hashed, &tries).await;
            self.check_read(up, &hashed)?;
            match sent {
                Ok(()) => return Ok(Pushed::Uploaded),
                // A closing PUT whose answer was lost, or slow to come (a
                // commit on object storage): the blob may be in.
                Err(e)
                    if e.is_transient() && self.blob_present(up.repository, up.digest).await? =>
                {
                    let _ = e;
                    return Ok(Pushed::Uploaded);
                }
                Err(e) if restartable(&e) && tries.take() > 0 => {
                    self.notes.warn(&format!(
                        "{}: upload of {} failed ({e}); starting it over",
                        self.registry, up.digest
                    ));
                    up.reporter.blob_state(up.digest, BlobState::StartingOver);
                    tokio::time::sleep(self.retry.backoff(attempt)).await;
                }
                Err(e) => return Err(push_refused(e, up.repository)),
            }
        }
    }

    /// `POST ?mount=&from=`: `None` when mounted, else the upload session
    /// the registry opened instead.
    async fn mount(
        &self,
        repository: &str,
        digest: &Digest,
        from: &str,
    ) -> Result<Option<Session>, RegistryError> {
        let mut url = reqwest::Url::parse(&self.push_url(&format!("{repository}/blobs/uploads/")))
            .map_err(|e| self.bad_upload(format!("upload URL: {e}")))?;
        url.query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", from);
        let url = url.to_string();
        let scope = format!("{} repository:{from}:pull", push_scope(repository));
        let req = Req::to(Method::POST, &url, &scope).body(empty());
        let what = format!("mount of {digest} from {from}");
        let resp = self.send(repository, &what, &req, &Tries::new(1)).await?;
        if resp.status() == StatusCode::CREATED {
            return Ok(None);
        }
        self.learn_chunk_min(&resp);
        Ok(Some(Session {
            url: self.location(&resp)?,
            at: 0,
        }))
    }

    /// `POST`: a new upload session.
    async fn start_upload(&self, repository: &str) -> Result<Session, RegistryError> {
        let url = self.push_url(&format!("{repository}/blobs/uploads/"));
        let req = Req::to(Method::POST, &url, &push_scope(repository)).body(empty());
        let what = format!("upload to {}/{repository}", self.registry);
        let tries = Tries::new(self.retry.attempts);
        let resp = self.send(repository, &what, &req, &tries).await;
        let resp = resp.map_err(|e| push_refused(e, repository))?;
        self.learn_chunk_min(&resp);
        Ok(Session {
            url: self.location(&resp)?,
            at: 0,
        })
    }

    /// Send the blob's bytes from where the session stands; a request that
    /// fails asks the registry where the upload stands and goes on from
    /// there (`Err`: the session is lost or the failure is final).
    async fn send_blob(
        &self,
        up: &Upload<'_>,
        mut s: Session,
        hashed: &Arc<Mutex<Hashed>>,
        tries: &Tries,
    ) -> Result<(), RegistryError> {
        let min = self.chunk_min.load(std::sync::atomic::Ordering::Relaxed);
        let chunk = up.chunk.max(min).max(1);
        let mut attempt = 0;
        loop {
            let step = if s.at == 0 && up.size <= chunk {
                self.put_blob(up, &s, up.size, hashed).await.map(|_| None)
            } else if s.at >= up.size {
                self.put_blob(up, &s, 0, hashed).await.map(|_| None)
            } else {
                let n = (up.size - s.at).min(chunk);
                self.patch(up, &s, n, hashed).await.map(Some)
            };
            match step {
                Ok(None) => {
                    up.reporter
                        .blob_progress(up.digest, up.size.saturating_sub(s.at));
                    return Ok(());
                }
                Ok(Some(next)) => {
                    up.reporter
                        .blob_progress(up.digest, next.at.saturating_sub(s.at));
                    s = next;
                }
                Err(e) if e.is_transient() && tries.take() > 0 => {
                    self.check_read(up, hashed)?;
                    attempt += 1;
                    tokio::time::sleep(self.retry.backoff(attempt)).await;
                    s = self.upload_status(up, &s.url).await.map_err(|_| e)?;
                    self.notes.warn(&format!(
                        "{}: upload of {} interrupted; the registry holds {} bytes, going on from there",
                        self.registry, up.digest, s.at
                    ));
                    up.reporter
                        .blob_state(up.digest, BlobState::Resuming { from: s.at });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `PATCH` `n` bytes from the session's offset; the session after it.
    async fn patch(
        &self,
        up: &Upload<'_>,
        s: &Session,
        n: u64,
        hashed: &Arc<Mutex<Hashed>>,
    ) -> Result<Session, RegistryError> {
        let body = body_of(up, s.at, n, hashed);
        let req = Req::to(Method::PATCH, s.url.as_str(), &push_scope(up.repository))
            .header(CONTENT_RANGE, &format!("{}-{}", s.at, s.at + n - 1))
            .body(body);
        let what = format!("upload of {}", up.digest);
        let resp = self
            .send(up.repository, &what, &req, &Tries::new(1))
            .await?;
        self.learn_chunk_min(&resp);
        let at = match held(&resp) {
            // No progress at all is not believed (a registry whose Range
            // does not follow): the closing PUT's digest check decides.
            Some(end) if end <= s.at => s.at + n,
            Some(end) if end <= s.at + n => end,
            Some(end) => {
                return Err(self.bad_upload(format!(
                    "the registry says it holds {end} bytes of {} after {} were sent",
                    up.digest,
                    s.at + n
                )))
            }
            None => s.at + n,
        };
        Ok(Session {
            url: self.location(&resp)?,
            at,
        })
    }

    /// The closing `PUT ?digest=`, carrying the last `n` bytes (all of a
    /// small blob, none after PATCHes). The bytes must have hashed to the
    /// digest: a source that does not match is never committed.
    async fn put_blob(
        &self,
        up: &Upload<'_>,
        s: &Session,
        n: u64,
        hashed: &Arc<Mutex<Hashed>>,
    ) -> Result<(), RegistryError> {
        let mut url = s.url.clone();
        url.query_pairs_mut()
            .append_pair("digest", &up.digest.to_string());
        self.check_read(up, hashed)?;
        let body = if n == 0 {
            empty()
        } else {
            body_of(up, s.at, n, hashed)
        };
        let req = Req::to(Method::PUT, url.as_str(), &push_scope(up.repository)).body(body);
        let what = format!("upload of {}", up.digest);
        self.send(up.repository, &what, &req, &Tries::new(1))
            .await?;
        Ok(())
    }

    /// `Err` once the bytes read in one pass did not hash to the digest
    /// (an upload resumed midway is checked by the registry alone).
    fn check_read(
        &self,
        up: &Upload<'_>,
        hashed: &Arc<Mutex<Hashed>>,
    ) -> Result<(), RegistryError> {
        let h = hashed.lock().unwrap_or_else(|e| e.into_inner());
        match &h.mismatch {
            Some(found) => Err(RegistryError::DigestMismatch {
                registry: self.registry.clone(),
                what: format!(
                    "blob {} as read from {}; nothing was pushed under its name",
                    up.digest,
                    up.source.name().display()
                ),
                expected: up.digest.to_string(),
                found: found.clone(),
            }),
            None => Ok(()),
        }
    }

    /// `GET` on an upload: where it stands.
    async fn upload_status(&self, up: &Upload<'_>, url: &Url) -> Result<Session, RegistryError> {
        let req = Req::to(Method::GET, url.as_str(), &push_scope(up.repository));
        let what = format!("upload status of {}", up.digest);
        let tries = Tries::new(self.retry.attempts);
        let resp = self.send(up.repository, &what, &req, &tries).await?;
        let at = held(&resp).unwrap_or(0).min(up.size);
        let url = self.location(&resp).unwrap_or_else(|_| url.clone());
        Ok(Session { url, at })
    }

    /// `PUT` a manifest byte for byte under `reference` (a tag or its
    /// digest); the digest the registry reports must be `digest`.
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &bytes::Bytes,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        let url = self.push_url(&format!("{repository}/manifests/{reference}"));
        let mut req = Req::to(Method::PUT, &url, &push_scope(repository))
            .body(Payload::bytes("application/octet-stream", bytes.clone()));
        req = req.header(CONTENT_TYPE, media_type);
        let what = format!("manifest {}/{repository}:{reference}", self.registry);
        let tries = Tries::new(self.retry.attempts);
        let resp = self.send(repository, &what, &req, &tries).await;
        let resp = resp.map_err(|e| push_refused(e, repository))?;
        let reported = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        match reported {
            Some(r) if r != *digest => Err(RegistryError::DigestMismatch {
                registry: self.registry.clone(),
                what: format!("{what} as stored"),
                expected: digest.to_string(),
                found: r,
            }),
            _ => Ok(()),
        }
    }

    /// The `Location` of an answer, resolved against its URL. Never from
    /// HTTPS down to plain HTTP (the layer bytes would go in clear); on
    /// another origin it gets no credentials, as every request.
    fn location(&self, resp: &Response) -> Result<Url, RegistryError> {
        let loc = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| self.bad_upload("an upload answer without Location".into()))?;
        let url = resp.url().join(loc).map_err(|e| {
            self.bad_upload(format!("upload Location {}: {e}", super::shown_url(loc)))
        })?;
        if !matches!(url.scheme(), "http" | "https")
            || (resp.url().scheme() == "https" && url.scheme() == "http")
        {
            return Err(self.bad_upload(format!(
                "upload Location {} leaves HTTPS; refused",
                super::shown_url(url.as_str())
            )));
        }
        Ok(url)
    }

    /// `OCI-Chunk-Min-Length`: PATCHes are at least this long from now on.
    fn learn_chunk_min(&self, resp: &Response) {
        if let Some(n) = resp
            .headers()
            .get("oci-chunk-min-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            self.chunk_min
                .fetch_max(n.min(1 << 30), std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn bad_upload(&self, detail: String) -> RegistryError {
        RegistryError::BadResponse {
            registry: self.registry.clone(),
            detail,
        }
    }
}

/// How many bytes an upload answer says the registry holds (`Range: 0-E`).
/// `0-0` is taken for none: distribution says it for an empty upload (and
/// for one byte, which then costs a fresh start, not a wrong offset).
fn held(resp: &Response) -> Option<u64> {
    let v = resp.headers().get(RANGE)?.to_str().ok()?;
    let v = v.trim().trim_start_matches("bytes=");
    let (start, end) = v.split_once('-')?;
    let (start, end): (u64, u64) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
    match (start, end) {
        (0, 0) => Some(0),
        (0, e) => e.checked_add(1),
        _ => None,
    }
}

fn empty() -> Payload {
    Payload::bytes("application/octet-stream", bytes::Bytes::new())
}

/// `n` bytes of the blob from `at`, read by a blocking thread as the
/// request sends them, hashed when they continue the bytes hashed so far.
fn body_of(up: &Upload<'_>, at: u64, n: u64, hashed: &Arc<Mutex<Hashed>>) -> Payload {
    let source = up.source.clone();
    let hashed = hashed.clone();
    let (digest, size) = (up.digest.clone(), up.size);
    let taken = Taken::default();
    let touch = taken.clone();
    Payload::stream("application/octet-stream", n, taken, move || {
        let touch = touch.clone();
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
        let (source, hashed, digest) = (source.clone(), hashed.clone(), digest.clone());
        tokio::task::spawn_blocking(move || {
            let piece = Piece {
                at,
                n,
                size,
                digest: &digest,
            };
            if let Err(e) = read_into(&source, &piece, &hashed, &tx) {
                let _ = tx.blocking_send(Err(e));
            }
        });
        reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, move |mut rx| {
            let touch = touch.clone();
            async move {
                let piece = rx.recv().await?;
                touch.touch();
                Some((piece, rx))
            }
        }))
    })
}

/// The bytes one request body carries: `n` from `at` of a blob of `size`.
struct Piece<'a> {
    at: u64,
    n: u64,
    size: u64,
    digest: &'a Digest,
}

/// Read the piece into `tx`; the last read is held back until a pass that
/// read the whole blob is known to match its digest (else the body ends in
/// an error, and the request with it).
fn read_into(
    source: &BlobSource,
    p: &Piece<'_>,
    hashed: &Mutex<Hashed>,
    tx: &tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
) -> std::io::Result<()> {
    use std::io::{Read, Seek};
    let (at, n) = (p.at, p.n);
    let mut r = source.open()?;
    r.seek(std::io::SeekFrom::Start(at))?;
    let mut r = r.take(n);
    let mut pos = at;
    let mut held: Option<bytes::Bytes> = None;
    loop {
        let mut buf = vec![0u8; PIECE];
        let got = r.read(&mut buf)?;
        if got == 0 {
            break;
        }
        buf.truncate(got);
        hash_in_order(hashed, pos, &buf);
        pos += got as u64;
        if let Some(prev) = held.replace(buf.into()) {
            if tx.blocking_send(Ok(prev)).is_err() {
                return Ok(());
            }
        }
    }
    if pos == p.size {
        verify_pass(hashed, p.size, p.digest)?;
    }
    if let Some(last) = held {
        let _ = tx.blocking_send(Ok(last));
    }
    if pos != at + n {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!(
                "{} ends at byte {pos}, before {}",
                source.name().display(),
                at + n
            ),
        ));
    }
    Ok(())
}

/// Hash `buf` (at `pos`) when it continues what was hashed.
fn hash_in_order(hashed: &Mutex<Hashed>, pos: u64, buf: &[u8]) {
    let mut h = hashed.lock().unwrap_or_else(|e| e.into_inner());
    if h.next == pos {
        if let Some(v) = h.verifier.as_mut() {
            v.update(buf);
        }
        h.next += buf.len() as u64;
    }
}

/// At the end of the blob: `Err` when a pass read all of it and it does
/// not hash to `digest` (remembered in `mismatch`).
fn verify_pass(hashed: &Mutex<Hashed>, size: u64, digest: &Digest) -> std::io::Result<()> {
    let mut h = hashed.lock().unwrap_or_else(|e| e.into_inner());
    if h.next == size {
        if let Some(v) = h.verifier.take() {
            let found = v.finish();
            if found != *digest {
                h.mismatch = Some(found);
            }
        }
    }
    if h.mismatch.is_some() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the source of {digest} does not hash to it"),
        ));
    }
    Ok(())
}

/// Worth a fresh upload session: a failure that may heal, or a registry
/// that disagrees about the offset (416) or lost the session (404).
fn restartable(e: &RegistryError) -> bool {
    e.is_transient()
        || matches!(
            e,
            RegistryError::Status { status: 416, .. } | RegistryError::NotFound { .. }
        )
}

/// A refusal of a push, saying that push access is what is missing.
pub(super) fn push_refused(e: RegistryError, repository: &str) -> RegistryError {
    match e {
        RegistryError::Unauthorized {
            registry,
            repository: r,
            credential_source,
            detail,
        } => RegistryError::Unauthorized {
            registry,
            repository: r,
            credential_source,
            detail: format!("push access to {repository} is missing: {detail}"),
        },
        RegistryError::Denied {
            registry,
            repository: r,
            anonymous,
            detail,
        } => RegistryError::Denied {
            registry,
            repository: r,
            anonymous,
            detail: format!("push access to {repository} is missing: {detail}"),
        },
        e => e,
    }
}
