//! `imgpull cache …`: renders what `cache_ops` finds.

use super::args::{CacheArgs, CacheCommand, Global};
use crate::cache::ops::{self, PruneOptions};
use crate::config::Overrides;
use crate::error::{exit, Error};
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
    let (cache, _) = engine.open_cache(false, std::path::Path::new("."))?;
    let cache = cache.as_ref();
    let err = |source| Error::Cache {
        registry: "cache".into(),
        source,
    };
    match args.command {
        CacheCommand::Ls => {
            let blobs = cache.list().await.map_err(err)?;
            if args.json {
                let rows: Vec<_> = blobs
                    .iter()
                    .map(|b| serde_json::json!({"digest": b.digest, "size": b.size, "last_use": b.last_use.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()).map(|d| d.as_secs())}))
                    .collect();
                json(&rows);
            } else {
                for b in blobs {
                    println!("{}  {:>12}  {}", b.digest, b.size, ago(b.last_use));
                }
            }
        }
        CacheCommand::Stats => {
            let s = ops::stats(cache).await.map_err(err)?;
            if args.json {
                json(&s);
            } else {
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
                let t = |e: Option<u64>| {
                    ago(e.map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s)))
                };
                println!("Oldest use: {}", t(s.oldest_use));
                println!("Newest use: {}", t(s.newest_use));
            }
        }
        CacheCommand::Verify { repair } => {
            let (checked, bad) = ops::verify(cache, repair).await.map_err(err)?;
            if args.json {
                json(&serde_json::json!({"checked": checked, "bad": bad}));
            } else {
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
        }
        CacheCommand::Import { file } => {
            let r = crate::engine::import::import_tar(&file, cache).await?;
            if args.json {
                json(&r);
            } else {
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
            }
        }
        CacheCommand::Prune {
            older_than,
            max_size,
            all,
        } => {
            let parse = |r: Result<_, String>| r.map_err(Error::Usage);
            let opts = PruneOptions {
                older_than: older_than
                    .as_deref()
                    .map(crate::util::units::parse_duration)
                    .transpose()
                    .map_err(Error::Usage)?,
                max_size: parse(
                    max_size
                        .as_deref()
                        .map(crate::util::units::parse_size)
                        .transpose(),
                )?,
                all,
                partial_max_age: partial_max_age(&engine)?,
            };
            if opts.older_than.is_none() && opts.max_size.is_none() && !opts.all {
                eprintln!(
                    "note: only partial downloads older than {}h are removed; use --older-than, --max-size or --all for blobs",
                    opts.partial_max_age.as_secs() / 3600
                );
            }
            let p = ops::prune(cache, &opts).await.map_err(err)?;
            if args.json {
                json(&p);
            } else {
                println!(
                    "Removed {} blobs ({:.1} MB) and {} partial downloads",
                    p.blobs,
                    p.bytes as f64 / 1_048_576.0,
                    p.partials
                );
            }
        }
    }
    Ok(0)
}

/// `[caches.local] partial_max_age`, else 7 days.
fn partial_max_age(engine: &crate::engine::Engine) -> Result<Duration, Error> {
    let cfg = engine.config();
    match cfg
        .caches
        .get(&cfg.cache)
        .and_then(|t| t.get("partial_max_age"))
    {
        Some(v) => v
            .as_str()
            .ok_or_else(|| Error::Usage("partial_max_age must be a string like \"7d\"".into()))
            .and_then(|s| crate::util::units::parse_duration(s).map_err(Error::Usage)),
        None => Ok(Duration::from_secs(7 * 86_400)),
    }
}
