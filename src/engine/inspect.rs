//! `inspect`: what a reference names — an index's platforms, or an image's
//! layers and config — without downloading any layer.

use crate::credentials::CredentialProvider;
use crate::engine::Engine;
use crate::error::Error;
use crate::oci::digest::Digest;
use crate::oci::manifest::{Descriptor, Manifest};
use crate::oci::platform::{Platform, Selection};
use crate::oci::reference::Reference;
use crate::resolve::{choose_all, fetch_child, fetch_top, is_image_entry};
use serde::Serialize;

pub struct InspectOptions {
    pub reference: Reference,
    /// Inspect the image an index holds for this platform (first of the list).
    pub platforms: Option<Selection>,
    pub cli_credentials: Option<Box<dyn CredentialProvider>>,
}

/// The result; `raw` is the manifest exactly as served. (Built once per
/// command: not worth boxing the larger variant.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Inspection {
    Index {
        reference: String,
        media_type: String,
        digest: Digest,
        size: usize,
        manifests: Vec<IndexEntry>,
        #[serde(skip)]
        raw: Vec<u8>,
    },
    Image {
        reference: String,
        media_type: String,
        digest: Digest,
        size: usize,
        /// The platform the index named, when reached through one.
        #[serde(skip_serializing_if = "Option::is_none")]
        platform: Option<Platform>,
        layers: Vec<LayerEntry>,
        total_size: u64,
        config: ConfigSummary,
        #[serde(skip)]
        raw: Vec<u8>,
    },
}

#[derive(Debug, Serialize)]
pub struct IndexEntry {
    /// `os/arch[/variant]`, or `None` for an entry without a platform.
    pub platform: Option<String>,
    pub os: Option<String>,
    pub architecture: Option<String>,
    pub variant: Option<String>,
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    /// False for attestations and `unknown/unknown` entries.
    pub image: bool,
}

#[derive(Debug, Serialize)]
pub struct LayerEntry {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
}

#[derive(Debug, Default, Serialize)]
pub struct ConfigSummary {
    pub digest: Option<Digest>,
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    pub created: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
}

impl Inspection {
    pub fn raw(&self) -> &[u8] {
        match self {
            Inspection::Index { raw, .. } | Inspection::Image { raw, .. } => raw,
        }
    }
}

impl Engine {
    pub async fn inspect(&self, opts: InspectOptions) -> Result<Inspection, Error> {
        let reference = &opts.reference;
        let quirks = self.quirks(reference)?;
        let client = self
            .connect(reference, quirks.as_ref(), opts.cli_credentials.as_deref())
            .await?;
        // Inspect shows the registry as it is now: no cache.
        let source = crate::resolve::cached::ManifestSource {
            client: &client,
            cache: None,
            head: None,
        };
        let (top, parsed) = fetch_top(&source, reference).await?;
        let (fetched, manifest, platform) = match (parsed, &opts.platforms) {
            (Manifest::Index(index), None) => {
                return Ok(Inspection::Index {
                    reference: reference.to_string(),
                    media_type: media_type(&top.media_type, index.media_type.as_deref()),
                    digest: top.digest,
                    size: top.bytes.len(),
                    manifests: index.manifests.iter().map(index_entry).collect(),
                    raw: top.bytes.to_vec(),
                });
            }
            (Manifest::Index(index), Some(sel)) => {
                let first = match sel {
                    Selection::List(l) => Selection::List(l[..1].to_vec()),
                    Selection::All => Selection::All,
                };
                let entry = choose_all(reference, &index, &first)?[0].clone();
                let child = fetch_child(&source, reference, &entry).await?;
                (child.fetched, child.manifest, child.platform)
            }
            (Manifest::Image(m), _) => (top, m, None),
        };
        let config_bytes = client
            .small_blob(&reference.repository, &manifest.config)
            .await?;
        Ok(Inspection::Image {
            reference: reference.to_string(),
            media_type: media_type(&fetched.media_type, manifest.media_type.as_deref()),
            digest: fetched.digest,
            size: fetched.bytes.len(),
            platform,
            total_size: manifest.layers.iter().map(|l| l.size).sum(),
            layers: manifest
                .layers
                .iter()
                .map(|l| LayerEntry {
                    digest: l.digest.clone(),
                    size: l.size,
                    media_type: l.media_type.clone(),
                })
                .collect(),
            config: summarize_config(&manifest.config.digest, &config_bytes),
            raw: fetched.bytes.to_vec(),
        })
    }
}

fn media_type(header: &str, document: Option<&str>) -> String {
    let h = header.split(';').next().unwrap_or("").trim();
    match (h, document) {
        ("" | "application/json", Some(d)) => d.to_string(),
        (h, _) => h.to_string(),
    }
}

fn index_entry(d: &Descriptor) -> IndexEntry {
    IndexEntry {
        platform: d.platform.as_ref().map(|p| p.to_string()),
        os: d.platform.as_ref().map(|p| p.os.clone()),
        architecture: d.platform.as_ref().map(|p| p.architecture.clone()),
        variant: d.platform.as_ref().and_then(|p| p.variant.clone()),
        digest: d.digest.clone(),
        size: d.size,
        media_type: d.media_type.clone(),
        image: is_image_entry(d),
    }
}

/// The config fields a person looks at; missing fields stay empty.
fn summarize_config(digest: &Digest, bytes: &[u8]) -> ConfigSummary {
    #[derive(serde::Deserialize, Default)]
    #[serde(default)]
    struct Raw {
        os: String,
        architecture: String,
        variant: Option<String>,
        created: Option<String>,
        config: Option<Inner>,
    }
    #[derive(serde::Deserialize, Default)]
    #[serde(default, rename_all = "PascalCase")]
    struct Inner {
        entrypoint: Option<Vec<String>>,
        cmd: Option<Vec<String>>,
    }
    let raw: Raw = serde_json::from_slice(bytes).unwrap_or_default();
    let inner = raw.config.unwrap_or_default();
    ConfigSummary {
        digest: Some(digest.clone()),
        os: raw.os,
        architecture: raw.architecture,
        variant: raw.variant,
        created: raw.created,
        entrypoint: inner.entrypoint,
        cmd: inner.cmd,
    }
}
