//! `registry`: the images pushed into a registry (`-o docker://HOST/PATH:TAG`),
//! read from the cache. A copy: blobs the destination has are skipped, a
//! blob of the source repository is mounted when the destination is the
//! same registry, the manifests go byte for byte (the index too, when every
//! platform it names was pulled), so the tag names the source's digest.

use crate::catalog::{Build, Plugin, PluginConfig, PluginError};
use crate::export::push::{push, CacheBlobs, PushImage, PushManifest, PushSettings};
use crate::export::{Destination, ExportContext, ExportError, ExportImage, Exporter};
use crate::oci::manifest::{ImageIndex, Manifest};
use crate::oci::reference::Reference;
use async_trait::async_trait;
use std::sync::Arc;

pub struct RegistryExporter {
    settings: PushSettings,
}

fn build(cfg: &PluginConfig) -> Result<Arc<dyn Exporter>, PluginError> {
    Ok(Arc::new(RegistryExporter {
        settings: PushSettings::from_options(cfg)?,
    }))
}

inventory::submit! {
    Plugin {
        name: "registry",
        summary: "push into a registry: -o docker://HOST/PATH:TAG (options chunk_size, max_concurrent_uploads)",
        build: Build::Exporter(build),
    }
}

#[async_trait]
impl Exporter for RegistryExporter {
    fn extension(&self) -> Option<&'static str> {
        None
    }

    async fn export(
        &self,
        images: &[ExportImage],
        dest: &Destination,
        cx: &ExportContext<'_>,
    ) -> Result<(), ExportError> {
        let Destination::Reference(to) = dest else {
            return Err(ExportError::Invalid(format!(
                "the registry format writes to an image in a registry (-o docker://HOST/PATH:TAG), not to {dest}"
            )));
        };
        let [image] = images else {
            return Err(ExportError::Invalid(
                "one image per docker:// destination".into(),
            ));
        };
        let target = destination(to, image)?;
        let client = cx.registries.client(&target).await?;
        let mut settings = self.settings.clone();
        if image.reference.registry == target.registry {
            settings.mount_from = vec![image.reference.repository.clone()];
        }
        let plan = plan(image, target)?;
        let report = push(
            &client,
            &plan,
            &CacheBlobs(cx.cache),
            &settings,
            cx.reporter,
        )
        .await?;
        cx.reporter.info(&format!(
            "pushed {}: {} blobs uploaded ({} bytes), {} already there, {} mounted; digest {}",
            report.destination,
            report.uploaded,
            report.bytes_uploaded,
            report.present,
            report.mounted,
            report.digest.map(|d| d.to_string()).unwrap_or_default()
        ));
        Ok(())
    }
}

/// Where `image` goes: `to`, with the source's tag when `to` has none.
fn destination(to: &Reference, image: &ExportImage) -> Result<Reference, ExportError> {
    let mut target = to.clone();
    if target.tag.is_none() && target.digest.is_none() {
        target.tag = image.tag.as_ref().and_then(|t| t.tag.clone());
    }
    if target.tag.is_none() && target.digest.is_none() {
        return Err(ExportError::Invalid(format!(
            "docker://{to} names no tag and the source has none: add :TAG"
        )));
    }
    Ok(target)
}

/// The manifests to push: the index byte for byte when every manifest it
/// names was pulled.
fn plan(image: &ExportImage, dest: Reference) -> Result<PushImage, ExportError> {
    let manifests: Vec<PushManifest> = image
        .manifests
        .iter()
        .map(|m| PushManifest {
            bytes: m.bytes.clone(),
            media_type: m.media_type.clone(),
            digest: m.digest.clone(),
            blobs: std::iter::once(m.manifest.config.clone())
                .chain(m.manifest.layers.iter().cloned())
                .collect(),
            platform: m.platform.clone(),
        })
        .collect();
    let index = image.top.as_ref().filter(|top| {
        matches!(Manifest::parse(&top.media_type, &top.bytes),
            Ok(Manifest::Index(ImageIndex { manifests: named, .. }))
                if named.iter().all(|n| manifests.iter().any(|m| m.digest == n.digest)))
    });
    Ok(PushImage {
        dest,
        manifests,
        index: index.map(|top| PushManifest {
            bytes: top.bytes.clone(),
            media_type: top.media_type.clone(),
            digest: top.digest.clone(),
            blobs: Vec::new(),
            platform: None,
        }),
    })
}
