//! Parallel chunked download of one big blob. It starts as one stream
//! (a `Range` request to the end) written straight into the blob's writer;
//! when that stream turns out to wait on the network rather than on the
//! hashing, the bytes after the next `chunk_size` are cut into
//! `chunk_size` pieces fetched as `Range` requests, at most `max_chunks -
//! 1` at once beside the stream, each into a scratch file of the cache;
//! pieces are appended to the writer in order once the stream reaches
//! them (so hashing runs in order, beside the downloads). A piece that
//! fails mid-way is retried alone from where it stopped. When the server
//! does not answer with exactly the range asked for, nothing is lost: the
//! caller falls back to one stream.

use crate::cache::{BlobWriter, CacheError};
use crate::oci::manifest::Descriptor;
use crate::progress::Reporter;
use crate::registry::endpoints::Endpoints;
use crate::registry::{range_answered, RegistryError, Tries};
use crate::transfer::throttle::RateLimiter;
use crate::transfer::FetchError as Error;
use futures_util::StreamExt;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

/// How big blobs are split.
#[derive(Clone, Copy, Debug)]
pub struct Chunking {
    /// Blobs with more than this left are split into pieces of this size.
    pub chunk_size: u64,
    /// Pieces downloaded at once (1: never split).
    pub max_chunks: usize,
}

impl Default for Chunking {
    fn default() -> Chunking {
        Chunking {
            chunk_size: 64 * 1024 * 1024,
            max_chunks: 4,
        }
    }
}

impl Chunking {
    /// Whether a blob with `left` bytes to fetch is split.
    pub fn applies(&self, left: u64) -> bool {
        self.max_chunks > 1 && self.chunk_size > 0 && left > self.chunk_size
    }
}

/// How a chunked download ended.
#[derive(Debug)]
pub enum Outcome {
    /// Every byte is in the writer.
    Done,
    /// The server did not honour a range: the writer holds a prefix, and
    /// the rest should come in one stream.
    Unsupported,
}

/// What a chunked download did.
pub struct Ran {
    /// Bytes downloaded (pieces thrown away on a failure included).
    pub fetched: u64,
    /// The endpoints that served pieces.
    pub endpoints: Vec<usize>,
    pub result: Result<Outcome, Error>,
}

/// Finished pieces that may wait for the appender.
const MAX_WAITING: u64 = 256;

/// How long the main stream runs before it is judged (and judged again).
const WATCH: Duration = Duration::from_millis(500);

/// Where the main stream stopped.
enum Streamed {
    /// At the end of the blob.
    All,
    /// At the first byte the pieces bring.
    Split,
    /// The server stopped answering with the range asked for.
    Unsupported,
}

/// Why a piece stopped.
enum PieceFail {
    /// The server stopped serving the range asked for.
    NoRange(String),
    Failed(Error),
}

pub struct Job<'a> {
    pub client: &'a Endpoints,
    pub repository: &'a str,
    pub desc: &'a Descriptor,
    pub scratch: &'a Path,
    pub chunking: Chunking,
    pub limiter: Option<&'a RateLimiter>,
    pub reporter: &'a dyn Reporter,
    /// Bytes downloaded so far.
    pub fetched: AtomicU64,
    /// Endpoints that served pieces.
    pub used: Mutex<BTreeSet<usize>>,
    /// The blob's retry budget, shared by the stream and every piece.
    pub tries: &'a Tries,
}

/// A finished piece's file, or why the piece failed.
type Finished = Result<PathBuf, PieceFail>;

/// The main stream's state across its requests.
struct Main {
    /// Where it stops: the end of the blob, or where the pieces start
    /// once it asked for them.
    upto: u64,
    /// How it asks for pieces (once), and from which byte.
    split: Option<oneshot::Sender<u64>>,
    /// Since when its time is watched, and how much of that time it
    /// waited for the network.
    window: Instant,
    waited: Duration,
}

