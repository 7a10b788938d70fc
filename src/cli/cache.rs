//! `imgpull cache …`: renders what `cache::ops` finds.

use super::args::{CacheArgs, CacheCommand, Global};
use super::errors::exit;
use crate::cache::ops::{self, PruneOptions};
use crate::cache::{BlobInfo, CacheBackend, CacheError};
use crate::config::Overrides;
use crate::error::Error;
use std::path::Path;
use std::time::{Duration, SystemTime};

fn ago(t: Option<SystemTime>) -> String {
    match t.and_then(|t| SystemTime::now().duration_since(t).ok()) {
        None => "-".into(),
        Some(d) if d < Duration::from_secs(3600) => format!("{}m ago", d.as_secs() / 60),
        Some(d) if d < Duration::from_secs(86_400) => format!("{}h ago", d.as_secs() / 3600),
        Some(d) => format!("{}d ago", d.as_secs() / 86_400),
    }
}

fn json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).expect("serializes"));
}

/// Returns the exit code (verify finds bad blobs: 7).
pub async fn run(global: &Global, args: CacheArgs) -> Result<i32, Error> {
    let overrides = Overrides {
        cache_dir: args.cache_dir.clone(),
        ..Overrides::default()
    };
    let engine = super::engine(global, overrides)?;
    let (cache, _) = engine.open_cache(false, Path::new("."))?;
    let cache = cache.as_ref();
    let as_json = args.json;
    match args.command {
        CacheCommand::Ls => ls(cache, as_json).await.map(|()| 0),
        CacheCommand::Stats => stats(cache, as_json).await.map(|()| 0),
        CacheCommand::Verify { repair, store } => verify(cache, repair, store, as_json).await,
        CacheCommand::Import { file } => import(cache, &file, as_json).await.map(|()| 0),
        CacheCommand::Prune {
            older_than,
            max_size,
            all,
        } => {
            let opts = prune_options(&engine, older_than, max_size, all)?;
            prune(cache, &opts, as_json).await.map(|()| 0)
        }
    }
}

/// A cache failure of `imgpull cache …`.
fn cache_error(source: CacheError) -> Error {
    Error::Cache {
        registry: "cache".into(),
        source,
    }
}

/// `cache ls`: every blob with its size and last use.
async fn ls(cache: &dyn CacheBackend, as_json: bool) -> Result<(), Error> {
    let blobs = cache.list().await.map_err(cache_error)?;
    if as_json {
        let rows: Vec<_> = blobs.iter().map(blob_row).collect();
        json(&rows);
    } else {
        for b in blobs {
            println!("{}  {:>12}  {}", b.digest, b.size, ago(b.last_use));
        }
    }
    Ok(())
}

/// One blob of `cache ls --json` (last use in seconds since the epoch).
fn blob_row(b: &BlobInfo) -> serde_json::Value {
    serde_json::json!({
        "digest": b.digest,
        "size": b.size,
        "last_use": b
            .last_use
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_secs()),
    })
}

/// `cache stats`: blob and partial-download totals, oldest and newest use.
async fn stats(cache: &dyn CacheBackend, as_json: bool) -> Result<(), Error> {
    let s = ops::stats(cache).await.map_err(cache_error)?;
    if as_json {
        json(&s);
        return Ok(());
    }
    println!("Cache:     {}", cache.describe());
    println!(
        "Blobs:     {} ({:.1} MB)",
        s.blobs,
        s.bytes as f64 / 1_048_576.0
    );
    println!(
        "Partials:  {} ({:.1} MB)",
        s.partials,
        s.partial_bytes as f64 / 1_048_576.0
    );
    let t = |e: Option<u64>| ago(e.map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s)));
    println!("Oldest use: {}", t(s.oldest_use));
    println!("Newest use: {}", t(s.newest_use));
    if let Some(st) = &s.store {
        let mb = |b: u64| b as f64 / 1_048_576.0;
        println!("Store:     {}", st.store);
        println!(
            "  from the store: {} ({:.1} MB); uploaded: {} ({:.1} MB); already there: {}",
            st.fetched,
            mb(st.fetched_bytes),
            st.uploaded,
            mb(st.uploaded_bytes),
            st.already_there
        );
        println!(
            "  bad objects: {}; failed requests: {}",
            st.bad_objects, st.failures
        );
    }
    Ok(())
}

