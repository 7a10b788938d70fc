//! `oci-archive`: the OCI image layout (see `oci`) as one tar, the format
//! `skopeo copy … oci-archive:FILE` and `podman load` read. Built as a
//! layout in a temporary directory beside the destination, then written to
//! a temporary tar that is renamed into place when complete.

use crate::catalog::{Build, Kind, Plugin, PluginConfig, PluginError};
use crate::export::{Destination, ExportContext, ExportError, ExportImage, Exporter, TarOut};
use crate::plugins::exporters::oci::OciLayout;
use async_trait::async_trait;
use std::path::Path;
use std::sync::Arc;

pub struct OciArchive;

fn build(cfg: &PluginConfig) -> Result<Arc<dyn Exporter>, PluginError> {
    crate::catalog::options::<crate::catalog::NoOptions>(Kind::Exporter, "oci-archive", cfg)?;
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
        dest: &Destination,
        cx: &ExportContext<'_>,
    ) -> Result<(), ExportError> {
        let dest = dest.path()?;
        let work = crate::export::temp::Dir::beside(dest, Some(".imgpull-oci-archive-"))?;
        let layout = work.path().join("layout");
        OciLayout
            .export(images, &Destination::Path(layout.clone()), cx)
            .await?;
        let dest = dest.to_path_buf();
        tokio::task::spawn_blocking(move || tar_layout(&layout, &dest))
            .await
            .map_err(|e| ExportError::Invalid(format!("export task failed: {e}")))?
    }
}

fn tar_layout(layout: &Path, dest: &Path) -> Result<(), ExportError> {
    let mut out = TarOut::create(dest)?;
    match append_layout(&mut out.tar, layout) {
        Ok(()) => out.finish(dest),
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
            Err(ExportError::Invalid("interrupted".into()))
        }
        Err(e) => Err(out.err(e)),
    }
}

fn append_layout<W: std::io::Write>(
    tar: &mut tar::Builder<W>,
    layout: &Path,
) -> std::io::Result<()> {
    tar.mode(tar::HeaderMode::Deterministic);
    for f in ["oci-layout", "index.json"] {
        tar.append_path_with_name(layout.join(f), f)?;
    }
    let blobs_dir = layout.join("blobs/sha256");
    tar.append_dir("blobs", layout.join("blobs"))?;
    tar.append_dir("blobs/sha256", &blobs_dir)?;
    let mut blobs: Vec<String> = std::fs::read_dir(&blobs_dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    blobs.sort();
    for b in blobs {
        if crate::util::cancel::requested() {
            return Err(std::io::Error::from(std::io::ErrorKind::Interrupted));
        }
        tar.append_path_with_name(blobs_dir.join(&b), format!("blobs/sha256/{b}"))?;
    }
    Ok(())
}