impl Job<'_> {
    fn piece_path(&self, start: u64) -> PathBuf {
        self.scratch
            .join(format!("{}-{start}.chunk", self.desc.digest.hex()))
    }

    fn cache_err(&self, source: CacheError) -> Error {
        Error::Cache {
            registry: self.client.registry().to_string(),
            source,
        }
    }

    /// A piece failed writing its file at `path`.
    fn piece_io(&self, path: &Path, e: std::io::Error) -> PieceFail {
        PieceFail::Failed(self.cache_err(CacheError::io(path, e)))
    }

    /// Remember that `endpoint` served this blob.
    fn mark_used(&self, endpoint: usize) {
        self.used
            .lock()
            .expect("no panics while held")
            .insert(endpoint);
    }

    /// Fetch from `writer.offset()` to the end. Whatever happens, says how
    /// many bytes were downloaded and from which endpoints.
    pub async fn run(&self, writer: &mut dyn BlobWriter) -> Ran {
        let result = self.pieces(writer).await;
        if !matches!(result, Ok(Outcome::Done)) {
            self.clear_scratch();
        }
        Ran {
            fetched: self.fetched.load(Ordering::Relaxed),
            endpoints: self
                .used
                .lock()
                .expect("no panics while held")
                .iter()
                .copied()
                .collect(),
            result,
        }
    }

    /// Ask for the rest as one range; when the server answers with it,
    /// run the main stream (see [`Self::appended`]) beside the pieces it
    /// may ask for (see [`Self::downloads`]).
    async fn pieces(&self, writer: &mut dyn BlobWriter) -> Result<Outcome, Error> {
        let d = self.desc;
        let first = writer.offset();
        if first >= d.size {
            return Ok(Outcome::Done);
        }
        // Pieces left by a killed run are not trusted: the partial holds
        // the contiguous prefix, and that is where we start.
        self.clear_scratch();
        let (resp, endpoint) = self
            .client
            .blob_range(
                self.repository,
                &d.digest,
                first,
                Some(d.size - 1),
                self.tries,
            )
            .await?;
        if !range_answered(&resp, first, d.size - 1, d.size) {
            return Ok(Outcome::Unsupported);
        }
        let most = (d.size - first)
            .div_ceil(self.chunking.chunk_size)
            .min(MAX_WAITING) as usize
            + 1;
        // Room for every piece (up to a bound a lying size cannot push):
        // the downloads never wait for the appender, so no body sits unread
        // while a piece is appended.
        let (tx, mut rx) = mpsc::channel::<Finished>(most);
        let (split_tx, split_rx) = oneshot::channel::<u64>();
        let downloads = self.downloads(split_rx, tx);
        let append = self.appended(writer, (resp, endpoint), split_tx, &mut rx);
        tokio::pin!(append, downloads);
        // A failed piece ends the appending early: the other downloads are
        // dropped with it.
        tokio::select! {
            biased;
            r = &mut append => r,
            () = &mut downloads => append.await,
        }
    }

    /// The pieces from the byte the main stream asks for help at (nothing
    /// unless it does), `max_chunks - 1` at once, each sent to the
    /// appender in order as it finishes.
    async fn downloads(&self, split: oneshot::Receiver<u64>, tx: mpsc::Sender<Finished>) {
        let d = self.desc;
        // Nothing to do unless the stream asks for help.
        let Ok(from) = split.await else { return };
        // Lazily: a size from the manifest is not trusted to be small.
        let chunk = self.chunking.chunk_size;
        let pieces = (from..d.size)
            .step_by(usize::try_from(chunk).unwrap_or(usize::MAX))
            .map(move |s| (s, s.saturating_add(chunk).min(d.size) - 1));
        // Owns the sender: when every piece is sent it is dropped, and the
        // appender sees the end.
        futures_util::stream::iter(pieces)
            .map(|(s, e)| async move { self.piece(s, e).await.map(|()| self.piece_path(s)) })
            .buffered(self.chunking.max_chunks - 1)
            .for_each(move |r| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(r).await;
                }
            })
            .await;
    }

    /// Run the main stream into `writer`; when it stopped where the pieces
    /// start, append them in order as they arrive.
    async fn appended(
        &self,
        writer: &mut dyn BlobWriter,
        first: (reqwest::Response, usize),
        split: oneshot::Sender<u64>,
        rx: &mut mpsc::Receiver<Finished>,
    ) -> Result<Outcome, Error> {
        match self.stream(writer, first, split).await? {
            Streamed::All => return Ok(Outcome::Done),
            Streamed::Unsupported => return Ok(Outcome::Unsupported),
            Streamed::Split => {}
        }
        while let Some(r) = rx.recv().await {
            match r {
                Ok(path) => self.append(&path, writer).await?,
                // Ranges stopped working: what is appended stays, the rest
                // comes in one stream.
                Err(PieceFail::NoRange(why)) => {
                    self.reporter
                        .info(&format!("{}: {why}", self.desc.digest.short()));
                    return Ok(Outcome::Unsupported);
                }
                Err(PieceFail::Failed(e)) => return Err(e),
            }
        }
        Ok(Outcome::Done)
    }

    /// The main stream, straight into `writer` (hashed as it comes, no
    /// scratch file). While it runs it watches where its time goes: a
    /// stream that mostly waits for the network (a slow or far link) asks
    /// for help — the bytes after the next `chunk_size` go to parallel
    /// pieces, and the stream stops there (see [`Self::judge`]). A stream
    /// that waits for the hashing (loopback, a fast LAN) is left alone:
    /// more connections would only add copies. Cut mid-way, it resumes
    /// from where it stopped (within the blob's retry budget).
    async fn stream(
        &self,
        writer: &mut dyn BlobWriter,
        first: (reqwest::Response, usize),
        split: oneshot::Sender<u64>,
    ) -> Result<Streamed, Error> {
        let d = self.desc;
        let mut main = Main {
            upto: d.size,
            split: Some(split),
            window: Instant::now(),
            waited: Duration::ZERO,
        };
        let mut first = Some(first);
        let (mut attempt, policy) = (0u32, self.client.retry_policy());
        loop {
            let at = writer.offset();
            if at >= main.upto {
                return Ok(if main.upto == d.size {
                    Streamed::All
                } else {
                    Streamed::Split
                });
            }
            attempt += 1;
            let (resp, endpoint) = match first.take() {
                Some(r) => r,
                None => match self.reopen(at).await? {
                    Some(r) => r,
                    None => return Ok(Streamed::Unsupported),
                },
            };
            self.mark_used(endpoint);
            let broke = self.pump(writer, (resp, endpoint), &mut main).await?;
            if writer.offset() >= main.upto {
                continue;
            }
            if self.tries.left() == 0 {
                let e = broke.unwrap_or_else(|| RegistryError::BadResponse {
                    registry: self.client.registry().to_string(),
                    detail: format!("{}: the stream ended early", d.digest),
                });
                return Err(e.into());
            }
            self.reporter.info(&format!(
                "{}: stream stopped at byte {}, resuming it",
                d.digest.short(),
                writer.offset()
            ));
            tokio::time::sleep(policy.backoff(attempt)).await;
        }
    }

    /// Ask again for the rest of the blob from `at`; `None` (said) when
    /// the server answers with something other than that range.
    async fn reopen(&self, at: u64) -> Result<Option<(reqwest::Response, usize)>, Error> {
        let d = self.desc;
        let (resp, endpoint) = self
            .client
            .blob_range(self.repository, &d.digest, at, Some(d.size - 1), self.tries)
            .await?;
        if !range_answered(&resp, at, d.size - 1, d.size) {
            self.reporter.info(&format!(
                "{}: asked for bytes {at}-, got something else (status {})",
                d.digest.short(),
                resp.status()
            ));
            return Ok(None);
        }
        Ok(Some((resp, endpoint)))
    }

    /// Write one answer's body into `writer`, up to `main.upto` (judging
    /// the stream as it goes); returns the network error that cut it, if
    /// one did.
    async fn pump(
        &self,
        writer: &mut dyn BlobWriter,
        (resp, endpoint): (reqwest::Response, usize),
        main: &mut Main,
    ) -> Result<Option<RegistryError>, Error> {
        let d = self.desc;
        let mut body = self.client.body(endpoint, resp);
        loop {
            let asked = Instant::now();
            let next = body.next().await;
            main.waited += asked.elapsed();
            let chunk = match next {
                None => return Ok(None),
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    self.client.give_up_on(endpoint);
                    return Ok(Some(e));
                }
            };
            let pos = writer.offset();
            let take = (chunk.len() as u64).min(main.upto - pos) as usize;
            if let Some(l) = self.limiter {
                l.take(take).await;
            }
            writer
                .write(chunk.slice(..take))
                .await
                .map_err(|e| self.cache_err(e))?;
            self.fetched.fetch_add(take as u64, Ordering::Relaxed);
            self.reporter.blob_progress(&d.digest, take as u64);
            let pos = pos + take as u64;
            if pos >= main.upto {
                return Ok(None);
            }
            self.judge(main, pos);
        }
    }

    /// Every [`WATCH`], until it asked once, judge where the stream's time
    /// went (`pos`: where it is): when it mostly waited for the network,
    /// the bytes after the next `chunk_size` go to the pieces, and the
    /// stream stops there.
    fn judge(&self, main: &mut Main, pos: u64) {
        let d = self.desc;
        let spent = main.window.elapsed();
        if main.split.is_none() || spent < WATCH {
            return;
        }
        let from = pos.saturating_add(self.chunking.chunk_size);
        if main.waited * 2 > spent && from < d.size {
            main.upto = from;
            let pieces = (d.size - from).div_ceil(self.chunking.chunk_size);
            self.reporter.info(&format!(
                "{}: the link is slower than hashing; bytes from {from} in {pieces} pieces of up to {} MiB, {} at once beside this stream",
                d.digest.short(),
                self.chunking.chunk_size / (1024 * 1024),
                self.chunking.max_chunks - 1
            ));
            let _ = main.split.take().map(|s| s.send(from));
        }
        (main.window, main.waited) = (Instant::now(), Duration::ZERO);
    }

    /// Remove this blob's piece files.
    fn clear_scratch(&self) {
        let prefix = format!("{}-", self.desc.digest.hex());
        if let Ok(rd) = std::fs::read_dir(self.scratch) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(&prefix) && name.ends_with(".chunk") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    /// Download bytes `start..=end` into the piece's file, retrying from
    /// where it stopped.
    async fn piece(&self, start: u64, end: u64) -> Result<(), PieceFail> {
        let d = self.desc;
        let path = self.piece_path(start);
        let want = end - start + 1;
        // Created synchronously: a piece dropped mid-way (another failed)
        // leaves no creation in flight to land after the scratch is cleared.
        let mut file = std::fs::File::create(&path)
            .map(tokio::fs::File::from_std)
            .map_err(|e| self.piece_io(&path, e))?;
        let (mut have, mut attempt) = (0u64, 0u32);
        let policy = self.client.retry_policy();
        while have < want {
            attempt += 1;
            let answer = self.piece_request(start + have, end).await?;
            let (held, broke) = self
                .fill(&mut file, &path, (start, end), have, answer)
                .await?;
            have = held;
            if have == want {
                break;
            }
            if self.tries.left() == 0 {
                let e = broke.unwrap_or_else(|| RegistryError::BadResponse {
                    registry: self.client.registry().to_string(),
                    detail: format!("{}: bytes {start}-{end} ended early", d.digest),
                });
                return Err(PieceFail::Failed(e.into()));
            }
            self.reporter.info(&format!(
                "{}: piece at byte {start} stopped at {have} of {want} bytes, resuming it",
                d.digest.short()
            ));
            tokio::time::sleep(policy.backoff(attempt)).await;
        }
        file.flush().await.map_err(|e| self.piece_io(&path, e))?;
        Ok(())
    }

    /// Ask for bytes `from..=end` of a piece; an answer with anything else
    /// is a [`PieceFail::NoRange`].
    async fn piece_request(
        &self,
        from: u64,
        end: u64,
    ) -> Result<(reqwest::Response, usize), PieceFail> {
        let d = self.desc;
        let (resp, endpoint) = self
            .client
            .blob_range(self.repository, &d.digest, from, Some(end), self.tries)
            .await
            .map_err(|e| PieceFail::Failed(e.into()))?;
        self.mark_used(endpoint);
        if !range_answered(&resp, from, end, d.size) {
            return Err(PieceFail::NoRange(format!(
                "asked for bytes {from}-{end}, got something else (status {}); one stream from here",
                resp.status()
            )));
        }
        Ok((resp, endpoint))
    }

    /// Write one answer's body into the file (at `path`) of the piece
    /// `start..=end`, which holds `have` bytes; returns how many it then
    /// holds and the network error that cut the body, if one did. More
    /// bytes than asked for are a [`PieceFail::NoRange`].
    async fn fill(
        &self,
        file: &mut tokio::fs::File,
        path: &Path,
        (start, end): (u64, u64),
        mut have: u64,
        (resp, endpoint): (reqwest::Response, usize),
    ) -> Result<(u64, Option<RegistryError>), PieceFail> {
        let want = end - start + 1;
        let mut body = self.client.body(endpoint, resp);
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    self.client.give_up_on(endpoint);
                    return Ok((have, Some(e)));
                }
            };
            if have + chunk.len() as u64 > want {
                return Err(PieceFail::NoRange(format!(
                    "bytes {start}-{end} came back longer than asked for; one stream from here"
                )));
            }
            if let Some(l) = self.limiter {
                l.take(chunk.len()).await;
            }
            file.write_all(&chunk)
                .await
                .map_err(|e| self.piece_io(path, e))?;
            have += chunk.len() as u64;
            self.fetched
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            self.reporter
                .blob_progress(&self.desc.digest, chunk.len() as u64);
        }
        Ok((have, None))
    }

    /// Append a finished piece to the blob's writer and remove its file.
    async fn append(&self, path: &Path, writer: &mut dyn BlobWriter) -> Result<(), Error> {
        use tokio::io::AsyncReadExt;
        let mut f = tokio::fs::File::open(path)
            .await
            .map_err(|e| self.cache_err(CacheError::io(path, e)))?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f
                .read(&mut buf)
                .await
                .map_err(|e| self.cache_err(CacheError::io(path, e)))?;
            if n == 0 {
                break;
            }
            writer
                .write(bytes::Bytes::copy_from_slice(&buf[..n]))
                .await
                .map_err(|e| self.cache_err(e))?;
        }
        let _ = tokio::fs::remove_file(path).await;
        Ok(())
    }
}
