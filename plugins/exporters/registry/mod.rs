//! `registry`: the images pushed into a registry (`-o docker://HOST/PATH:TAG`),
//! read from the cache. A copy: blobs the destination has are skipped, a
//! blob of the source repository is mounted when the destination is the
//! same registry, the manifests go byte for byte (the index too, when every
//! platform it names was pulled), so the tag names the source's digest.

use crate::catalog::{Build, Kind, Plugin, PluginConfig, PluginError};
use crate::export::push::{
    push, Blobs, CacheBlobs, PushImage, PushManifest, PushReport, PushSettings,
};
use crate::export::{
    Destination, ExportContext, ExportError, ExportImage, Exporter, LiveOutput, Registries,
};
use crate::oci::digest::Digest;
use crate::oci::manifest::{ImageIndex, Manifest};
use crate::oci::reference::Reference;
use crate::progress::Reporter;
use async_trait::async_trait;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Blobs up to this size go in one request; bigger ones in PATCHes of it.
pub const DEFAULT_CHUNK: u64 = 64 << 20;

/// `[exporters.registry]`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    chunk_size: Option<crate::util::units::Size>,
    max_concurrent_uploads: Option<usize>,
}

pub struct RegistryExporter {
    settings: PushSettings,
}

fn build(cfg: &PluginConfig) -> Result<Arc<dyn Exporter>, PluginError> {
    let o: Options = crate::catalog::options(Kind::Exporter, "registry", cfg)?;
    let concurrency = o.max_concurrent_uploads.unwrap_or(3);
    if !(1..=64).contains(&concurrency) {
        return Err(PluginError::invalid(
            Kind::Exporter,
            "registry",
            format!("max_concurrent_uploads must be 1 to 64, got {concurrency}"),
        ));
    }
    let chunk = o.chunk_size.map(|s| s.0).unwrap_or(DEFAULT_CHUNK).max(1);
    Ok(Arc::new(RegistryExporter {
        settings: PushSettings { concurrency, chunk },
    }))
}

inventory::submit! {
    Plugin {
        name: "registry",
        summary: "push into a registry: -o docker://HOST/PATH:TAG (options chunk_size, max_concurrent_uploads)",
        build: Build::Exporter(build),
    }
}

mod live;

#[async_trait]
impl Exporter for RegistryExporter {
    fn extension(&self) -> Option<&'static str> {
        None
    }

    /// A copy (on a multi-threaded runtime, as the CLI's) uploads each
    /// layer as it downloads.
    fn live(
        &self,
        images: &[ExportImage],
        dest: &Destination,
        cx: &ExportContext<'_>,
    ) -> Result<Option<Arc<dyn LiveOutput>>, ExportError> {
        use tokio::runtime::{Handle, RuntimeFlavor};
        let (Destination::Reference(to), [image]) = (dest, images) else {
            return Ok(None);
        };
        let Ok(rt) = Handle::try_current() else {
            return Ok(None);
        };
        if rt.runtime_flavor() != RuntimeFlavor::MultiThread {
            return Ok(None);
        }
        let target = destination(to, image)?;
        let plan = self.copy_plan(image, target.clone())?;
        let client = tokio::task::block_in_place(|| rt.block_on(cx.registries.client(&target)))?;
        let upload = live::LiveUpload::new(client, plan, self.settings.clone());
        Ok(Some(Arc::new(upload)))
    }

    /// The layers the destination repository has (`HEAD`, several at
    /// once): a copy does not download them (as skopeo does not).
    async fn already_there(
        &self,
        images: &[ExportImage],
        dest: &Destination,
        cx: &ExportContext<'_>,
    ) -> Result<BTreeSet<Digest>, ExportError> {
        use futures_util::StreamExt;
        let (Destination::Reference(to), [image]) = (dest, images) else {
            return Ok(BTreeSet::new());
        };
        let target = destination(to, image)?;
        let client = cx.registries.client(&target).await?;
        let layers: BTreeSet<&Digest> = image
            .manifests
            .iter()
            .flat_map(|m| m.manifest.layers.iter().map(|l| &l.digest))
            .collect();
        let heads: Vec<_> = layers
            .into_iter()
            .map(|d| {
                let (client, repo) = (&client, target.repository.as_str());
                async move { Ok::<_, ExportError>((d, client.blob_present(repo, d).await?)) }
            })
            .collect();
        let answers = futures_util::stream::iter(heads)
            .buffer_unordered(self.settings.concurrency)
            .collect::<Vec<_>>()
            .await;
        let mut there = BTreeSet::new();
        for a in answers {
            if let (d, true) = a? {
                there.insert(d.clone());
            }
        }
        Ok(there)
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
        let plan = self.copy_plan(image, target)?;
        let blobs = CacheBlobs(cx.cache);
        self.push(&[plan], &blobs, cx.registries, cx.reporter)
            .await?;
        Ok(())
    }

    /// Each image with a client of its registry (one per registry).
    async fn push(
        &self,
        images: &[PushImage],
        blobs: &dyn Blobs,
        registries: &dyn Registries,
        reporter: &dyn Reporter,
    ) -> Result<Vec<PushReport>, ExportError> {
        let mut clients: Vec<(String, crate::registry::RegistryClient)> = Vec::new();
        let mut reports = Vec::new();
        for image in images {
            let registry = &image.dest.registry;
            if !clients.iter().any(|(r, _)| r == registry) {
                let c = registries.client(&image.dest).await?;
                clients.push((registry.clone(), c));
            }
            let (_, client) = clients.iter().find(|(r, _)| r == registry).expect("added");
            reports.push(push(client, image, blobs, &self.settings, reporter).await?);
        }
        Ok(reports)
    }
}

impl RegistryExporter {
    /// What a copy of `image` to `target` pushes; within one registry, the
    /// blobs are mounted from the source repository.
    fn copy_plan(&self, image: &ExportImage, target: Reference) -> Result<PushImage, ExportError> {
        let mut p = plan(image, target.clone())?;
        if image.reference.registry == target.registry {
            p.mount_from = vec![image.reference.repository.clone()];
        }
        Ok(p)
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
        mount_from: Vec::new(),
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
