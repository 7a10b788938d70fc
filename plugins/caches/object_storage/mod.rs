//! `object-store`: the local cache with an object store behind it (S3 and
//! S3-compatibles, or a shared directory), so a fleet of runners downloads
//! each layer from the registry once.
//!
//! ```toml
//! cache = "object-store"
//! [caches.object-store]
//! url = "s3://ci-cache/imgpull"   # or file:///mnt/share/imgpull
//! endpoint = "http://10.0.0.5:9000"  # S3-compatibles (MinIO, Ceph, R2…)
//! region = "us-east-1"
//! allow_http = false               # true for a plain-HTTP endpoint
//! timeout = "10s"                  # connect / first byte / a body standing still
//! upload = true                    # false: read from the store, never write it
//! ```
//!
//! The local tier is the `local` cache, configured by `[caches.local]`
//! (and `--cache-dir`), which the engine hands this plugin as `local`.
//!
//! - A blob missing locally is looked up at `PREFIX/blobs/<alg>/<hex>`
//!   before the registry is asked ([`CacheBackend::fill`]): it streams into
//!   the blob's writer (and so into the output being laid out, as a
//!   download would), which hashes it and commits it only if it matches
//!   its digest. An object of the wrong size or digest is
//!   not used (a warning names it); the registry serves that blob, and
//!   the upload after it replaces the bad object.
//! - A blob committed locally (from the registry) is uploaded beside the
//!   pull, unless the store has it: a `PUT` with `If-None-Match: *` (two
//!   runners racing never clobber each other; a store without conditional
//!   writes gets a plain `PUT` of the same verified bytes), multipart above
//!   8 MiB (visible only once complete). Only verified bytes are ever
//!   uploaded, so nothing lands under a key it does not match.
//! - Manifests read by digest come from the store the same way.
//! - The store down or slow never fails a command: the first failure is
//!   one warning, and the rest of the command leaves the store alone.
//! - Totals (fetched, uploaded, bad objects, failures) are added up in
//!   `<local dir>/object-store.json` for `imgpull cache stats`.
#![cfg(feature = "object-store")]

mod open;
mod verify;

use crate::cache::{
    Begin, BlobInfo, BlobSource, BlobWriter, CacheBackend, CacheError, PartialInfo, ReadSeek,
    StoreStats,
};
use crate::catalog::{Build, Kind, Plugin, PluginConfig, PluginError};
use crate::oci::digest::Digest;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Objects up to this size go in one conditional `PUT` (read whole into
/// memory first: the client takes no streamed body).
const SINGLE_PUT: u64 = 8 << 20;
/// The part size of bigger uploads (S3's minimum is 5 MiB).
const PART: usize = 8 << 20;
/// Uploads at once (each holds up to about six parts in memory: the one
/// being filled, two read ahead, and the parts in flight).
const UPLOADS: usize = 2;
/// Manifests read from the store are at most this big.
const MAX_SMALL: u64 = 4 << 20;

/// `[caches.object-store]`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    url: String,
    endpoint: Option<String>,
    region: Option<String>,
    allow_http: Option<bool>,
    timeout: Option<crate::util::units::Span>,
    upload: Option<bool>,
    /// `[caches.local]`, put here by the engine.
    local: Option<toml::Table>,
}

pub struct ObjectStoreCache {
    shared: Arc<Shared>,
}

struct Shared {
    local: Arc<dyn CacheBackend>,
    get: Arc<dyn ObjectStore>,
    put: Arc<dyn ObjectStore>,
    prefix: Key,
    url: String,
    timeout: Duration,
    upload: bool,
    /// Set at the first failure: the store is left alone from then on.
    down: AtomicBool,
    /// Set at the first failed upload: reads go on, uploads stop.
    put_down: AtomicBool,
    warnings: Mutex<Vec<String>>,
    /// This run's counts (added to the totals at `finish`).
    counts: Mutex<StoreStats>,
    /// Digests whose object was found wrong: their upload overwrites it.
    bad: Mutex<HashSet<Digest>>,
    /// Digests whose writer was filled from the store, not yet committed.
    filled: Mutex<HashSet<Digest>>,
    uploads: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    slots: Arc<tokio::sync::Semaphore>,
    totals: PathBuf,
}

