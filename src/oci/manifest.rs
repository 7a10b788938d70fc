//! Manifest documents: Docker schema2 and OCI image manifests, Docker
//! manifest lists and OCI indexes, and the descriptors they hold.

use crate::oci::digest::Digest;
use crate::oci::platform::Platform;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Manifests larger than this are refused (the distribution spec's and
/// containerd's limit).
pub const MANIFEST_MAX: usize = 4 << 20;
/// A config read whole may not exceed this.
pub const CONFIG_MAX: usize = 16 << 20;

pub mod media {
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

    /// Plain and gzip layers, by their Docker and OCI names.
    pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

    /// Image config types this tool writes out.
    pub const CONFIGS: [&str; 2] = [OCI_CONFIG, DOCKER_CONFIG];

    /// The config type of Docker 1.10-era pushes (seen on Aliyun): an
    /// image only if its layers are image layers and its config reads as an
    /// image config (checked once fetched).
    pub const UNTYPED_CONFIG: &str = "application/octet-stream";

    /// Layer types this tool writes out (gzip, zstd or plain tars, Docker
    /// and OCI names, nondistributable/foreign ones included).
    pub const LAYERS: [&str; 10] = [
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar",
    ];

    /// The `Accept` list for manifest requests, most specific first.
    pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
        application/vnd.oci.image.manifest.v1+json, \
        application/vnd.docker.distribution.manifest.list.v2+json, \
        application/vnd.docker.distribution.manifest.v2+json";
}

/// A content descriptor: what a manifest says about a blob it references.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

/// An image manifest (Docker schema2 or OCI): one config and its layers.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// A manifest list or OCI index: one manifest per platform.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// A parsed manifest response (short-lived: not worth boxing the variant).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Manifest {
    Image(ImageManifest),
    Index(ImageIndex),
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("manifest is not valid JSON of a known kind: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("unsupported manifest media type {0:?} (known: {known}; schema1 and other legacy formats are not supported)", known = KNOWN_MANIFESTS.join(", "))]
    Unsupported(String),
    #[error("not a container image: {what} has media type {found:?} (known: {})", .known.join(", "))]
    NotAnImage {
        what: String,
        found: String,
        known: Vec<&'static str>,
    },
    #[error("{what} lists {found} entries; more than {max} is refused")]
    TooMany {
        what: &'static str,
        found: usize,
        max: usize,
    },
    #[error("{what}: {size} bytes, over the limit of {max}; refused")]
    TooBig { what: String, size: u64, max: u64 },
    #[error("{0}")]
    Invalid(String),
    #[error(
        "integrity error: the index says {digest} is {expected} bytes, the registry sent {found}"
    )]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        found: u64,
    },
}

const KNOWN_MANIFESTS: [&str; 4] = [
    media::OCI_INDEX,
    media::OCI_MANIFEST,
    media::DOCKER_LIST,
    media::DOCKER_MANIFEST,
];

/// Most layers an image may have (Docker's own limit is 127 with overlay).
pub const MAX_LAYERS: usize = 1000;
/// Most entries an index may have.
pub const MAX_INDEX_ENTRIES: usize = 4096;
/// The largest layer a descriptor may announce (1 TiB: the largest real
/// layers are tens of GB; a size near 2^63 is a lie that would break
/// arithmetic downstream).
pub const MAX_BLOB: u64 = 1 << 40;

impl ImageManifest {
    /// Refuse what no exporter can write: too many layers, a config or
    /// layer that is not a container image's (Helm charts, signatures and
    /// other OCI artifacts), naming the known types. An empty media type is
    /// let through (some old registries omit it).
    pub fn check(&self) -> Result<(), ManifestError> {
        if self.layers.len() > MAX_LAYERS {
            return Err(ManifestError::TooMany {
                what: "the image manifest",
                found: self.layers.len(),
                max: MAX_LAYERS,
            });
        }
        let too_big = |what: String, size: u64, max: u64| ManifestError::TooBig { what, size, max };
        let config_max = CONFIG_MAX as u64;
        if self.config.size > config_max {
            return Err(too_big(
                format!("config {}", self.config.digest),
                self.config.size,
                config_max,
            ));
        }
        for l in &self.layers {
            if l.size > MAX_BLOB {
                return Err(too_big(format!("layer {}", l.digest), l.size, MAX_BLOB));
            }
        }
        let t = &self.config.media_type;
        let untyped_image = t == media::UNTYPED_CONFIG
            && !self.layers.is_empty()
            && self
                .layers
                .iter()
                .all(|l| media::LAYERS.contains(&l.media_type.as_str()));
        if !t.is_empty() && !media::CONFIGS.contains(&t.as_str()) && !untyped_image {
            return Err(ManifestError::NotAnImage {
                what: format!("config {}", self.config.digest),
                found: t.clone(),
                known: media::CONFIGS.to_vec(),
            });
        }
        for l in &self.layers {
            let t = &l.media_type;
            if !t.is_empty() && !media::LAYERS.contains(&t.as_str()) {
                return Err(ManifestError::NotAnImage {
                    what: format!("layer {}", l.digest),
                    found: t.clone(),
                    known: media::LAYERS.to_vec(),
                });
            }
        }
        Ok(())
    }
}

