//! Fetch blobs into the cache: in parallel (bounded), each streamed to a
//! partial file while hashed, verified, then committed. A blob already in
//! the cache is not requested; a partial left by an interrupted run is
//! continued with `Range` (accepted only on a matching `206`).

use crate::cache::BlobWriter;
use crate::cache::{Begin, CacheBackend, CacheError};
use crate::export::SlotId;
use crate::oci::digest::Digest;
use crate::oci::manifest::Descriptor;
use crate::progress::{BlobState, Reporter};
use crate::registry::endpoints::Endpoints;
use crate::registry::{resumed_at, RegistryError, RetryPolicy, Tries};
use crate::transfer::chunked::{self, Chunking};
use crate::transfer::tee::{PlaceWriter, TeeTo, TeeWriter};
use crate::transfer::throttle::RateLimiter;
use crate::transfer::FetchError as Error;
use futures_util::{StreamExt, TryStreamExt};
use std::collections::HashSet;

/// How blobs are downloaded.
#[derive(Default)]
pub struct FetchOptions {
    /// Blobs downloaded at once.
    pub concurrency: usize,
    /// How big blobs are split into parallel ranges.
    pub chunking: Chunking,
    /// A cap on the total download rate (`--limit-rate`).
    pub limiter: Option<RateLimiter>,
}

impl FetchOptions {
    /// How `cfg` says blobs are downloaded.
    pub fn from_config(cfg: &crate::config::Config) -> FetchOptions {
        FetchOptions {
            concurrency: cfg.max_concurrent_downloads,
            chunking: Chunking {
                chunk_size: cfg.chunk_size.0,
                max_chunks: cfg.max_chunks,
            },
            limiter: cfg.limit_rate.map(|r| RateLimiter::new(r.0)),
        }
    }
}

/// What every download of one pull shares.
struct Ctx<'a> {
    client: &'a Endpoints,
    repository: &'a str,
    cache: &'a dyn CacheBackend,
    opts: &'a FetchOptions,
    reporter: &'a dyn Reporter,
    /// An output the blobs are also written into as they arrive.
    tee: Option<&'a TeeTo>,
}

/// What happened to one blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobOutcome {
    pub digest: Digest,
    pub size: u64,
    /// Already in the cache (or committed there by another process while
    /// we waited): nothing was downloaded.
    pub cached: bool,
    /// Bytes requested from the registry (less than `size` on a resume).
    pub fetched: u64,
}

/// Blobs of one repository to fetch.
pub struct Source<'a> {
    pub client: &'a Endpoints,
    pub repository: &'a str,
    pub blobs: &'a [Descriptor],
}

/// Fetch the blobs of one repository into the cache (see [`fetch_many`]).
pub async fn fetch_all(
    client: &Endpoints,
    repository: &str,
    cache: &dyn CacheBackend,
    blobs: &[Descriptor],
    opts: &FetchOptions,
    reporter: &dyn Reporter,
    tee: Option<&TeeTo>,
) -> Result<Vec<BlobOutcome>, Error> {
    let source = Source {
        client,
        repository,
        blobs,
    };
    let mut all = fetch_many(&[source], cache, opts, reporter, tee)
        .await
        .map_err(|(_, e)| e)?;
    Ok(all.pop().expect("one outcome list per source"))
}

/// Make sure every blob the sources list is in `cache`, downloading at
/// most `opts.concurrency` at once across all of them; a digest listed
/// twice (by one source or several) is fetched once, from the first source
/// that lists it. Returns one outcome per listed blob, per source, in the
/// order given; a blob listed earlier (by an earlier source, or earlier by
/// the same one) counts as cached where it is listed again. Blobs
/// downloaded are also written into their places in `tee` (see
/// [`crate::transfer::tee`]). An error says which source's blob failed.
pub async fn fetch_many(
    sources: &[Source<'_>],
    cache: &dyn CacheBackend,
    opts: &FetchOptions,
    reporter: &dyn Reporter,
    tee: Option<&TeeTo>,
) -> Result<Vec<Vec<BlobOutcome>>, (usize, Error)> {
    let ctxs: Vec<Ctx> = sources
        .iter()
        .map(|s| Ctx {
            client: s.client,
            repository: s.repository,
            cache,
            opts,
            reporter,
            tee,
        })
        .collect();
    let mut seen = HashSet::new();
    let unique: Vec<(usize, &Descriptor)> = sources
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.blobs.iter().map(move |d| (i, d)))
        .filter(|(_, d)| seen.insert(d.digest.clone()))
        .collect();
    let ctxs = &ctxs;
    let outcomes: Vec<BlobOutcome> = futures_util::stream::iter(unique)
        .map(|(i, d)| async move { fetch_one(&ctxs[i], d).await.map_err(|e| (i, e)) })
        .buffer_unordered(opts.concurrency.max(1))
        .try_collect()
        .await?;
    let mut reported = HashSet::new();
    Ok(sources
        .iter()
        .map(|s| {
            s.blobs
                .iter()
                .map(|d| {
                    let o = outcomes
                        .iter()
                        .find(|o| o.digest == d.digest)
                        .expect("every unique blob has an outcome");
                    match reported.insert(d.digest.clone()) {
                        true => o.clone(),
                        false => BlobOutcome {
                            cached: true,
                            fetched: 0,
                            ..o.clone()
                        },
                    }
                })
                .collect()
        })
        .collect())
}