/// `cache verify`: rehash every blob; the exit code is
/// [`exit::INTEGRITY`] when bad ones are found and left in place.
async fn verify(
    cache: &dyn CacheBackend,
    repair: bool,
    store: bool,
    as_json: bool,
) -> Result<i32, Error> {
    let (mut checked, mut bad) = ops::verify(cache, repair).await.map_err(cache_error)?;
    let mut in_store = None;
    if store {
        let Some(found) = cache.verify_store(repair).await else {
            return Err(Error::Usage(format!(
                "--store: the cache {} has no store behind it (cache = \"object-store\")",
                cache.describe()
            )));
        };
        let (n, b) = found.map_err(cache_error)?;
        in_store = Some((n, b.len()));
        checked += n;
        bad.extend(b);
    }
    if as_json {
        let store = in_store.map(|(n, b)| serde_json::json!({"checked": n, "bad": b}));
        json(&serde_json::json!({"checked": checked, "bad": bad, "store": store}));
    } else {
        if let Some((n, b)) = in_store {
            println!("store: {n} objects checked, {b} bad");
        }
        for b in &bad {
            let found = b
                .found
                .as_ref()
                .map(|d| d.to_string())
                .unwrap_or_else(|| "unreadable".into());
            let action = if b.removed { " (removed)" } else { "" };
            println!("BAD {}: content hashes to {found}{action}", b.digest);
        }
        println!("{checked} blobs checked, {} bad", bad.len());
    }
    if !bad.is_empty() && !repair {
        eprintln!("hint: run `imgpull cache verify --repair` to remove them; the next pull downloads them again");
        return Ok(exit::INTEGRITY);
    }
    Ok(0)
}

/// `cache import`: store the blobs of a `docker save` tar.
async fn import(cache: &dyn CacheBackend, file: &Path, as_json: bool) -> Result<(), Error> {
    let r = crate::engine::import::import_tar(file, cache).await?;
    if as_json {
        json(&r);
        return Ok(());
    }
    println!(
        "Imported {} image(s) {}: {} blobs added ({:.1} MB), {} already cached",
        r.images,
        r.tags.join(", "),
        r.added,
        r.bytes as f64 / 1_048_576.0,
        r.already
    );
    if r.uncompressed_layers > 0 {
        println!(
            "{} layer(s) were stored uncompressed: pulls to docker-archive reuse them; \
             the oci format needs the registry's compressed blobs and still downloads those",
            r.uncompressed_layers
        );
    }
    Ok(())
}

/// What `cache prune` removes, from its flags and the cache's
/// `partial_max_age`.
fn prune_options(
    engine: &crate::engine::Engine,
    older_than: Option<String>,
    max_size: Option<String>,
    all: bool,
) -> Result<PruneOptions, Error> {
    Ok(PruneOptions {
        older_than: older_than
            .as_deref()
            .map(crate::util::units::parse_duration)
            .transpose()
            .map_err(Error::Usage)?,
        max_size: max_size
            .as_deref()
            .map(crate::util::units::parse_size)
            .transpose()
            .map_err(Error::Usage)?,
        all,
        partial_max_age: partial_max_age(engine)?,
    })
}

/// `cache prune`: remove what `opts` selects (saying first when that is
/// only stale partial downloads).
async fn prune(cache: &dyn CacheBackend, opts: &PruneOptions, as_json: bool) -> Result<(), Error> {
    if opts.older_than.is_none() && opts.max_size.is_none() && !opts.all {
        eprintln!(
            "note: only partial downloads older than {}h are removed; use --older-than, --max-size or --all for blobs",
            opts.partial_max_age.as_secs() / 3600
        );
    }
    let p = ops::prune(cache, opts).await.map_err(cache_error)?;
    if as_json {
        json(&p);
    } else {
        println!(
            "Removed {} blobs ({:.1} MB) and {} partial downloads",
            p.blobs,
            p.bytes as f64 / 1_048_576.0,
            p.partials
        );
    }
    Ok(())
}

/// `[caches.local] partial_max_age`, else 7 days.
fn partial_max_age(engine: &crate::engine::Engine) -> Result<Duration, Error> {
    let cfg = engine.config();
    match cfg
        .caches
        .get(&cfg.cache)
        .and_then(|t| t.get("partial_max_age"))
    {
        // Read as the plugin reads it (a `Span`), naming the key, not the value.
        Some(v) => <crate::util::units::Span as serde::Deserialize>::deserialize(v.clone())
            .map(|s| s.0)
            .map_err(|_| {
                Error::Usage(format!(
                    "caches.{}.partial_max_age: expected a duration like 7d or 90s",
                    cfg.cache
                ))
            }),
        None => Ok(Duration::from_secs(7 * 86_400)),
    }
}