impl Manifest {
    /// Parse by the media type the registry declared (`Content-Type`),
    /// falling back to the document's own `mediaType` and shape when the
    /// header is generic (some registries answer `application/json`).
    pub fn parse(content_type: &str, bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let declared = content_type.split(';').next().unwrap_or("").trim();
        let kind = match declared {
            media::OCI_INDEX | media::DOCKER_LIST => Some(true),
            media::OCI_MANIFEST | media::DOCKER_MANIFEST => Some(false),
            _ => None,
        };
        let is_index = match kind {
            Some(k) => k,
            None => {
                #[derive(Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Peek {
                    media_type: Option<String>,
                    schema_version: Option<u32>,
                    manifests: Option<serde_json::Value>,
                    config: Option<serde_json::Value>,
                }
                let p: Peek = serde_json::from_slice(bytes)?;
                match p.media_type.as_deref() {
                    Some(media::OCI_INDEX | media::DOCKER_LIST) => true,
                    Some(media::OCI_MANIFEST | media::DOCKER_MANIFEST) => false,
                    Some(other) => return Err(ManifestError::Unsupported(other.to_string())),
                    None if p.schema_version == Some(2) && p.manifests.is_some() => true,
                    None if p.schema_version == Some(2) && p.config.is_some() => false,
                    None => return Err(ManifestError::Unsupported(declared.to_string())),
                }
            }
        };
        if is_index {
            let index: ImageIndex = serde_json::from_slice(bytes)?;
            if index.manifests.len() > MAX_INDEX_ENTRIES {
                return Err(ManifestError::TooMany {
                    what: "the index",
                    found: index.manifests.len(),
                    max: MAX_INDEX_ENTRIES,
                });
            }
            Ok(Manifest::Index(index))
        } else {
            let image: ImageManifest = serde_json::from_slice(bytes)?;
            image.check()?;
            Ok(Manifest::Image(image))
        }
    }
}

impl ImageConfig {
    /// Whether these bytes read as the config of an image of `layers`
    /// layers: JSON with an os, an architecture and one diff_id per layer
    /// (what a config typed `application/octet-stream` must show).
    pub fn is_image_config(bytes: &[u8], layers: usize) -> bool {
        serde_json::from_slice::<ImageConfig>(bytes).is_ok_and(|c| {
            !c.os.is_empty()
                && !c.architecture.is_empty()
                && c.rootfs.is_some_and(|r| r.diff_ids.len() == layers)
        })
    }
}

/// An image manifest's media type: its own `mediaType` when that is one of
/// the two image manifest types, else Docker's when its config is a
/// Docker config, else OCI's.
pub fn image_media_type(m: &ImageManifest) -> &'static str {
    match m.media_type.as_deref() {
        Some(media::DOCKER_MANIFEST) => media::DOCKER_MANIFEST,
        Some(media::OCI_MANIFEST) => media::OCI_MANIFEST,
        _ if m.config.media_type == media::DOCKER_CONFIG => media::DOCKER_MANIFEST,
        _ => media::OCI_MANIFEST,
    }
}

/// A Docker schema2 manifest rewritten with OCI media types (as `skopeo
/// copy` to an OCI layout does), so OCI-only readers see it; `None` when
/// `bytes` is not a Docker schema2 manifest. The config and layers are
/// unchanged: only their declared types change, so the digest does.
pub fn docker_to_oci(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut doc: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if doc.get("mediaType")?.as_str()? != media::DOCKER_MANIFEST {
        return None;
    }
    doc["mediaType"] = media::OCI_MANIFEST.into();
    if let Some(config) = doc.get_mut("config") {
        config["mediaType"] = media::OCI_CONFIG.into();
    }
    for layer in doc.get_mut("layers")?.as_array_mut()? {
        let oci = match layer.get("mediaType").and_then(|m| m.as_str()) {
            Some("application/vnd.docker.image.rootfs.diff.tar.gzip") => {
                "application/vnd.oci.image.layer.v1.tar+gzip"
            }
            Some("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip") => {
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            }
            Some("application/vnd.docker.image.rootfs.diff.tar") => {
                "application/vnd.oci.image.layer.v1.tar"
            }
            _ => continue,
        };
        layer["mediaType"] = oci.into();
    }
    serde_json::to_vec(&doc).ok()
}

