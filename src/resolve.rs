//! From a reference to one image manifest: fetch, follow a manifest list or
//! OCI index to the wanted platform, verify every step.

use crate::client::{FetchedManifest, RegistryClient};
use crate::digest::Digest;
use crate::error::{Error, NoMatch};
use crate::manifest::{Descriptor, ImageManifest, Manifest, ManifestError};
use crate::platform::Platform;
use crate::reference::Reference;

/// One image, resolved.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The image manifest as fetched (digest verified).
    pub fetched: FetchedManifest,
    pub manifest: ImageManifest,
    /// The platform the index named for it; `None` for a single-image tag.
    pub platform: Option<Platform>,
    /// The index it was chosen from, if any.
    pub index_digest: Option<Digest>,
}

pub async fn resolve(
    client: &RegistryClient,
    reference: &Reference,
    wanted: &Platform,
) -> Result<Resolved, Error> {
    let top = client
        .manifest(&reference.repository, &reference.manifest_ref())
        .await?;
    match parse(reference, &top)? {
        Manifest::Image(manifest) => Ok(Resolved {
            fetched: top,
            manifest,
            platform: None,
            index_digest: None,
        }),
        Manifest::Index(index) => {
            let chosen = choose(&index.manifests, wanted).ok_or_else(|| {
                Error::NoMatchingPlatform(Box::new(NoMatch {
                    reference: reference.to_string(),
                    wanted: wanted.clone(),
                    available: index
                        .manifests
                        .iter()
                        .filter(|d| is_image_entry(d))
                        .map(|d| (d.platform.clone(), d.digest.clone()))
                        .collect(),
                }))
            })?;
            let child = client
                .manifest(&reference.repository, &chosen.digest.to_string())
                .await?;
            if child.bytes.len() as u64 != chosen.size {
                return Err(Error::Manifest {
                    reference: reference.to_string(),
                    source: ManifestError::SizeMismatch {
                        digest: chosen.digest.clone(),
                        expected: chosen.size,
                        found: child.bytes.len() as u64,
                    },
                });
            }
            match parse(reference, &child)? {
                Manifest::Image(manifest) => Ok(Resolved {
                    fetched: child,
                    manifest,
                    platform: chosen.platform.clone(),
                    index_digest: Some(top.digest),
                }),
                Manifest::Index(_) => Err(Error::Manifest {
                    reference: reference.to_string(),
                    source: ManifestError::Invalid(
                        "an index inside an index (nested indexes are not supported)".into(),
                    ),
                }),
            }
        }
    }
}

fn parse(reference: &Reference, m: &FetchedManifest) -> Result<Manifest, Error> {
    Manifest::parse(&m.media_type, &m.bytes).map_err(|source| Error::Manifest {
        reference: reference.to_string(),
        source,
    })
}

/// Entries that are images (not attestations or other artifacts).
fn is_image_entry(d: &Descriptor) -> bool {
    let attestation = d
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("vnd.docker.reference.type"));
    let unknown = d
        .platform
        .as_ref()
        .is_some_and(|p| p.os == "unknown" || p.architecture == "unknown");
    !attestation && !unknown
}

/// The first image entry whose platform satisfies `wanted`.
pub fn choose<'a>(entries: &'a [Descriptor], wanted: &Platform) -> Option<&'a Descriptor> {
    entries
        .iter()
        .filter(|d| is_image_entry(d))
        .find(|d| d.platform.as_ref().is_some_and(|p| p.satisfies(wanted)))
}
