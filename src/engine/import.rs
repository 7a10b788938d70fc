//! `imgpull cache import FILE.tar`: take the blobs of a `docker save` tar —
//! classic (`<id>/layer.tar`, uncompressed) or Docker 25+/OCI-style
//! (`blobs/sha256/…`) — into the cache, so later pulls reuse them.
//!
//! Compressed layers and configs are stored under their own digest, which
//! is what a registry names them by. An uncompressed layer is stored under
//! its digest too, which is its diff_id: a later docker-archive export of
//! an image whose config lists that diff_id uses it instead of downloading
//! the compressed blob (see `pull`); formats that must carry the registry's
//! compressed blobs (the OCI layout) still download those.

use crate::cache::{Begin, CacheBackend, CacheError};
use crate::error::Error;
use crate::oci::digest::{Digest, Verifier};
use std::collections::BTreeSet;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Default, serde::Serialize)]
pub struct ImportReport {
    /// `RepoTags` of the images found.
    pub tags: Vec<String>,
    pub images: usize,
    /// Blobs stored (configs and layers), and those already cached.
    pub added: usize,
    pub already: usize,
    /// Layers stored uncompressed (usable by docker-archive output only).
    pub uncompressed_layers: usize,
    pub bytes: u64,
}

/// An entry of `manifest.json`.
use super::sources::LegacyEntry as Entry;

/// A file of the tar, hashed and spooled to disk.
struct Spooled {
    digest: Digest,
    size: u64,
    file: tempfile::NamedTempFile,
    compressed: bool,
    is_layer: bool,
}

pub async fn import_tar(path: &Path, cache: &dyn CacheBackend) -> Result<ImportReport, Error> {
    let p = path.to_path_buf();
    let (entries, spooled) = tokio::task::spawn_blocking(move || spool(&p))
        .await
        .map_err(|e| Error::io(path, std::io::Error::other(e)))??;
    let mut report = ImportReport {
        images: entries.len(),
        tags: entries
            .iter()
            .flat_map(|e| e.repo_tags.clone().unwrap_or_default())
            .collect(),
        ..ImportReport::default()
    };
    let err = |source: CacheError| Error::Cache {
        registry: "import".into(),
        source,
    };
    for s in spooled {
        if s.is_layer && !s.compressed {
            report.uncompressed_layers += 1;
        }
        let mut w = match cache
            .begin(&s.digest, s.size, &format!("import {}", path.display()))
            .await
            .map_err(err)?
        {
            Begin::Present => {
                report.already += 1;
                continue;
            }
            Begin::Writer(w) => w,
        };
        w.restart().await.map_err(err)?;
        let mut f = s.file.reopen().map_err(|e| Error::io(s.file.path(), e))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).map_err(|e| Error::io(s.file.path(), e))?;
            if n == 0 {
                break;
            }
            w.write(bytes::Bytes::copy_from_slice(&buf[..n]))
                .await
                .map_err(err)?;
        }
        w.commit().await.map_err(err)?;
        report.added += 1;
        report.bytes += s.size;
    }
    Ok(report)
}

fn bad(path: &Path, why: impl Into<String>) -> Error {
    Error::Usage(format!(
        "{}: not a docker save tar: {}",
        path.display(),
        why.into()
    ))
}

/// Pass 1 reads manifest.json; pass 2 spools the files it names.
fn spool(path: &Path) -> Result<(Vec<Entry>, Vec<Spooled>), Error> {
    let open = || std::fs::File::open(path).map_err(|e| Error::io(path, e));
    let mut manifest = None;
    let mut ar = tar::Archive::new(open()?);
    for e in ar.entries().map_err(|e| Error::io(path, e))? {
        let mut e = e.map_err(|e| Error::io(path, e))?;
        if e.path().ok().as_deref() == Some(Path::new("manifest.json")) {
            let mut text = Vec::new();
            e.by_ref()
                .take(16 << 20)
                .read_to_end(&mut text)
                .map_err(|e| Error::io(path, e))?;
            manifest = Some(text);
            break;
        }
    }
    let text = manifest.ok_or_else(|| bad(path, "no manifest.json"))?;
    let entries: Vec<Entry> =
        serde_json::from_slice(&text).map_err(|e| bad(path, format!("manifest.json: {e}")))?;
    let configs: BTreeSet<PathBuf> = entries.iter().map(|e| PathBuf::from(&e.config)).collect();
    let layers: BTreeSet<PathBuf> = entries
        .iter()
        .flat_map(|e| e.layers.iter().map(PathBuf::from))
        .collect();
    let mut out = Vec::new();
    let mut ar = tar::Archive::new(open()?);
    for e in ar.entries().map_err(|e| Error::io(path, e))? {
        let mut e = e.map_err(|e| Error::io(path, e))?;
        let Ok(name) = e.path().map(|p| p.into_owned()) else {
            continue;
        };
        let (is_config, is_layer) = (configs.contains(&name), layers.contains(&name));
        if !(is_config || is_layer) || !e.header().entry_type().is_file() {
            continue;
        }
        let mut tmp =
            tempfile::NamedTempFile::new().map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let mut v = Verifier::sha256();
        let mut buf = vec![0u8; 1 << 20];
        let mut first = [0u8; 2];
        loop {
            let n = e.read(&mut buf).map_err(|e| Error::io(path, e))?;
            if n == 0 {
                break;
            }
            if v.is_empty() && n >= 2 {
                first.copy_from_slice(&buf[..2]);
            }
            v.update(&buf[..n]);
            tmp.write_all(&buf[..n])
                .map_err(|e| Error::io(tmp.path(), e))?;
        }
        tmp.flush().map_err(|e| Error::io(tmp.path(), e))?;
        tmp.rewind().map_err(|e| Error::io(tmp.path(), e))?;
        let size = v.len();
        // gzip or zstd magic: a compressed layer, as a registry serves it.
        let compressed = first == [0x1f, 0x8b] || first == [0x28, 0xb5];
        out.push(Spooled {
            digest: v.finish(),
            size,
            file: tmp,
            compressed,
            is_layer,
        });
    }
    Ok((entries, out))
}
