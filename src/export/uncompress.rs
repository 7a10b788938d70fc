//! Layers uncompressed for outputs that carry plain layer tars
//! (`--layer-format uncompressed`, `--legacy`): written to a temporary
//! directory beside the output, each checked against its diff_id, on as
//! many threads as there are cores.

use super::ExportError;
use crate::cache::BlobSource;
use crate::oci::digest::Digest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Uncompressed layer tars by diff_id; the files go when this is dropped.
pub struct Uncompressed {
    _dir: Option<super::temp::Dir>,
    done: BTreeMap<Digest, (PathBuf, u64)>,
}

impl Uncompressed {
    /// Uncompress each `(diff_id, compressed blob)` (duplicates are
    /// done once) into a temporary directory in `beside`.
    pub fn run(
        jobs: Vec<(Digest, BlobSource)>,
        beside: &Path,
    ) -> Result<Uncompressed, ExportError> {
        let jobs: Vec<(Digest, BlobSource)> = jobs
            .into_iter()
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect();
        if jobs.is_empty() {
            return Ok(Uncompressed {
                _dir: None,
                done: BTreeMap::new(),
            });
        }
        let dir = super::temp::Dir::new_in(beside, ".imgpull-layers-")?;
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Result<Done, ExportError>>> = Mutex::new(Vec::new());
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(jobs.len());
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((diff_id, src)) = jobs.get(i) else {
                        break;
                    };
                    let r = one(diff_id, src, dir.path());
                    let failed = r.is_err();
                    results.lock().expect("no panics while held").push(r);
                    if failed {
                        // Stop the other workers early too.
                        next.store(jobs.len(), Ordering::Relaxed);
                        break;
                    }
                });
            }
        });
        let mut done = BTreeMap::new();
        for r in results.into_inner().expect("workers finished") {
            let (d, path, size) = r?;
            done.insert(d, (path, size));
        }
        Ok(Uncompressed {
            _dir: Some(dir),
            done,
        })
    }

    /// The uncompressed tar for `diff_id` and its size.
    pub fn get(&self, diff_id: &Digest) -> Option<(&Path, u64)> {
        self.done.get(diff_id).map(|(p, s)| (p.as_path(), *s))
    }
}

/// One layer uncompressed: diff_id, file, size.
type Done = (Digest, PathBuf, u64);

fn one(diff_id: &Digest, src: &BlobSource, dir: &Path) -> Result<Done, ExportError> {
    if crate::util::cancel::requested() {
        return Err(ExportError::Invalid("interrupted".into()));
    }
    let to = dir.join(diff_id.hex());
    let file = std::fs::File::create(&to).map_err(|e| ExportError::io(&to, e))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let size = crate::layer::decompress_verified(src, diff_id, &mut out).map_err(|e| match e {
        crate::layer::LayerError::Io(e) => ExportError::io(&to, e),
        other => ExportError::layer(diff_id, src.name(), other),
    })?;
    use std::io::Write;
    out.flush().map_err(|e| ExportError::io(&to, e))?;
    Ok((diff_id.clone(), to, size))
}
