//! Fetch blobs into the cache: in parallel (bounded), each streamed to a
//! partial file while hashed, verified, then committed. A blob already in
//! the cache is not requested; a partial left by an interrupted run is
//! continued with `Range` (accepted only on a matching `206`).

use crate::cache::BlobWriter;
use crate::cache::{Begin, CacheBackend, CacheError};
use crate::oci::digest::Digest;
use crate::oci::manifest::Descriptor;
use crate::progress::Reporter;
use crate::registry::endpoints::Endpoints;
use crate::registry::{resumed_at, RegistryError, Tries};
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
    /// How `cfg` says blobs are downloaded (sizes were checked when the
    /// config was loaded).
    pub fn from_config(cfg: &crate::config::Config) -> FetchOptions {
        let size = |s: &str| crate::util::units::parse_size(s).unwrap_or(0);
        FetchOptions {
            concurrency: cfg.max_concurrent_downloads,
            chunking: Chunking {
                chunk_size: size(&cfg.chunk_size),
                max_chunks: cfg.max_chunks,
            },
            limiter: cfg.limit_rate.as_deref().map(|r| RateLimiter::new(size(r))),
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

async fn fetch_one(ctx: &Ctx<'_>, d: &Descriptor) -> Result<BlobOutcome, Error> {
    let Ctx {
        client,
        repository,
        cache,
        reporter,
        ..
    } = *ctx;
    let cache_err = |source: CacheError| Error::Cache {
        registry: client.registry().to_string(),
        source,
    };
    let hit = |fetched| BlobOutcome {
        digest: d.digest.clone(),
        size: d.size,
        cached: fetched == 0,
        fetched,
    };
    // A cached blob of the wrong size is a miss (and is replaced); so is
    // one whose bytes changed on disk (removed by `check`).
    if cache.stat(&d.digest).await.map_err(cache_err)? == Some(d.size) && intact(ctx, d).await? {
        cache.touch(&d.digest).await.map_err(cache_err)?;
        reporter.blob_start(&d.digest, d.size, true);
        reporter.blob_done(&d.digest);
        return Ok(hit(0));
    }
    let source = format!("{}/{repository}", client.registry());
    let place = ctx.tee.and_then(|t| Some((t, t.out.slot(&d.digest)?)));
    // Where the bytes go: the cache (and the output, when it has a place
    // for them), or only the output when the cache is a throwaway.
    let begin = || async {
        if let Some((t, slot)) = place.filter(|(t, _)| t.only) {
            if let Some(w) = PlaceWriter::new(t.out.clone(), slot, &d.digest, d.size) {
                return Ok(Begin::Writer(Box::new(w)));
            }
        }
        Ok(match cache.begin(&d.digest, d.size, &source).await? {
            Begin::Writer(w) => match place {
                Some((t, slot)) => Begin::Writer(TeeWriter::wrap(w, t.out.clone(), slot)),
                None => Begin::Writer(w),
            },
            present => present,
        })
    };
    let mut writer = match begin().await.map_err(cache_err)? {
        // Committed by another process while we waited for its lock.
        Begin::Present if intact(ctx, d).await? => {
            reporter.blob_start(&d.digest, d.size, true);
            reporter.blob_done(&d.digest);
            return Ok(hit(0));
        }
        Begin::Present => match begin().await.map_err(cache_err)? {
            Begin::Writer(w) => w,
            Begin::Present => return Err(cache_err(CacheError::Missing(d.digest.clone()))),
        },
        Begin::Writer(w) => w,
    };
    reporter.blob_start(&d.digest, d.size, false);
    let policy = client.retry_policy();
    // One budget for every request made for this blob (as docker's five
    // attempts per layer): resumes, pieces and retries alike.
    let tries = Tries::new(policy.attempts);
    let (mut fetched, mut attempt, mut started_over) = (0, 0, false);
    let mut chunking = ctx.opts.chunking;
    loop {
        attempt += 1;
        if attempt > 1 {
            let state = match writer.offset() {
                0 => crate::progress::BlobState::StartingOver,
                from => crate::progress::BlobState::Resuming { from },
            };
            reporter.blob_state(&d.digest, state);
        }
        let chunked = match cache.scratch_dir() {
            Some(dir) if chunking.applies(d.size - writer.offset().min(d.size)) => {
                let job = chunked::Job {
                    client,
                    repository,
                    desc: d,
                    scratch: &dir,
                    chunking,
                    limiter: ctx.opts.limiter.as_ref(),
                    reporter,
                    fetched: Default::default(),
                    used: Default::default(),
                    tries: &tries,
                };
                let ran = job.run(writer.as_mut()).await;
                fetched += ran.fetched;
                match ran.result {
                    Ok(chunked::Outcome::Done) => Some((ran.endpoints, Ok(()))),
                    Ok(chunked::Outcome::Unsupported) => {
                        reporter.info(&format!(
                            "{}: the server does not serve ranges; one stream",
                            d.digest.short()
                        ));
                        chunking.max_chunks = 1;
                        None
                    }
                    Err(e) => Some((ran.endpoints, Err(e))),
                }
            }
            _ => None,
        };
        let (endpoints, result) = match chunked {
            Some(r) => r,
            None => {
                let (n, endpoint, result) = download(ctx, d, writer.as_mut(), &tries).await;
                fetched += n;
                (endpoint.into_iter().collect::<Vec<_>>(), result)
            }
        };
        match result {
            Ok(()) => {}
            // A server about to send the wrong number of bytes: like
            // corruption, one more try from scratch (elsewhere if a mirror).
            Err(Error::Registry(e @ RegistryError::LengthMismatch { .. })) => {
                if std::mem::replace(&mut started_over, true) {
                    return Err(e.into());
                }
                reporter.info(&format!("{e}; trying again"));
                writer.restart().await.map_err(cache_err)?;
                reporter.blob_state(&d.digest, crate::progress::BlobState::StartingOver);
                continue;
            }
            // A reset or stall mid-blob: continue from what was received.
            Err(Error::Registry(RegistryError::Network { .. })) if tries.left() > 0 => {
                reporter.info(&format!(
                    "{}: connection lost at byte {}, resuming",
                    d.digest.short(),
                    writer.offset()
                ));
                tokio::time::sleep(policy.backoff(attempt)).await;
                continue;
            }
            Err(e) => return Err(e),
        }
        // The body ended cleanly but early (no length was announced, or
        // a piece came up short): continue from what was received, with
        // any writer (the output's own cannot be reopened at an offset
        // once committed).
        if writer.offset() < d.size && tries.left() > 0 {
            reporter.info(&format!(
                "{}: the answer ended at byte {} of {}, resuming",
                d.digest.short(),
                writer.offset(),
                d.size
            ));
            tokio::time::sleep(policy.backoff(attempt)).await;
            continue;
        }
        reporter.blob_state(&d.digest, crate::progress::BlobState::Verifying);
        let e = match writer.commit().await {
            Ok(()) => break,
            Err(e) => e,
        };
        let again = match &e {
            // Wrong bytes: they were discarded; one more try from scratch,
            // not from a mirror that served them.
            CacheError::DigestMismatch { .. } => {
                for i in &endpoints {
                    client.give_up_on(*i);
                }
                !std::mem::replace(&mut started_over, true)
            }
            // A short blob resumed above, before its commit.
            _ => false,
        };
        if !again {
            return Err(cache_err(e));
        }
        reporter.info(&format!("{}: {e}; trying again", d.digest.short()));
        writer = match begin().await.map_err(cache_err)? {
            Begin::Present => break,
            Begin::Writer(w) => w,
        };
    }
    reporter.blob_done(&d.digest);
    Ok(BlobOutcome {
        digest: d.digest.clone(),
        size: d.size,
        cached: false,
        fetched,
    })
}

/// Whether the cached copy of `d` is intact (see [`CacheBackend::check`]);
/// a wrong one was removed, and is said so.
async fn intact(ctx: &Ctx<'_>, d: &Descriptor) -> Result<bool, Error> {
    let ok = ctx
        .cache
        .check(&d.digest)
        .await
        .map_err(|source| Error::Cache {
            registry: ctx.client.registry().to_string(),
            source,
        })?;
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
    let Ctx {
        client,
        repository,
        reporter,
        ..
    } = *ctx;
    let cache_err = |source: CacheError| Error::Cache {
        registry: client.registry().to_string(),
        source,
    };
    let offset = writer.offset();
    if offset >= d.size {
        return (0, None, Ok(()));
    }
    let (resp, endpoint) = match client
        .blob_range(repository, &d.digest, offset, None, tries)
        .await
    {
        Ok(r) => r,
        Err(e) => return (0, None, Err(e.into())),
    };
    let (resp, endpoint) = if offset > 0 && resumed_at(&resp, offset, d.size).is_none() {
        if let Err(e) = writer.restart().await {
            return (0, Some(endpoint), Err(cache_err(e)));
        }
        reporter.blob_state(&d.digest, crate::progress::BlobState::StartingOver);
        if resp.status() == reqwest::StatusCode::OK {
            // The whole blob: take it from byte 0.
            (resp, endpoint)
        } else {
            // A range we did not ask for: ask again for everything.
            drop(resp);
            match client
                .blob_range(repository, &d.digest, 0, None, tries)
                .await
            {
                Ok(r) => r,
                Err(e) => return (0, None, Err(e.into())),
            }
        }
    } else {
        (resp, endpoint)
    };
    if writer.offset() > 0 {
        reporter.info(&format!(
            "{}: resuming at byte {}",
            d.digest.short(),
            writer.offset()
        ));
        reporter.blob_state(
            &d.digest,
            crate::progress::BlobState::Resuming {
                from: writer.offset(),
            },
        );
    }
    let url = crate::registry::shown_url(resp.url().as_str());
    let expected = d.size - writer.offset();
    if let Some(found) = resp.content_length().filter(|n| *n != expected) {
        client.give_up_on(endpoint);
        let e = RegistryError::LengthMismatch {
            registry: client.registry().to_string(),
            url,
            digest: d.digest.clone(),
            expected,
            found,
        };
        return (0, Some(endpoint), Err(e.into()));
    }
    let mut body = client.body(endpoint, resp);
    let mut got = 0;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                // A mirror that drops us is not asked again: the next
                // endpoint continues from here with Range.
                client.give_up_on(endpoint);
                return (got, Some(endpoint), Err(e.into()));
            }
        };
        let n = chunk.len();
        if let Some(l) = &ctx.opts.limiter {
            l.take(n).await;
        }
        if let Err(e) = writer.write(chunk).await {
            return (got, Some(endpoint), Err(cache_err(e)));
        }
        got += n as u64;
        reporter.blob_progress(&d.digest, n as u64);
    }
    (got, Some(endpoint), Ok(()))
}