fn build(cfg: &PluginConfig) -> Result<Arc<dyn CacheBackend>, PluginError> {
    let o: Options = crate::catalog::options(Kind::Cache, "object-store", cfg)?;
    let invalid = |m: String| PluginError::invalid(Kind::Cache, "object-store", m);
    let local_cfg = o.local.clone().unwrap_or_default();
    let local_dir = local_cfg
        .get("dir")
        .and_then(|d| d.as_str())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(super::local::DEFAULT_DIR));
    let local = super::local::build(&local_cfg)?;
    let timeout = o.timeout.map_or(Duration::from_secs(10), |s| s.0);
    let opened = open::open(&open::StoreConfig {
        url: &o.url,
        endpoint: o.endpoint.as_deref(),
        region: o.region.as_deref(),
        allow_http: o.allow_http.unwrap_or(false),
        timeout,
    })
    .map_err(invalid)?;
    Ok(Arc::new(ObjectStoreCache {
        shared: Arc::new(Shared {
            local,
            get: opened.get,
            put: opened.put,
            prefix: opened.prefix,
            url: o.url,
            timeout,
            upload: o.upload.unwrap_or(true),
            down: AtomicBool::new(false),
            put_down: AtomicBool::new(false),
            warnings: Mutex::default(),
            counts: Mutex::default(),
            bad: Mutex::default(),
            filled: Mutex::default(),
            uploads: Mutex::default(),
            slots: Arc::new(tokio::sync::Semaphore::new(UPLOADS)),
            totals: local_dir.join("object-store.json"),
        }),
    }))
}

inventory::submit! {
    Plugin {
        name: "object-store",
        summary: "the local cache with an object store (S3, S3-compatibles, a shared directory) behind it, shared by a fleet",
        build: Build::Cache(build),
    }
}

/// A store's error as a warning may say it: the server's answer (an S3
/// error body can echo the signed request, session token included) is cut
/// off, any credential from the environment is masked, and it is short.
fn said(e: &impl std::fmt::Display) -> String {
    let text = e.to_string();
    let text = text.split('<').next().unwrap_or_default().trim_end();
    let secrets: Vec<String> = ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]
        .iter()
        .filter_map(|k| std::env::var(k).ok().filter(|v| v.len() >= 4))
        .collect();
    let text = crate::util::secret::scrub(text, &secrets);
    let mut out: String = text.chars().take(300).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How a look in the store ended.
enum Fill {
    /// The writer holds the whole object, to be committed (and checked).
    Done,
    /// The store does not have it.
    Missing,
    /// The writer holds nothing from the store; the registry serves it.
    Failed,
}

impl Shared {
    /// Where the blobs live: `PREFIX/blobs`.
    fn key_root(&self) -> Key {
        if self.prefix.as_ref().is_empty() {
            Key::from("blobs")
        } else {
            Key::from(format!("{}/blobs", self.prefix))
        }
    }

    fn key(&self, d: &Digest) -> Key {
        Key::from(format!(
            "{}/{}/{}",
            self.key_root(),
            d.algorithm_name(),
            d.hex()
        ))
    }

    fn usable(&self) -> bool {
        !self.down.load(Ordering::Relaxed)
    }

    fn uploadable(&self) -> bool {
        self.upload && self.usable() && !self.put_down.load(Ordering::Relaxed)
    }

    /// A read failed: said once, then the store is left alone for this
    /// command (no uploads either).
    fn failed(&self, what: &str, e: impl std::fmt::Display) {
        self.failure(
            &self.down,
            what,
            &e,
            "using the registry for the rest of this command",
        );
    }

    /// An upload failed (read-only credentials, a full bucket…): said
    /// once; reads go on, uploads stop for this command.
    fn upload_failed(&self, what: &str, e: impl std::fmt::Display) {
        self.failure(
            &self.put_down,
            what,
            &e,
            "no more uploads in this command (set `upload = false` for a read-only store)",
        );
    }