impl Ctx<'_> {
    /// A cache failure, said with the registry the blob comes from.
    fn cache_err(&self, source: CacheError) -> Error {
        Error::Cache {
            registry: self.client.registry().to_string(),
            source,
        }
    }
}

/// Fetch one blob: nothing is requested when the cache holds it intact
/// (or another process commits it meanwhile); otherwise it is tried until
/// committed (see [`Blob::until_committed`]).
async fn fetch_one(ctx: &Ctx<'_>, d: &Descriptor) -> Result<BlobOutcome, Error> {
    let hit = BlobOutcome {
        digest: d.digest.clone(),
        size: d.size,
        cached: true,
        fetched: 0,
    };
    if cached(ctx, d).await? {
        return Ok(hit);
    }
    let mut blob = Blob::new(ctx, d);
    let Some(writer) = blob.open().await? else {
        return Ok(hit);
    };
    let Some(writer) = blob.fill_from_store(writer).await? else {
        // From the store behind the cache: none of it from the registry.
        ctx.reporter.blob_start(&d.digest, d.size, true);
        ctx.reporter.blob_done(&d.digest);
        return Ok(hit);
    };
    ctx.reporter.blob_start(&d.digest, d.size, false);
    blob.until_committed(writer).await?;
    ctx.reporter.blob_done(&d.digest);
    Ok(BlobOutcome {
        digest: d.digest.clone(),
        size: d.size,
        cached: false,
        fetched: blob.fetched,
    })
}

/// Whether the cache holds `d` intact, of its size: then it is touched and
/// reported done. A cached blob of the wrong size is a miss (and is
/// replaced); so is one whose bytes changed on disk (removed by `check`).
async fn cached(ctx: &Ctx<'_>, d: &Descriptor) -> Result<bool, Error> {
    let size = ctx
        .cache
        .stat(&d.digest)
        .await
        .map_err(|e| ctx.cache_err(e))?;
    if size != Some(d.size) || !intact(ctx, d).await? {
        return Ok(false);
    }
    ctx.cache
        .touch(&d.digest)
        .await
        .map_err(|e| ctx.cache_err(e))?;
    ctx.reporter.blob_start(&d.digest, d.size, true);
    ctx.reporter.blob_done(&d.digest);
    Ok(true)
}

/// What follows a failed try at a blob.
enum Next {
    /// Continue from what the writer holds, after a pause.
    Resume,
    /// Throw away what was received and try once more from byte 0.
    StartOver,
    /// Fail the blob with this error.
    GiveUp(Error),
}

/// One blob being fetched, and what its tries share.
struct Blob<'c, 'a> {
    ctx: &'c Ctx<'a>,
    d: &'c Descriptor,
    /// Where the blob comes from, as the cache records it.
    source: String,
    /// The blob's place in the output, when it has one.
    place: Option<(&'a TeeTo, SlotId)>,
    /// The pauses before resumes.
    policy: RetryPolicy,
    /// One budget for every request made for this blob (as docker's five
    /// attempts per layer): resumes, pieces and retries alike.
    tries: Tries,
    /// How the blob is split (one stream once ranges are found unserved).
    chunking: Chunking,
    /// Bytes requested from the registry, over every try.
    fetched: u64,
    /// Tries begun.
    attempt: u32,
    /// Whether the one try from scratch (after wrong bytes or a wrong
    /// length) was taken.
    started_over: bool,
}

impl<'c, 'a> Blob<'c, 'a> {
    /// `d` before its first try, nothing received yet.
    fn new(ctx: &'c Ctx<'a>, d: &'c Descriptor) -> Self {
        let policy = ctx.client.retry_policy();
        Blob {
            ctx,
            d,
            source: format!("{}/{}", ctx.client.registry(), ctx.repository),
            place: ctx.tee.and_then(|t| Some((t, t.out.slot(&d.digest)?))),
            tries: Tries::new(policy.attempts),
            policy,
            chunking: ctx.opts.chunking,
            fetched: 0,
            attempt: 0,
            started_over: false,
        }
    }

