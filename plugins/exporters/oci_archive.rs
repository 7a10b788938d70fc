//! `oci-archive`: the OCI image layout (see `oci`) as one tar, the format
//! `skopeo copy … oci-archive:FILE` and `podman load` read. Built as a
//! layout in a temporary directory beside the destination, then written to
//! a temporary tar that is renamed into place when complete.

use crate::cache::CacheBackend;
use crate::catalog::{Build, Kind, Plugin, PluginConfig, PluginError};
use crate::export::{ExportError, ExportImage, Exporter};
use crate::plugins::exporters::oci::OciLayout;
use async_trait::async_trait;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct OciArchive;

fn build(cfg: &PluginConfig) -> Result<Arc<dyn Exporter>, PluginError> {
    crate::catalog::no_options(Kind::Exporter, "oci-archive", cfg)?;
    Ok(Arc::new(OciArchive))
}

inventory::submit! {
    Plugin {
        name: "oci-archive",
        summary: "an OCI image layout as one tar",
        build: Build::Exporter(build),
    }
}

#[async_trait]
impl Exporter for OciArchive {
    fn extension(&self) -> Option<&'static str> {
        Some("tar")
    }

    async fn export(
        &self,
        images: &[ExportImage],
        cache: &dyn CacheBackend,
        dest: &Path,
    ) -> Result<(), ExportError> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let work = tempfile::Builder::new()
            .prefix(".imgpull-oci-archive-")
            .tempdir_in(&dir)
            .map_err(|e| ExportError::io(&dir, e))?;
        let layout = work.path().join("layout");
        OciLayout.export(images, cache, &layout).await?;
        let dest = dest.to_path_buf();
        tokio::task::spawn_blocking(move || tar_layout(&layout, &dest))
            .await
            .map_err(|e| ExportError::Invalid(format!("export task failed: {e}")))?
    }
}

fn tar_layout(layout: &Path, dest: &Path) -> Result<(), ExportError> {
    let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.partial-"))
        .tempfile_in(dir)
        .map_err(|e| ExportError::io(dir, e))?;
    let io = |e: std::io::Error| ExportError::io(tmp.path(), e);
    let out = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file().try_clone().map_err(io)?);
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    for f in ["oci-layout", "index.json"] {
        tar.append_path_with_name(layout.join(f), f).map_err(io)?;
    }
    tar.append_dir("blobs", layout.join("blobs")).map_err(io)?;
    tar.append_dir("blobs/sha256", layout.join("blobs/sha256")).map_err(io)?;
    let mut blobs: Vec<_> = std::fs::read_dir(layout.join("blobs/sha256"))
        .map_err(io)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    blobs.sort();
    for b in blobs {
        if crate::cancel::requested() {
            return Err(ExportError::Invalid("interrupted".into()));
        }
        tar.append_path_with_name(layout.join("blobs/sha256").join(&b), format!("blobs/sha256/{b}"))
            .map_err(io)?;
    }
    let mut out = tar.into_inner().map_err(io)?;
    out.flush().map_err(io)?;
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    crate::fsutil::set_readable(tmp.path()).map_err(io)?;
    tmp.persist(dest).map_err(|e| ExportError::io(dest, e.error))?;
    Ok(())
}