    /// Count a failure; the first that sets `flag` is said, with `then`.
    fn failure(&self, flag: &AtomicBool, what: &str, e: &dyn std::fmt::Display, then: &str) {
        lock(&self.counts).failures += 1;
        if !flag.swap(true, Ordering::Relaxed) {
            lock(&self.warnings).push(format!(
                "object store {}: {what}: {}; {then}",
                self.url,
                said(&e)
            ));
        }
    }

    fn bad_object(&self, d: &Digest, why: String) {
        lock(&self.counts).bad_objects += 1;
        lock(&self.bad).insert(d.clone());
        lock(&self.warnings).push(format!(
            "object store {}: the object for {d} {why}; not used, fetched from the registry (the upload replaces it)",
            self.url
        ));
    }

    /// Stream the store's object for `d` into `w` (which holds nothing of
    /// it afterwards unless the whole object went in).
    async fn fill(&self, w: &mut dyn BlobWriter, d: &Digest, size: u64) -> Fill {
        let key = self.key(d);
        let got = tokio::time::timeout(self.timeout, self.get.get(&key)).await;
        let got = match got {
            Err(_) => {
                self.failed("no answer", format!("in {:?}", self.timeout));
                return Fill::Failed;
            }
            Ok(Err(object_store::Error::NotFound { .. })) => return Fill::Missing,
            Ok(Err(e)) => {
                self.failed("GET failed", e);
                return Fill::Failed;
            }
            Ok(Ok(got)) => got,
        };
        if got.meta.size != size {
            self.bad_object(d, format!("holds {} bytes, not {size}", got.meta.size));
            return Fill::Failed;
        }
        let ok = async {
            let mut body = body_of(got);
            loop {
                match tokio::time::timeout(self.timeout, body.next()).await {
                    Err(_) => {
                        self.failed("a download stood still", format!("for {:?}", self.timeout));
                        return None;
                    }
                    Ok(None) => return Some(()),
                    Ok(Some(Err(e))) => {
                        self.failed("a download broke off", e);
                        return None;
                    }
                    Ok(Some(Ok(chunk))) => {
                        if w.write(chunk).await.is_err() {
                            self.bad_object(d, format!("is longer than {size} bytes"));
                            return None;
                        }
                    }
                }
            }
        }
        .await;
        if ok.is_some() && w.offset() == size {
            return Fill::Done;
        }
        if ok.is_some() {
            self.bad_object(d, format!("held {} bytes, not {size}", w.offset()));
        }
        let _ = w.restart().await;
        Fill::Failed
    }

    /// Upload committed blob `d` beside the command (see the module doc).
    fn queue_upload(self: &Arc<Self>, d: &Digest, size: u64) {
        if !self.uploadable() {
            return;
        }
        let (me, d) = (self.clone(), d.clone());
        let task = tokio::spawn(async move {
            let Ok(_slot) = me.slots.clone().acquire_owned().await else {
                return;
            };
            if me.uploadable() {
                me.upload_one(&d, size).await;
            }
        });
        lock(&self.uploads).push(task);
    }

    async fn upload_one(&self, d: &Digest, size: u64) {
        let key = self.key(d);
        let replace = lock(&self.bad).contains(d);
        if !replace {
            match tokio::time::timeout(self.timeout, self.put.head(&key)).await {
                Ok(Ok(m)) if m.size == size => {
                    lock(&self.counts).already_there += 1;
                    return;
                }
                Ok(Ok(_)) | Ok(Err(object_store::Error::NotFound { .. })) => {}
                Ok(Err(e)) => return self.upload_failed("HEAD failed", e),
                Err(_) => return self.upload_failed("no answer", format!("in {:?}", self.timeout)),
            }
        }
        let done = match self.local.source(d).await {
            Ok(src) => self.send(&key, &src, size, replace).await,
            Err(e) => Err(e.to_string()),
        };
        match done {
            Ok(true) => {
                let mut c = lock(&self.counts);
                c.uploaded += 1;
                c.uploaded_bytes += size;
            }
            Ok(false) => lock(&self.counts).already_there += 1,
            Err(e) => self.upload_failed(&format!("uploading {d} failed"), e),
        }
    }