    /// Where the bytes go: the cache (and the output, when it has a place
    /// for them), or only the output when the cache is a throwaway.
    async fn begin(&self) -> Result<Begin, Error> {
        let d = self.d;
        if let Some((t, slot)) = self.place.filter(|(t, _)| t.only) {
            if let Some(w) = PlaceWriter::new(t.out.clone(), slot, &d.digest, d.size) {
                return Ok(Begin::Writer(Box::new(w)));
            }
        }
        let begun = self
            .ctx
            .cache
            .begin(&d.digest, d.size, &self.source)
            .await
            .map_err(|e| self.ctx.cache_err(e))?;
        Ok(match begun {
            Begin::Writer(w) => match self.place {
                Some((t, slot)) => Begin::Writer(TeeWriter::wrap(w, t.out.clone(), slot)),
                None => Begin::Writer(w),
            },
            present => present,
        })
    }

    /// The writer the tries go into (it may hold a partial of an earlier
    /// run, which they resume); `None` when another process committed the
    /// blob, intact, while we waited for its lock (reported done).
    async fn open(&self) -> Result<Option<Box<dyn BlobWriter>>, Error> {
        let (ctx, d) = (self.ctx, self.d);
        Ok(Some(match self.begin().await? {
            Begin::Present if intact(ctx, d).await? => {
                ctx.reporter.blob_start(&d.digest, d.size, true);
                ctx.reporter.blob_done(&d.digest);
                return Ok(None);
            }
            Begin::Present => match self.begin().await? {
                Begin::Writer(w) => w,
                Begin::Present => return Err(ctx.cache_err(CacheError::Missing(d.digest.clone()))),
            },
            Begin::Writer(w) => w,
        }))
    }

    /// Fill a fresh writer from the store behind the cache, when there is
    /// one and it has the blob (see [`CacheBackend::fill`]); `None` once
    /// committed. Wrong bytes from the store cost no try: the writer
    /// returned (a new one) is for the registry.
    async fn fill_from_store(
        &self,
        mut writer: Box<dyn BlobWriter>,
    ) -> Result<Option<Box<dyn BlobWriter>>, Error> {
        let (ctx, d) = (self.ctx, self.d);
        if writer.offset() > 0 || !ctx.cache.fill(&d.digest, d.size, writer.as_mut()).await {
            return Ok(Some(writer));
        }
        match writer.commit().await {
            Ok(()) => Ok(None),
            Err(CacheError::DigestMismatch { .. }) => Ok(match self.begin().await? {
                Begin::Present => None,
                Begin::Writer(w) => Some(w),
            }),
            Err(e) => Err(ctx.cache_err(e)),
        }
    }

    /// Try until the blob is committed (or turns up in the cache): each
    /// try continues from what `writer` holds; [`Self::after_try`] decides
    /// what follows a failed one, [`Self::commit`] a wrong blob.
    async fn until_committed(&mut self, mut writer: Box<dyn BlobWriter>) -> Result<(), Error> {
        loop {
            self.attempt += 1;
            if self.attempt > 1 {
                self.report_again(writer.offset());
            }
            let (endpoints, result) = self.transfer(writer.as_mut()).await;
            match self.after_try(result, writer.offset()) {
                None => {}
                Some(Next::Resume) => {
                    tokio::time::sleep(self.policy.backoff(self.attempt)).await;
                    continue;
                }
                Some(Next::StartOver) => {
                    writer.restart().await.map_err(|e| self.ctx.cache_err(e))?;
                    self.ctx
                        .reporter
                        .blob_state(&self.d.digest, BlobState::StartingOver);
                    continue;
                }
                Some(Next::GiveUp(e)) => return Err(e),
            }
            match self.commit(writer, &endpoints).await? {
                Some(w) => writer = w,
                None => return Ok(()),
            }
        }
    }

    /// Say whether a try after the first starts over or resumes.
    fn report_again(&self, offset: u64) {
        let state = match offset {
            0 => BlobState::StartingOver,
            from => BlobState::Resuming { from },
        };
        self.ctx.reporter.blob_state(&self.d.digest, state);
    }

    /// One try at the rest of the blob: in pieces when that applies, else
    /// in one stream. Returns the endpoints that served it and how it ended.
    async fn transfer(&mut self, writer: &mut dyn BlobWriter) -> (Vec<usize>, Result<(), Error>) {
        if let Some(ran) = self.chunked(writer).await {
            return ran;
        }
        let (n, endpoint, result) = download(self.ctx, self.d, writer, &self.tries).await;
        self.fetched += n;
        (endpoint.into_iter().collect(), result)
    }

