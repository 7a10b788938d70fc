//! `rootfs`: the image's filesystem in a directory — every layer applied in
//! order (whiteouts, opaque directories, links, modes; ownership and device
//! nodes when root), as a runtime would unpack it, without Docker. Entries
//! that would land outside the directory are refused (see
//! [`crate::unpack`]). Each layer's uncompressed stream is checked against
//! its diff_id. Built under a temporary name beside the destination and
//! renamed into place, so a failure leaves no directory that looks done.

use crate::cache::CacheBackend;
use crate::catalog::{Build, Kind, Plugin, PluginConfig, PluginError};
use crate::digest::{Digest, Verifier};
use crate::export::{parent_dir, ExportError, ExportImage, Exporter};
use crate::progress::Reporter;
use crate::unpack::Unpacker;
use async_trait::async_trait;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct Rootfs;

fn build(cfg: &PluginConfig) -> Result<Arc<dyn Exporter>, PluginError> {
    crate::catalog::no_options(Kind::Exporter, "rootfs", cfg)?;
    Ok(Arc::new(Rootfs))
}

inventory::submit! {
    Plugin {
        name: "rootfs",
        summary: "the image's files, layers applied, in a directory (one image, one platform)",
        build: Build::Exporter(build),
    }
}

#[async_trait]
impl Exporter for Rootfs {
    fn extension(&self) -> Option<&'static str> {
        None
    }

    fn accepts_uncompressed_layers(&self) -> bool {
        true
    }

    async fn export(
        &self,
        images: &[ExportImage],
        cache: &dyn CacheBackend,
        dest: &Path,
        reporter: &dyn Reporter,
    ) -> Result<(), ExportError> {
        let ems: Vec<_> = images.iter().flat_map(|i| &i.manifests).collect();
        let [em] = ems.as_slice() else {
            return Err(ExportError::Invalid(format!(
                "rootfs writes one image for one platform, not {}; pull them one at a time, or use --format oci",
                ems.len()
            )));
        };
        let config = cache.blob_path(&em.manifest.config.digest)?;
        let diff_ids = crate::export::diff_ids(&config, em)?;
        let mut layers = Vec::new();
        for (l, d) in em.manifest.layers.iter().zip(diff_ids) {
            layers.push((cache.blob_path(&l.digest)?, d));
        }
        let dest = dest.to_path_buf();
        let warnings = tokio::task::spawn_blocking(move || unpack(&layers, &dest))
            .await
            .map_err(|e| ExportError::Invalid(format!("export task failed: {e}")))??;
        for w in warnings {
            reporter.warn(&w);
        }
        Ok(())
    }
}

fn unpack(layers: &[(PathBuf, Digest)], dest: &Path) -> Result<Vec<String>, ExportError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| ExportError::io(p, e)
    };
    let empty_dir = dest.symlink_metadata().is_ok_and(|m| m.is_dir())
        && std::fs::read_dir(dest).map_err(io(dest))?.next().is_none();
    if dest.symlink_metadata().is_ok() && !empty_dir {
        return Err(ExportError::Invalid(format!(
            "{} exists; rootfs needs a new or empty directory",
            dest.display()
        )));
    }
    let parent = parent_dir(dest);
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.partial-"))
        .tempdir_in(&parent)
        .map_err(io(&parent))?;
    let root = tmp.path().to_path_buf();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).map_err(io(&root))?;
    let mut unpacker = Unpacker::new(&root);
    for (blob, diff_id) in layers {
        let verifier = Verifier::new(diff_id).ok_or_else(|| {
            ExportError::Invalid(format!("diff_id {diff_id}: unsupported digest algorithm"))
        })?;
        let mut stream = crate::layer::Hashing::new(crate::layer::open(blob).map_err(io(blob))?, verifier);
        unpacker.apply(&mut stream)?;
        let got = stream.finish().map_err(io(blob))?;
        if got != *diff_id {
            return Err(ExportError::Invalid(format!(
                "layer {} uncompresses to {got}, but the image config says {diff_id}",
                blob.display()
            )));
        }
    }
    // Before directory modes are applied: a failure here must leave a
    // temporary tree that can still be removed.
    if empty_dir {
        std::fs::remove_dir(dest).map_err(io(dest))?;
    }
    let warnings = unpacker.finish()?;
    let built = tmp.keep();
    std::fs::rename(&built, dest).map_err(|e| {
        let _ = std::fs::remove_dir_all(&built);
        ExportError::io(dest, e)
    })?;
    Ok(warnings)
}