    /// Put `src` at `key`: `Ok(false)` when another runner got there first.
    async fn send(
        &self,
        key: &Key,
        src: &BlobSource,
        size: u64,
        replace: bool,
    ) -> Result<bool, String> {
        if size <= SINGLE_PUT {
            let src = src.clone();
            let bytes = tokio::task::spawn_blocking(move || src.read_all())
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            let payload = PutPayload::from(Bytes::from(bytes));
            let mode = if replace {
                PutMode::Overwrite
            } else {
                PutMode::Create
            };
            // At least 140 kB/s for a full piece, with the default timeout.
            let bound = self.timeout * 6;
            let put =
                tokio::time::timeout(bound, self.put.put_opts(key, payload.clone(), mode.into()));
            let Ok(put) = put.await else {
                return Err(format!("no answer in {bound:?}"));
            };
            return match put {
                Ok(_) => Ok(true),
                Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
                // No conditional writes there: the same verified bytes.
                Err(object_store::Error::NotImplemented { .. }) => self
                    .put
                    .put_opts(key, payload, PutMode::Overwrite.into())
                    .await
                    .map(|_| true)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
        }
        // Each step bounded: a bucket that stops answering mid-upload must
        // not hold up the end of the command for the client's 10 minutes.
        let bound = self.timeout * 6;
        let late = || format!("no answer in {bound:?}");
        let upload = tokio::time::timeout(bound, self.put.put_multipart(key))
            .await
            .map_err(|_| late())?
            .map_err(|e| e.to_string())?;
        let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, PART);
        let src = src.clone();
        let mut rx = read_pieces(move || src.open(), PART);
        let mut failure = None;
        while let Some(piece) = rx.recv().await {
            let p = match piece {
                Ok(p) => p,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            match tokio::time::timeout(bound, w.wait_for_capacity(1)).await {
                Ok(Ok(())) => w.write(&p),
                Ok(Err(e)) => failure = Some(e.to_string()),
                Err(_) => failure = Some(late()),
            }
            if failure.is_some() {
                break;
            }
        }
        if let Some(e) = failure {
            // The parts sent are dropped, not left billed in the bucket.
            let _ = tokio::time::timeout(bound, w.abort()).await;
            return Err(e);
        }
        match tokio::time::timeout(bound, w.finish()).await {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(late()),
        }
    }

    /// The totals on disk with `run` added.
    fn totals_with(&self, run: &StoreStats) -> StoreStats {
        let mut all: StoreStats = std::fs::read(&self.totals)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        all.add(run);
        all.store = self.url.clone();
        all
    }

    /// This run's counts, added to the totals on disk.
    fn save_totals(&self) {
        let run = std::mem::take(&mut *lock(&self.counts));
        let all = self.totals_with(&run);
        let tmp = self.totals.with_extension("json.tmp");
        if let Some(dir) = self.totals.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let json = serde_json::to_vec_pretty(&all).expect("stats serialize");
        if std::fs::write(&tmp, json).is_ok() && std::fs::rename(&tmp, &self.totals).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// What `open` gives, in pieces of up to `piece` bytes, read on a thread
/// of its own a few pieces ahead; an error ends it.
fn read_pieces<R: std::io::Read>(
    open: impl FnOnce() -> std::io::Result<R> + Send + 'static,
    piece: usize,
) -> tokio::sync::mpsc::Receiver<Result<Bytes, String>> {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    std::thread::spawn(move || {
        let mut r = match open() {
            Ok(r) => r,
            Err(e) => return drop(tx.blocking_send(Err(e.to_string()))),
        };
        loop {
            let mut buf = vec![0u8; piece];
            let next = match r.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    Ok(Bytes::from(buf))
                }
                Err(e) => Err(e.to_string()),
            };
            let failed = next.is_err();
            if tx.blocking_send(next).is_err() || failed {
                return;
            }
        }
    });
    rx
}

/// An object's bytes as a stream. A file (a `file://` store) is read in
/// 1 MiB pieces on a thread of its own: `GetResult::into_stream` reads
/// files 8 KiB at a time, which made a directory store slower than S3.
fn body_of(
    got: object_store::GetResult,
) -> futures_util::stream::BoxStream<'static, Result<Bytes, String>> {
    match got.payload {
        object_store::GetResultPayload::File(file, _) => {
            let rx = read_pieces(move || Ok(file), 1 << 20);
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|p| (p, rx)) },
            )
            .boxed()
        }
        object_store::GetResultPayload::Stream(s) => {
            s.map(|r| r.map_err(|e| e.to_string())).boxed()
        }
    }
}

