//! `local`: the content-addressed cache on the local filesystem.
//!
//! ```text
//! <dir>/                        default ./docker_images_cache
//! ├── blobs/sha256/<hex>        committed blobs (layers, configs, manifests):
//! │                             exactly the bytes of that digest; the file's
//! │                             mtime is its last use
//! ├── ingest/<hex>.partial      a download in progress or interrupted: a prefix
//! ├── ingest/<hex>.json         {digest, size, source} of that partial
//! ├── verified/<hex>            how the blob file looked when its bytes were
//! │                             last found right (see `verified`); its mtime
//! │                             is the blob's last use
//! ├── locks/<hex>.lock          held (flock) while one process writes <hex>
//! └── unsynced/<boot>.<t>.<pid> blobs committed without an fsync of their own
//! ```
//!
//! A writer takes the digest's lock, rehashes any partial left by an
//! earlier run and continues after it; commit is flush, verify digest and
//! size, rename into `blobs/`, record it as verified. Durability comes from
//! one ledger per process made durable before its first commit, not an
//! fsync per blob (see `unsynced`: after a power cut the blobs it covers
//! are re-hashed before use). Before a
//! cached blob is used it is checked against that record and re-hashed if
//! its file changed since (removed if wrong). A crash, Ctrl-C or SIGKILL at any
//! point leaves at most a partial in `ingest/`, never a wrong file under
//! `blobs/`. Processes sharing the cache wait for each other's lock, so each
//! blob is downloaded once and nobody reads a half-written one. Partials
//! older than `partial_max_age` (default 7 days) are removed when a pull
//! starts.
//!
//! ```toml
//! [caches.local]
//! dir = "./docker_images_cache"
//! partial_max_age = "7d"
//! ```

use crate::cache::{Begin, BlobInfo, BlobWriter, CacheBackend, CacheError, PartialInfo, ReadSeek};
use crate::catalog::{Build, Kind, Plugin, PluginConfig, PluginError};
use crate::oci::digest::{Digest, Verifier};
use crate::transfer::hashing::HashingWriter;

mod unsynced;
mod verified;
use async_trait::async_trait;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Where the cache lives when config says nothing (the seed's default).
pub const DEFAULT_DIR: &str = "./docker_images_cache";
const DEFAULT_PARTIAL_AGE: Duration = Duration::from_secs(7 * 86_400);

pub struct LocalCache {
    dir: PathBuf,
    partial_max_age: Duration,
    /// Make every committed blob durable (through this process's ledger,
    /// or an fsync each). Off only for the throwaway cache of
    /// `--no-cache`, which does not outlive the pull.
    durable: bool,
    /// This process's ledger, made before its first commit (`None` inside:
    /// none could be made, blobs are fsynced one by one).
    ledger: Ledgers,
    /// What opening it found (see [`CacheBackend::notices`]).
    notices: Vec<String>,
}

type Ledgers = Arc<std::sync::OnceLock<Option<unsynced::Ledger>>>;

impl LocalCache {
    pub fn new(dir: impl Into<PathBuf>) -> LocalCache {
        LocalCache {
            dir: dir.into(),
            partial_max_age: DEFAULT_PARTIAL_AGE,
            durable: true,
            ledger: Ledgers::default(),
            notices: Vec::new(),
        }
    }

    fn blob_file(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join("blobs")
            .join(digest.algorithm_name())
            .join(digest.hex())
    }

    fn record_file(&self, digest: &Digest) -> PathBuf {
        self.dir.join("verified").join(digest.hex())
    }

    fn ensure_dir(path: &Path) -> Result<(), CacheError> {
        std::fs::create_dir_all(path).map_err(|e| CacheError::io(path, e))
    }
}

/// `[caches.local]`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Where the cache lives.
    dir: Option<PathBuf>,
    /// Partial downloads older than this are removed.
    partial_max_age: Option<crate::util::units::Span>,
    /// `false`: blobs are not fsynced before they are committed (a
    /// throwaway cache, as `--no-cache` makes; a power cut may lose it).
    durable: Option<bool>,
}

/// The digest's lock file, opened and locked (waits while another process
/// writes the same blob).
fn lock_file(path: &Path) -> Result<std::fs::File, CacheError> {
    let lock = open_lock(path).map_err(|e| CacheError::io(path, e))?;
    lock.lock().map_err(|e| CacheError::io(path, e))?;
    Ok(lock)
}

fn open_lock(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}

