//! `rootfs`: the image's filesystem in a directory — every layer applied in
//! order (whiteouts, opaque directories, links, modes; ownership and device
//! nodes when root), as a runtime would unpack it, without Docker. Entries
//! that would land outside the directory are refused (see
//! [`crate::layer::unpack`]). Each layer's uncompressed stream is checked against
//! its diff_id. Built under a temporary name beside the destination and
//! renamed into place, so a failure leaves no directory that looks done.

use crate::cache::BlobSource;
use crate::catalog::{Build, Kind, Plugin, PluginConfig, PluginError};
use crate::export::{Destination, ExportContext, ExportError, ExportImage, Exporter};
use crate::layer::unpack::{UnpackError, Unpacker};
use crate::layer::{GuardError, LayerError, TarGuard};
use crate::oci::digest::{Digest, Verifier};
use async_trait::async_trait;
use std::path::Path;
use std::sync::Arc;

pub struct Rootfs {
    /// Create device nodes (as root); `devices = true`, `--devices`.
    devices: bool,
}

/// `[exporters.rootfs]`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default)]
    devices: bool,
}

fn build(cfg: &PluginConfig) -> Result<Arc<dyn Exporter>, PluginError> {
    let o: Options = crate::catalog::options(Kind::Exporter, "rootfs", cfg)?;
    Ok(Arc::new(Rootfs { devices: o.devices }))
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
        dest: &Destination,
        cx: &ExportContext<'_>,
    ) -> Result<(), ExportError> {
        let (cache, reporter) = (cx.cache, cx.reporter);
        let dest = dest.path()?;
        let ems: Vec<_> = images.iter().flat_map(|i| &i.manifests).collect();
        let [em] = ems.as_slice() else {
            return Err(ExportError::Invalid(format!(
                "rootfs writes one image for one platform, not {}; pull them one at a time, or use --format oci",
                ems.len()
            )));
        };
        let config = cache.source(&em.manifest.config.digest).await?;
        let diff_ids = crate::export::diff_ids(&config, em)?;
        let mut layers = Vec::new();
        for (l, d) in em.manifest.layers.iter().zip(diff_ids) {
            layers.push((cache.source(&l.digest).await?, d));
        }
        let dest = dest.to_path_buf();
        let devices = self.devices;
        let warnings = tokio::task::spawn_blocking(move || unpack(&layers, &dest, devices))
            .await
            .map_err(|e| ExportError::Invalid(format!("export task failed: {e}")))??;
        for w in warnings {
            reporter.warn(&w);
        }
        Ok(())
    }
}

fn unpack(
    layers: &[(BlobSource, Digest)],
    dest: &Path,
    devices: bool,
) -> Result<Vec<String>, ExportError> {
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
    let tmp = crate::export::temp::Dir::beside(dest, None)?;
    let root = tmp.path().to_path_buf();
    crate::util::fs::set_dir_mode(&root).map_err(io(&root))?;
    let mut unpacker = Unpacker::new(&root);
    unpacker.devices = devices;
    for (blob, diff_id) in layers {
        let layer_err = |e| ExportError::layer(diff_id, blob.name(), e);
        let guarded = TarGuard::tar(
            crate::layer::open(blob).map_err(io(blob.name()))?,
            crate::layer::bound_for(blob),
        );
        let mut stream = crate::layer::Hashing::new(guarded, Verifier::of(diff_id.algorithm()));
        match unpacker.apply(&mut stream) {
            Err(UnpackError::Tar(e)) if GuardError::find(&e).is_some() => {
                return Err(layer_err(LayerError::from_io(e)))
            }
            r => r?,
        }
        let found = stream.finish().map_err(|e| match GuardError::find(&e) {
            Some(_) => layer_err(LayerError::from_io(e)),
            None => ExportError::io(blob.name(), e),
        })?;
        if found != *diff_id {
            return Err(layer_err(LayerError::DiffIdMismatch {
                expected: diff_id.clone(),
                found,
            }));
        }
    }
    // Before directory modes are applied: a failure here must leave a
    // temporary tree that can still be removed.
    if empty_dir {
        std::fs::remove_dir(dest).map_err(io(dest))?;
    }
    let warnings = unpacker.finish()?;
    tmp.persist(dest)?;
    Ok(warnings)
}