    /// The try in parallel pieces, when the cache has a scratch directory
    /// and enough is left; `None` when it does not apply, or when the
    /// server turns out not to serve ranges (one stream from then on).
    async fn chunked(
        &mut self,
        writer: &mut dyn BlobWriter,
    ) -> Option<(Vec<usize>, Result<(), Error>)> {
        let (ctx, d) = (self.ctx, self.d);
        let dir = ctx.cache.scratch_dir()?;
        if !self.chunking.applies(d.size - writer.offset().min(d.size)) {
            return None;
        }
        let job = chunked::Job {
            client: ctx.client,
            repository: ctx.repository,
            desc: d,
            scratch: &dir,
            chunking: self.chunking,
            limiter: ctx.opts.limiter.as_ref(),
            reporter: ctx.reporter,
            fetched: Default::default(),
            used: Default::default(),
            tries: &self.tries,
        };
        let ran = job.run(writer).await;
        self.fetched += ran.fetched;
        match ran.result {
            Ok(chunked::Outcome::Done) => Some((ran.endpoints, Ok(()))),
            Ok(chunked::Outcome::Unsupported) => {
                ctx.reporter.info(&format!(
                    "{}: the server does not serve ranges; one stream",
                    d.digest.short()
                ));
                self.chunking.max_chunks = 1;
                None
            }
            Err(e) => Some((ran.endpoints, Err(e))),
        }
    }

    /// What follows a try that ended with `result`, the writer at
    /// `offset`; `None` when it did not fail: every byte is there (or no
    /// try is left to get more), to be verified.
    fn after_try(&mut self, result: Result<(), Error>, offset: u64) -> Option<Next> {
        let (reporter, d) = (self.ctx.reporter, self.d);
        match result {
            // A server about to send the wrong number of bytes: like
            // corruption, one more try from scratch (elsewhere if a mirror).
            Err(Error::Registry(e @ RegistryError::LengthMismatch { .. })) => {
                if std::mem::replace(&mut self.started_over, true) {
                    return Some(Next::GiveUp(e.into()));
                }
                reporter.info(&format!("{e}; trying again"));
                Some(Next::StartOver)
            }
            // A reset or stall mid-blob: continue from what was received.
            Err(Error::Registry(RegistryError::Network { .. })) if self.tries.left() > 0 => {
                reporter.info(&format!(
                    "{}: connection lost at byte {offset}, resuming",
                    d.digest.short(),
                ));
                Some(Next::Resume)
            }
            Err(e) => Some(Next::GiveUp(e)),
            // The body ended cleanly but early (no length was announced,
            // or a piece came up short): continue from what was received,
            // with any writer (the output's own cannot be reopened at an
            // offset once committed).
            Ok(()) if offset < d.size && self.tries.left() > 0 => {
                reporter.info(&format!(
                    "{}: the answer ended at byte {offset} of {}, resuming",
                    d.digest.short(),
                    d.size
                ));
                Some(Next::Resume)
            }
            Ok(()) => None,
        }
    }