/// The digest's lock file, locked if no other process holds it.
fn lock_file_now(path: &Path) -> std::io::Result<std::fs::File> {
    let lock = open_lock(path)?;
    lock.try_lock().map_err(std::io::Error::other)?;
    Ok(lock)
}

/// The partial download at `path`, positioned at its end for appending:
/// what an earlier run received is rehashed into `verifier` (so the digest
/// covers the whole blob), or dropped when it is longer than the blob.
fn open_partial(
    path: &Path,
    size: u64,
    verifier: &mut Verifier,
) -> Result<std::fs::File, CacheError> {
    let io = |e| CacheError::io(path, e);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    let held = file.metadata().map_err(io)?.len();
    if held > size {
        file.set_len(0).map_err(io)?;
    } else if held > 0 {
        verifier.update_from(&mut file).map_err(io)?;
    }
    file.seek(SeekFrom::End(0)).map_err(io)?;
    Ok(file)
}

/// The local cache from `[caches.local]` (also the local tier of
/// `object-store`).
pub(crate) fn build(cfg: &PluginConfig) -> Result<Arc<dyn CacheBackend>, PluginError> {
    let o: Options = crate::catalog::options(Kind::Cache, "local", cfg)?;
    let mut cache = LocalCache::new(o.dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DIR)));
    if let Some(age) = o.partial_max_age {
        cache.partial_max_age = age.0;
    }
    if let Some(durable) = o.durable {
        cache.durable = durable;
    }
    if cache.durable {
        // Before anything trusts a blob: the blobs a power cut may have hit.
        let d = &cache.dir;
        let removed = std::cell::Cell::new(0);
        let recheck = |alg: &str, hex: &str| {
            let Ok(digest) = format!("{alg}:{hex}").parse::<Digest>() else {
                return true; // not a blob name: nothing to check
            };
            let record = cache.record_file(&digest);
            let _ = std::fs::remove_file(&record);
            let locks = d.join("locks");
            let _ = std::fs::create_dir_all(&locks);
            // A digest being written by another process is left for later
            // (the ledger stays): waiting here would hold up this command.
            let Ok(held) = lock_file_now(&locks.join(format!("{hex}.lock"))) else {
                return false;
            };
            let checked = check_blob(&cache.blob_file(&digest), &record, None, &digest);
            drop(held);
            match checked {
                Ok(good) => {
                    removed.set(removed.get() + usize::from(!good));
                    true
                }
                Err(_) => false,
            }
        };
        let checked = unsynced::sweep(d, &d.join("blobs"), &recheck);
        // Said only when something was wrong: a cache carried to another
        // machine (a CI cache restored) is re-checked quietly.
        if removed.get() > 0 {
            cache.notices.push(format!(
                "the cache in {} was last written before a restart (a power cut?) without every blob on disk: re-checked the {checked} blobs written then, removed {} with wrong bytes (they are downloaded again)",
                d.display(),
                removed.get()
            ));
        }
    }
    Ok(Arc::new(cache))
}

inventory::submit! {
    Plugin {
        name: "local",
        summary: "content-addressed blobs on the local filesystem, resumable (default)",
        build: Build::Cache(build),
    }
}

/// Run blocking filesystem work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CacheError> + Send + 'static,
) -> Result<T, CacheError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CacheError::io("<cache task>", std::io::Error::other(e)))?
}

#[derive(serde::Serialize, serde::Deserialize)]
struct PartialMeta {
    digest: String,
    size: u64,
    source: String,
}

#[async_trait]
impl CacheBackend for LocalCache {
    fn describe(&self) -> String {
        format!("local ({})", self.dir.display())
    }