/// The manifest with some layers replaced by their uncompressed tars
/// (`(layer index, diff_id, size)`), typed as the manifest's own kind of
/// plain tar — what `docker save` writes. `None` if `bytes` is not a
/// manifest with those layers.
pub fn with_uncompressed_layers(bytes: &[u8], swaps: &[(usize, Digest, u64)]) -> Option<Vec<u8>> {
    let mut doc: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let tar_type = if doc["mediaType"].as_str() == Some(media::DOCKER_MANIFEST) {
        "application/vnd.docker.image.rootfs.diff.tar"
    } else {
        "application/vnd.oci.image.layer.v1.tar"
    };
    let layers = doc.get_mut("layers")?.as_array_mut()?;
    for (i, diff, size) in swaps {
        *layers.get_mut(*i)? =
            serde_json::json!({"mediaType": tar_type, "digest": diff, "size": size});
    }
    serde_json::to_vec(&doc).ok()
}

/// The parts of an image config this tool reads; the bytes themselves are
/// kept as fetched so the image id stays the same.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub rootfs: Option<RootFs>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_docker_manifests_to_oci() {
        let docker = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","size":1,"digest":"sha256:{}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":2,"digest":"sha256:{}"}}]}}"#,
            media::DOCKER_MANIFEST,
            media::DOCKER_CONFIG,
            "a".repeat(64),
            "b".repeat(64)
        );
        let oci = docker_to_oci(docker.as_bytes()).unwrap();
        let m = match Manifest::parse(media::OCI_MANIFEST, &oci).unwrap() {
            Manifest::Image(m) => m,
            _ => panic!(),
        };
        assert_eq!(m.media_type.as_deref(), Some(media::OCI_MANIFEST));
        assert_eq!(m.config.media_type, media::OCI_CONFIG);
        assert_eq!(
            m.layers[0].media_type,
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(m.layers[0].size, 2);
        assert!(docker_to_oci(&oci).is_none(), "OCI stays as it is");
    }

    #[test]
    fn artifacts_and_huge_manifests_are_refused() {
        let doc = |config: &str, layer: &str, n: usize| {
            let layers: Vec<String> = (0..n)
                .map(|_| {
                    format!(
                        r#"{{"mediaType":"{layer}","size":1,"digest":"sha256:{}"}}"#,
                        "b".repeat(64)
                    )
                })
                .collect();
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{config}","size":1,"digest":"sha256:{}"}},"layers":[{}]}}"#,
                media::OCI_MANIFEST,
                "a".repeat(64),
                layers.join(",")
            )
        };
        let gz = "application/vnd.oci.image.layer.v1.tar+gzip";
        assert!(Manifest::parse(
            media::OCI_MANIFEST,
            doc(media::OCI_CONFIG, gz, 2).as_bytes()
        )
        .is_ok());
        let helm = doc(
            "application/vnd.cncf.helm.config.v1+json",
            "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
            1,
        );
        let e = Manifest::parse(media::OCI_MANIFEST, helm.as_bytes()).unwrap_err();
        assert!(
            e.to_string().contains("not a container image")
                && e.to_string().contains(media::OCI_CONFIG),
            "{e}"
        );
        let odd_layer = doc(media::OCI_CONFIG, "application/x-strange", 1);
        let e = Manifest::parse(media::OCI_MANIFEST, odd_layer.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("tar+zstd"), "{e}");
        let huge = doc(media::OCI_CONFIG, gz, MAX_LAYERS + 1);
        let e = Manifest::parse(media::OCI_MANIFEST, huge.as_bytes()).unwrap_err();
        assert!(matches!(e, ManifestError::TooMany { .. }), "{e}");
        let e = Manifest::parse(
            "application/vnd.example+json",
            br#"{"mediaType":"application/vnd.example+json"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains(media::DOCKER_LIST), "{e}");
    }

    #[test]
    fn sniffs_untyped_documents() {
        let idx = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(
            Manifest::parse("application/json", idx),
            Ok(Manifest::Index(_))
        ));
        let bad = br#"{"schemaVersion":1,"fsLayers":[]}"#;
        assert!(Manifest::parse("application/json", bad).is_err());
        assert!(Manifest::parse(media::OCI_MANIFEST, b"\xff").is_err());
    }
}