    /// Verify and commit what `writer` holds; `None` once the blob is in
    /// the cache. Wrong bytes (discarded by the commit) get one more try
    /// from scratch, not from the endpoints that served them: a new writer
    /// is returned (unless the blob turned up meanwhile).
    async fn commit(
        &mut self,
        writer: Box<dyn BlobWriter>,
        endpoints: &[usize],
    ) -> Result<Option<Box<dyn BlobWriter>>, Error> {
        let (ctx, d) = (self.ctx, self.d);
        ctx.reporter.blob_state(&d.digest, BlobState::Verifying);
        let Err(e) = writer.commit().await else {
            return Ok(None);
        };
        let again = match &e {
            CacheError::DigestMismatch { .. } => {
                for i in endpoints {
                    ctx.client.give_up_on(*i);
                }
                !std::mem::replace(&mut self.started_over, true)
            }
            // A short blob resumed above, before its commit.
            _ => false,
        };
        if !again {
            return Err(ctx.cache_err(e));
        }
        ctx.reporter
            .info(&format!("{}: {e}; trying again", d.digest.short()));
        Ok(match self.begin().await? {
            Begin::Present => None,
            Begin::Writer(w) => Some(w),
        })
    }
}

/// Whether the cached copy of `d` is intact (see [`CacheBackend::check`]);
/// a wrong one was removed, and is said so.
async fn intact(ctx: &Ctx<'_>, d: &Descriptor) -> Result<bool, Error> {
    let ok = ctx
        .cache
        .check(&d.digest)
        .await
        .map_err(|e| ctx.cache_err(e))?;
    if !ok {
        ctx.reporter.warn(&format!(
            "cached blob {} did not match its digest (changed on disk?); removed, downloading it again",
            d.digest
        ));
    }
    Ok(ok)
}

/// Fetch the rest of a blob into `writer` (from its offset). Returns the
/// bytes received, the endpoint that sent them, and how it ended.
async fn download(
    ctx: &Ctx<'_>,
    d: &Descriptor,
    writer: &mut dyn BlobWriter,
    tries: &Tries,
) -> (u64, Option<usize>, Result<(), Error>) {
    if writer.offset() >= d.size {
        return (0, None, Ok(()));
    }
    let (resp, endpoint) = match request(ctx, d, writer, tries).await {
        Ok(r) => r,
        Err((endpoint, e)) => return (0, endpoint, Err(e)),
    };
    let from = writer.offset();
    if from > 0 {
        ctx.reporter
            .info(&format!("{}: resuming at byte {from}", d.digest.short()));
        ctx.reporter
            .blob_state(&d.digest, BlobState::Resuming { from });
    }
    if let Err(e) = check_length(ctx, d, &resp, endpoint, d.size - from) {
        return (0, Some(endpoint), Err(e));
    }
    let (got, result) = receive(ctx, d, writer, endpoint, resp).await;
    (got, Some(endpoint), result)
}

/// Ask for the blob from the writer's offset. When the server does not
/// resume there, the writer starts over: a whole blob (`200`) is taken
/// from byte 0, a range not asked for is asked for again from 0. A
/// failure says the endpoint that answered, if one did.
async fn request(
    ctx: &Ctx<'_>,
    d: &Descriptor,
    writer: &mut dyn BlobWriter,
    tries: &Tries,
) -> Result<(reqwest::Response, usize), (Option<usize>, Error)> {
    let offset = writer.offset();
    let (resp, endpoint) = ctx
        .client
        .blob_range(ctx.repository, &d.digest, offset, None, tries)
        .await
        .map_err(|e| (None, Error::from(e)))?;
    if offset == 0 || resumed_at(&resp, offset, d.size).is_some() {
        return Ok((resp, endpoint));
    }
    writer
        .restart()
        .await
        .map_err(|e| (Some(endpoint), ctx.cache_err(e)))?;
    ctx.reporter.blob_state(&d.digest, BlobState::StartingOver);
    if resp.status() == reqwest::StatusCode::OK {
        // The whole blob: take it from byte 0.
        return Ok((resp, endpoint));
    }
    // A range we did not ask for: ask again for everything.
    drop(resp);
    ctx.client
        .blob_range(ctx.repository, &d.digest, 0, None, tries)
        .await
        .map_err(|e| (None, Error::from(e)))
}

/// Refuse an answer that announces other than the `expected` bytes, and
/// the endpoint that sent it, before a byte is written.
fn check_length(
    ctx: &Ctx<'_>,
    d: &Descriptor,
    resp: &reqwest::Response,
    endpoint: usize,
    expected: u64,
) -> Result<(), Error> {
    let Some(found) = resp.content_length().filter(|n| *n != expected) else {
        return Ok(());
    };
    ctx.client.give_up_on(endpoint);
    Err(RegistryError::LengthMismatch {
        registry: ctx.client.registry().to_string(),
        url: crate::registry::shown_url(resp.url().as_str()),
        digest: d.digest.clone(),
        expected,
        found,
    }
    .into())
}

/// Stream the body of `resp` into `writer`: the bytes received, and how
/// it ended.
async fn receive(
    ctx: &Ctx<'_>,
    d: &Descriptor,
    writer: &mut dyn BlobWriter,
    endpoint: usize,
    resp: reqwest::Response,
) -> (u64, Result<(), Error>) {
    let mut body = ctx.client.body(endpoint, resp);
    let mut got = 0;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                // A mirror that drops us is not asked again: the next
                // endpoint continues from here with Range.
                ctx.client.give_up_on(endpoint);
                return (got, Err(e.into()));
            }
        };
        let n = chunk.len();
        if let Some(l) = &ctx.opts.limiter {
            l.take(n).await;
        }
        if let Err(e) = writer.write(chunk).await {
            return (got, Err(ctx.cache_err(e)));
        }
        got += n as u64;
        ctx.reporter.blob_progress(&d.digest, n as u64);
    }
    (got, Ok(()))
}