    fn notices(&self) -> Vec<String> {
        self.notices.clone()
    }

    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, CacheError> {
        let path = self.blob_file(digest);
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CacheError::io(path, e)),
        }
    }

    async fn begin(&self, digest: &Digest, size: u64, source: &str) -> Result<Begin, CacheError> {
        let verifier =
            Verifier::new(digest).ok_or_else(|| CacheError::UnsupportedDigest(digest.clone()))?;
        let (dir, digest, source) = (self.dir.clone(), digest.clone(), source.to_string());
        let final_path = self.blob_file(&digest);
        let record = self.record_file(&digest);
        let (durable, ledgers) = (self.durable, self.ledger.clone());
        blocking(move || {
            let (ingest, locks) = (dir.join("ingest"), dir.join("locks"));
            for d in [
                &ingest,
                &locks,
                final_path.parent().expect("blob path has a parent"),
            ] {
                LocalCache::ensure_dir(d)?;
            }
            let lock_path = locks.join(format!("{}.lock", digest.hex()));
            let lock = lock_file(&lock_path)?;
            if std::fs::metadata(&final_path).is_ok_and(|m| m.len() == size) {
                return Ok(Begin::Present);
            }
            let partial = ingest.join(format!("{}.partial", digest.hex()));
            let meta = ingest.join(format!("{}.json", digest.hex()));
            let mut verifier = verifier;
            let file = open_partial(&partial, size, &mut verifier)?;
            let fresh = Verifier::new(&digest).expect("checked above");
            let m = PartialMeta {
                digest: digest.to_string(),
                size,
                source,
            };
            std::fs::write(&meta, serde_json::to_vec(&m).expect("meta serializes"))
                .map_err(|e| CacheError::io(&meta, e))?;
            let keep = lock
                .try_clone()
                .map_err(|e| CacheError::io(&lock_path, e))?;
            let ledger = durable
                && ledgers
                    .get_or_init(|| unsynced::Ledger::create(&dir))
                    .is_some();
            // Written back early only for the fsync at its commit.
            let out = HashingWriter::new(
                std::io::BufWriter::with_capacity(1 << 20, file),
                verifier,
                Some(keep),
                durable && !ledger,
            );
            let files = Files {
                record,
                partial,
                meta,
                final_path,
                digest: digest.clone(),
                size,
                durable,
                ledger: ledger.then_some(ledgers),
                _lock: lock,
            };
            let w = LocalWriter { out, fresh, files };
            Ok(Begin::Writer(Box::new(w)))
        })
        .await
    }

    fn scratch_dir(&self) -> Option<PathBuf> {
        // Its own directory: pieces are not partial blobs (`cache prune`
        // leaves them to `maintain`, which checks the digest's lock).
        let d = self.dir.join("ingest").join("chunks");
        LocalCache::ensure_dir(&d).ok().map(|()| d)
    }

    fn local_path(&self, digest: &Digest) -> Result<Option<PathBuf>, CacheError> {
        let p = self.blob_file(digest);
        if p.is_file() {
            Ok(Some(p))
        } else {
            Err(CacheError::Missing(digest.clone()))
        }
    }

    async fn open(&self, digest: &Digest) -> Result<Box<dyn ReadSeek>, CacheError> {
        let p = self.blob_file(digest);
        match std::fs::File::open(&p) {
            Ok(f) => Ok(Box::new(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(CacheError::Missing(digest.clone()))
            }
            Err(e) => Err(CacheError::io(p, e)),
        }
    }

    async fn read(&self, digest: &Digest) -> Result<Vec<u8>, CacheError> {
        let p = self.blob_file(digest);
        match tokio::fs::read(&p).await {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(CacheError::Missing(digest.clone()))
            }
            r => r.map_err(|e| CacheError::io(p, e)),
        }
    }

    async fn check(&self, digest: &Digest) -> Result<bool, CacheError> {
        let (blob, record, digest) = (
            self.blob_file(digest),
            self.record_file(digest),
            digest.clone(),
        );
        let lock = self
            .dir
            .join("locks")
            .join(format!("{}.lock", digest.hex()));
        blocking(move || check_blob(&blob, &record, Some(&lock), &digest)).await
    }

    async fn linked(&self, digest: &Digest) -> Result<(), CacheError> {
        let (blob, record) = (self.blob_file(digest), self.record_file(digest));
        blocking(move || {
            verified::relinked(&blob, &record);
            Ok(())
        })
        .await
    }

    async fn touch(&self, digest: &Digest) -> Result<(), CacheError> {
        let record = self.record_file(digest);
        // Best effort: a read-only cache still serves blobs.
        blocking(move || {
            verified::touch(&record);
            Ok(())
        })
        .await
    }

    async fn maintain(&self) -> Result<(), CacheError> {
        let cutoff = SystemTime::now().checked_sub(self.partial_max_age);
        for p in self.partials().await? {
            if let (Some(cutoff), Some(m)) = (cutoff, p.modified) {
                if m < cutoff {
                    self.remove_partial(&p).await?;
                }
            }
        }
        // Pieces of chunked downloads that no process is writing (a killed
        // run's): the partial holds what was appended, the rest is fetched
        // again.
        let (chunks, locks) = (
            self.dir.join("ingest").join("chunks"),
            self.dir.join("locks"),
        );
        blocking(move || {
            let Ok(rd) = std::fs::read_dir(&chunks) else {
                return Ok(());
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some((hex, _)) = name.split_once('-') else {
                    continue;
                };
                let free = std::fs::File::open(locks.join(format!("{hex}.lock")))
                    .map(|f| f.try_lock().is_ok())
                    .unwrap_or(true);
                if free {
                    let _ = std::fs::remove_file(e.path());
                }
            }
            Ok(())
        })
        .await
    }

    async fn list(&self) -> Result<Vec<BlobInfo>, CacheError> {
        let (blobs, records) = (self.dir.join("blobs"), self.dir.join("verified"));
        blocking(move || {
            let mut out = Vec::new();
            for alg in ["sha256", "sha512"] {
                let dir = blobs.join(alg);
                let rd = match std::fs::read_dir(&dir) {
                    Ok(rd) => rd,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(CacheError::io(&dir, e)),
                };
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let Ok(digest) = format!("{alg}:{name}").parse::<Digest>() else {
                        continue;
                    };
                    let Ok(m) = e.metadata() else { continue };
                    let last_use = verified::last_use(&m, &records.join(&name));
                    out.push(BlobInfo {
                        digest,
                        size: m.len(),
                        last_use,
                    });
                }
            }
            out.sort_by(|a, b| a.digest.cmp(&b.digest));
            Ok(out)
        })
        .await
    }

    async fn partials(&self) -> Result<Vec<PartialInfo>, CacheError> {
        let dir = self.dir.join("ingest");
        blocking(move || {
            let mut out = Vec::new();
            let Ok(rd) = std::fs::read_dir(&dir) else {
                return Ok(out);
            };
            for e in rd.flatten() {
                let path = e.path();
                if path.extension().is_none_or(|x| x != "partial") {
                    continue;
                }
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let meta: Option<PartialMeta> = std::fs::read(path.with_extension("json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                let m = e.metadata().ok();
                out.push(PartialInfo {
                    digest: format!("sha256:{stem}").parse().ok(),
                    held: m.as_ref().map_or(0, |m| m.len()),
                    size: meta.as_ref().map(|m| m.size),
                    source: meta.map(|m| m.source),
                    modified: m.and_then(|m| m.modified().ok()),
                    path,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn remove(&self, digest: &Digest) -> Result<bool, CacheError> {
        let _ = tokio::fs::remove_file(self.record_file(digest)).await;
        let path = self.blob_file(digest);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(CacheError::io(path, e)),
        }
    }

    async fn remove_partial(&self, partial: &PartialInfo) -> Result<(), CacheError> {
        // A partial another process is writing (its lock held) stays.
        if let Some(d) = &partial.digest {
            let lock = self.dir.join("locks").join(format!("{}.lock", d.hex()));
            if let Ok(f) = std::fs::File::open(&lock) {
                if f.try_lock().is_err() {
                    return Ok(());
                }
            }
        }
        for p in [partial.path.clone(), partial.path.with_extension("json")] {
            match tokio::fs::remove_file(&p).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(CacheError::io(p, e)),
            }
        }
        Ok(())
    }
}

/// Whether `blob` holds the bytes of `digest`: trusted when its record
/// says nothing wrote it since it was verified, else re-hashed (and
/// removed when wrong, under the digest's `lock`).
fn check_blob(
    blob: &Path,
    record: &Path,
    lock: Option<&Path>,
    digest: &Digest,
) -> Result<bool, CacheError> {
    let mut file = match std::fs::File::open(blob) {
        Ok(f) => f,
        // Gone since it was seen: a miss, fetched again.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(CacheError::io(blob, e)),
    };
    let look = |f: &std::fs::File| {
        f.metadata()
            .map(|m| verified::stamp(&m))
            .map_err(|e| CacheError::io(blob, e))
    };
    let before = look(&file)?;
    if verified::matches(record, &before) {
        // Recorded anew when only links moved its change time.
        if !std::fs::read_to_string(record).is_ok_and(|t| t.trim() == before) {
            verified::write(record, &before);
        }
        return Ok(true);
    }
    // Hash what this open file holds; a write meanwhile (its look
    // changes) makes the result worthless.
    let mut v = Verifier::of(digest.algorithm());
    v.update_from(&mut file)
        .map_err(|e| CacheError::io(blob, e))?;
    // (Another pull linking it meanwhile is no write.)
    if v.finish() == *digest && verified::alike(&before, &look(&file)?) {
        verified::write(record, &before);
        return Ok(true);
    }
    // Wrong bytes under the name: gone, so nobody uses them — under
    // the digest's lock, and only the file that was hashed (not a
    // good copy another pull committed meanwhile).
    // (`None`: the caller holds it.)
    let _held = lock.map(lock_file).transpose()?;
    use std::os::unix::fs::MetadataExt;
    let same =
        std::fs::metadata(blob).is_ok_and(|m| file.metadata().is_ok_and(|f| f.ino() == m.ino()));
    if same {
        let _ = std::fs::remove_file(record);
        match std::fs::remove_file(blob) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CacheError::io(blob, e)),
        }
    }
    Ok(false)
}

struct LocalWriter {
    /// The partial file, written and hashed on a thread of its own.
    out: HashingWriter,
    /// A verifier for a start from byte 0.
    fresh: Verifier,
    files: Files,
}

/// A writer's files and facts, which outlive its writing: after the last
/// byte they are checked, then renamed into place.
struct Files {
    /// Where its verification is recorded.
    record: PathBuf,
    partial: PathBuf,
    meta: PathBuf,
    final_path: PathBuf,
    digest: Digest,
    size: u64,
    durable: bool,
    /// The process's ledger, when it has one: the blob is noted there
    /// instead of fsynced.
    ledger: Option<Ledgers>,
    /// Held until the blob is in place (or dropped): other processes wait
    /// for this digest.
    _lock: std::fs::File,
}

impl Files {
    fn discard(&self) {
        discard(&self.partial, &self.meta);
    }
}

fn discard(partial: &Path, meta: &Path) {
    let _ = std::fs::remove_file(partial);
    let _ = std::fs::remove_file(meta);
}

#[async_trait]
impl BlobWriter for LocalWriter {
    fn offset(&self) -> u64 {
        self.out.held()
    }

    async fn restart(&mut self) -> Result<(), CacheError> {
        let fresh = self.fresh.clone();
        self.out
            .restart(fresh)
            .await
            .map_err(|e| CacheError::io(&self.files.partial, e))
    }

    async fn write(&mut self, chunk: bytes::Bytes) -> Result<(), CacheError> {
        let found = self.out.held() + chunk.len() as u64;
        if found > self.files.size {
            let _ = self.out.settle().await;
            let f = &self.files;
            f.discard();
            return Err(CacheError::SizeMismatch {
                digest: f.digest.clone(),
                expected: f.size,
                found,
            });
        }
        self.out
            .write(chunk)
            .await
            .map_err(|e| CacheError::io(&self.files.partial, e))
    }

    async fn commit(self: Box<Self>) -> Result<(), CacheError> {
        let w = *self;
        let (file, verifier) = w
            .out
            .into_parts()
            .await
            .map_err(|e| CacheError::io(&w.files.partial, e))?;
        let w = w.files;
        blocking(move || {
            let file = file
                .into_inner()
                .map_err(|e| CacheError::io(&w.partial, e.into_error()))?;
            if verifier.len() != w.size {
                // Short: keep the prefix for a later resume.
                return Err(CacheError::SizeMismatch {
                    digest: w.digest.clone(),
                    expected: w.size,
                    found: verifier.len(),
                });
            }
            let found = verifier.finish();
            if found != w.digest {
                w.discard();
                return Err(CacheError::DigestMismatch {
                    expected: w.digest.clone(),
                    found,
                });
            }
            let noted = w
                .ledger
                .as_ref()
                .and_then(|l| l.get())
                .and_then(Option::as_ref)
                .is_some_and(|l| l.note(&w.digest));
            let fsync = w.durable && !noted;
            if fsync {
                file.sync_all().map_err(|e| CacheError::io(&w.partial, e))?;
            }
            drop(file);
            crate::util::fs::set_readable(&w.partial).map_err(|e| CacheError::io(&w.partial, e))?;
            std::fs::rename(&w.partial, &w.final_path)
                .map_err(|e| CacheError::io(&w.final_path, e))?;
            let _ = std::fs::remove_file(&w.meta);
            if let Ok(m) = std::fs::metadata(&w.final_path) {
                verified::write(&w.record, &verified::stamp(&m));
            }
            if let Some(parent) = w.final_path.parent().filter(|_| fsync) {
                // Make the rename durable too; not every filesystem allows it.
                let _ = std::fs::File::open(parent).and_then(|d| d.sync_all());
            }
            Ok(())
        })
        .await
    }
}