/// The local writer of a blob the registry serves: uploaded once committed.
struct Uploading {
    inner: Box<dyn BlobWriter>,
    shared: Arc<Shared>,
    digest: Digest,
    size: u64,
}

#[async_trait]
impl BlobWriter for Uploading {
    fn offset(&self) -> u64 {
        self.inner.offset()
    }

    async fn restart(&mut self) -> Result<(), CacheError> {
        self.inner.restart().await
    }

    async fn write(&mut self, chunk: Bytes) -> Result<(), CacheError> {
        self.inner.write(chunk).await
    }

    async fn commit(self: Box<Self>) -> Result<(), CacheError> {
        let Uploading {
            inner,
            shared,
            digest,
            size,
        } = *self;
        let from_store = lock(&shared.filled).remove(&digest);
        match inner.commit().await {
            Ok(()) if from_store => {
                let mut c = lock(&shared.counts);
                c.fetched += 1;
                c.fetched_bytes += size;
                Ok(())
            }
            Ok(()) => {
                shared.queue_upload(&digest, size);
                Ok(())
            }
            Err(e) => {
                if let (true, CacheError::DigestMismatch { found, .. }) = (from_store, &e) {
                    shared.bad_object(&digest, format!("hashes to {found}"));
                }
                Err(e)
            }
        }
    }
}

#[async_trait]
impl CacheBackend for ObjectStoreCache {
    fn describe(&self) -> String {
        format!(
            "object-store ({}) over {}",
            self.shared.url,
            self.shared.local.describe()
        )
    }

    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, CacheError> {
        self.shared.local.stat(digest).await
    }

    async fn begin(&self, digest: &Digest, size: u64, source: &str) -> Result<Begin, CacheError> {
        Ok(match self.shared.local.begin(digest, size, source).await? {
            Begin::Present => Begin::Present,
            Begin::Writer(w) => Begin::Writer(Box::new(Uploading {
                inner: w,
                shared: self.shared.clone(),
                digest: digest.clone(),
                size,
            })),
        })
    }

    async fn fill(&self, digest: &Digest, size: u64, writer: &mut dyn BlobWriter) -> bool {
        let s = &self.shared;
        if !s.usable() {
            return false;
        }
        match s.fill(writer, digest, size).await {
            Fill::Done => {
                lock(&s.filled).insert(digest.clone());
                true
            }
            Fill::Missing | Fill::Failed => false,
        }
    }

    async fn open(&self, digest: &Digest) -> Result<Box<dyn ReadSeek>, CacheError> {
        self.shared.local.open(digest).await
    }

    fn local_path(&self, digest: &Digest) -> Result<Option<PathBuf>, CacheError> {
        self.shared.local.local_path(digest)
    }

    async fn source(&self, digest: &Digest) -> Result<BlobSource, CacheError> {
        self.shared.local.source(digest).await
    }

    async fn read_range(
        &self,
        digest: &Digest,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>, CacheError> {
        self.shared.local.read_range(digest, offset, len).await
    }

    fn scratch_dir(&self) -> Option<PathBuf> {
        self.shared.local.scratch_dir()
    }

    async fn read(&self, digest: &Digest) -> Result<Vec<u8>, CacheError> {
        let s = &self.shared;
        match s.local.read(digest).await {
            Err(CacheError::Missing(_)) if s.usable() => {}
            r => return r,
        }
        // A manifest by digest: from the store when it has it (checked).
        // One GET: its answer's size says whether to read the body.
        let key = s.key(digest);
        let got = tokio::time::timeout(s.timeout, async {
            match s.get.get(&key).await {
                Ok(g) if g.meta.size <= MAX_SMALL => g.bytes().await.map(Some),
                Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await;
        let got = match got {
            Ok(Ok(None)) => return Err(CacheError::Missing(digest.clone())),
            Ok(Ok(Some(b))) => Ok(Ok(b)),
            Ok(Err(e)) => Ok(Err(e)),
            Err(e) => Err(e),
        };
        let bytes = match got {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                s.failed("GET failed", e);
                return Err(CacheError::Missing(digest.clone()));
            }
            Err(_) => {
                s.failed("no answer", format!("in {:?}", s.timeout));
                return Err(CacheError::Missing(digest.clone()));
            }
        };
        if bytes.len() as u64 > MAX_SMALL {
            s.bad_object(digest, format!("is bigger than {MAX_SMALL} bytes"));
            return Err(CacheError::Missing(digest.clone()));
        }
        let found = crate::oci::digest::digest_like(&bytes, digest);
        if found != *digest {
            s.bad_object(digest, format!("hashes to {found}"));
            return Err(CacheError::Missing(digest.clone()));
        }
        s.local.put(digest, &bytes).await?;
        let mut c = lock(&s.counts);
        c.fetched += 1;
        c.fetched_bytes += bytes.len() as u64;
        Ok(bytes.to_vec())
    }

    async fn put(&self, digest: &Digest, bytes: &[u8]) -> Result<(), CacheError> {
        self.shared.local.put(digest, bytes).await?;
        self.shared.queue_upload(digest, bytes.len() as u64);
        Ok(())
    }

    async fn check(&self, digest: &Digest) -> Result<bool, CacheError> {
        self.shared.local.check(digest).await
    }

    async fn linked(&self, digest: &Digest) -> Result<(), CacheError> {
        self.shared.local.linked(digest).await
    }

    async fn touch(&self, digest: &Digest) -> Result<(), CacheError> {
        // A blob this cache had before the store (or whose upload failed):
        // uploaded now unless the store has it (one HEAD, beside the pull).
        if let Ok(Some(size)) = self.shared.local.stat(digest).await {
            self.shared.queue_upload(digest, size);
        }
        self.shared.local.touch(digest).await
    }

    fn notices(&self) -> Vec<String> {
        self.shared.local.notices()
    }

    async fn finish(&self) -> Vec<String> {
        let s = &self.shared;
        let mut warnings = s.local.finish().await;
        loop {
            let tasks = std::mem::take(&mut *lock(&s.uploads));
            if tasks.is_empty() {
                break;
            }
            for t in tasks {
                let _ = t.await;
            }
        }
        s.save_totals();
        warnings.append(&mut lock(&s.warnings));
        warnings
    }

    fn store_stats(&self) -> Option<StoreStats> {
        let s = &self.shared;
        let run = lock(&s.counts).clone();
        Some(s.totals_with(&run))
    }

    async fn verify_store(
        &self,
        repair: bool,
    ) -> Option<Result<(usize, Vec<crate::cache::ops::Bad>), CacheError>> {
        Some(verify::verify(&self.shared, repair).await)
    }

    async fn maintain(&self) -> Result<(), CacheError> {
        self.shared.local.maintain().await
    }

    async fn list(&self) -> Result<Vec<BlobInfo>, CacheError> {
        self.shared.local.list().await
    }

    async fn partials(&self) -> Result<Vec<PartialInfo>, CacheError> {
        self.shared.local.partials().await
    }

    async fn remove(&self, digest: &Digest) -> Result<bool, CacheError> {
        self.shared.local.remove(digest).await
    }

    async fn remove_partial(&self, partial: &PartialInfo) -> Result<(), CacheError> {
        self.shared.local.remove_partial(partial).await
    }
}
