//! From a reference to image manifests: fetch, follow a manifest list or
//! OCI index to the wanted platforms, verify every step.

pub mod cached;

use crate::oci::digest::Digest;
use crate::oci::manifest::{Descriptor, ImageIndex, ImageManifest, Manifest, ManifestError};
use crate::oci::platform::{Matcher, Platform, Selection};
use crate::oci::reference::Reference;
use crate::registry::{FetchedManifest, RegistryError, MANIFEST_MAX};
use crate::resolve::cached::ManifestSource;

/// The most bytes the manifests of one reference may total (an index and
/// the images chosen from it): real ones are a few KiB each.
pub const MAX_MANIFESTS_TOTAL: u64 = 8 << 20;

/// One image, resolved.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The image manifest as fetched (digest verified).
    pub fetched: FetchedManifest,
    pub manifest: ImageManifest,
    /// The platform the index named for it; `None` for a single-image tag.
    pub platform: Option<Platform>,
}

/// Why a reference could not be resolved to image manifests.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{reference}: {source}")]
    Manifest {
        reference: String,
        source: ManifestError,
    },
    #[error("{0}")]
    NoMatchingPlatform(Box<NoMatch>),
}

use ResolveError as Error;

/// What a multi-platform image offers when none matched.
#[derive(Debug)]
pub struct NoMatch {
    pub reference: String,
    pub wanted: Platform,
    pub available: Vec<(Option<Platform>, Digest)>,
}

impl std::fmt::Display for NoMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: no image for platform {}; the image offers: {}",
            self.reference,
            self.wanted,
            list_platforms(&self.available)
        )
    }
}

fn list_platforms(av: &[(Option<Platform>, Digest)]) -> String {
    if av.is_empty() {
        return "nothing".into();
    }
    av.iter()
        .map(|(p, d)| match p {
            Some(p) => format!("{p} ({})", d),
            None => format!("(no platform) ({d})"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a reference resolved to: the document it names, and the images
/// chosen from it (one, unless several platforms were asked for).
#[derive(Clone, Debug)]
pub struct Resolution {
    pub top: FetchedManifest,
    pub images: Vec<Resolved>,
}

/// Fetch and parse the manifest `reference` names (index or image).
pub async fn fetch_top(
    source: &ManifestSource<'_>,
    reference: &Reference,
) -> Result<(FetchedManifest, Manifest), Error> {
    let top = source
        .get(
            &reference.repository,
            &reference.manifest_ref(),
            MANIFEST_MAX,
        )
        .await?;
    let parsed = parse(reference, &top)?;
    Ok((top, parsed))
}

pub async fn resolve(
    source: &ManifestSource<'_>,
    reference: &Reference,
    selection: &Selection,
) -> Result<Resolution, Error> {
    let (top, parsed) = fetch_top(source, reference).await?;
    let index = match parsed {
        Manifest::Image(manifest) => {
            let image = Resolved {
                fetched: top.clone(),
                manifest,
                platform: None,
            };
            return Ok(Resolution {
                top,
                images: vec![image],
            });
        }
        Manifest::Index(index) => index,
    };
    let chosen = choose_all(reference, &index, selection)?;
    // What the children would take, before one is fetched (their sizes
    // are checked as they arrive).
    let total = chosen
        .iter()
        .fold(top.bytes.len() as u64, |n, d| n.saturating_add(d.size));
    if total > MAX_MANIFESTS_TOTAL {
        return Err(Error::Manifest {
            reference: reference.to_string(),
            source: ManifestError::TooBig {
                what: format!("the {} manifests chosen", chosen.len() + 1),
                size: total,
                max: MAX_MANIFESTS_TOTAL,
            },
        });
    }
    let mut images = Vec::new();
    for entry in chosen {
        images.push(fetch_child(source, reference, entry).await?);
    }
    Ok(Resolution { top, images })
}

/// The entries `selection` picks, in its order, without duplicates.
pub fn choose_all<'a>(
    reference: &Reference,
    index: &'a ImageIndex,
    selection: &Selection,
) -> Result<Vec<&'a Descriptor>, Error> {
    let images: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| is_image_entry(d))
        .collect();
    let mut chosen: Vec<&Descriptor> = Vec::new();
    match selection {
        Selection::All => chosen.extend(images.iter().copied()),
        Selection::List(wanted) => {
            for w in wanted {
                let m = Matcher::new(w);
                let pick = m
                    .best(
                        images
                            .iter()
                            .filter_map(|d| d.platform.as_ref().map(|p| (p, *d))),
                    )
                    .ok_or_else(|| no_match(reference, w, &images))?;
                if !chosen.iter().any(|c| c.digest == pick.digest) {
                    chosen.push(pick);
                }
            }
        }
    }
    if chosen.is_empty() {
        let wanted = Platform::new("any", "any", None);
        return Err(no_match(reference, &wanted, &images));
    }
    Ok(chosen)
}

fn no_match(reference: &Reference, wanted: &Platform, images: &[&Descriptor]) -> Error {
    Error::NoMatchingPlatform(Box::new(NoMatch {
        reference: reference.to_string(),
        wanted: wanted.clone(),
        available: images
            .iter()
            .map(|d| (d.platform.clone(), d.digest.clone()))
            .collect(),
    }))
}

pub(crate) async fn fetch_child(
    source: &ManifestSource<'_>,
    reference: &Reference,
    entry: &Descriptor,
) -> Result<Resolved, Error> {
    // No more than the index says (an index cannot make us read more).
    let max = usize::try_from(entry.size).unwrap_or(usize::MAX);
    let child = source
        .get(&reference.repository, &entry.digest.to_string(), max)
        .await?;
    if child.bytes.len() as u64 != entry.size {
        return Err(Error::Manifest {
            reference: reference.to_string(),
            source: ManifestError::SizeMismatch {
                digest: entry.digest.clone(),
                expected: entry.size,
                found: child.bytes.len() as u64,
            },
        });
    }
    match parse(reference, &child)? {
        Manifest::Image(manifest) => Ok(Resolved {
            fetched: child,
            manifest,
            platform: entry.platform.clone(),
        }),
        Manifest::Index(_) => Err(Error::Manifest {
            reference: reference.to_string(),
            source: ManifestError::Invalid(
                "an index inside an index (nested indexes are not supported)".into(),
            ),
        }),
    }
}

fn parse(reference: &Reference, m: &FetchedManifest) -> Result<Manifest, Error> {
    Manifest::parse(&m.media_type, &m.bytes).map_err(|source| Error::Manifest {
        reference: reference.to_string(),
        source,
    })
}

/// Entries that are images: not attestations (`vnd.docker.reference.type`),
/// not `unknown/unknown`, and with a platform.
pub fn is_image_entry(d: &Descriptor) -> bool {
    let attestation = d
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("vnd.docker.reference.type"));
    match &d.platform {
        Some(p) => !attestation && p.os != "unknown" && p.architecture != "unknown",
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8, platform: Option<&str>, attestation: bool) -> serde_json::Value {
        let mut e = serde_json::json!({
            "mediaType": crate::oci::manifest::media::OCI_MANIFEST,
            "digest": format!("sha256:{}", format!("{n:02x}").repeat(32)),
            "size": 100,
        });
        if let Some(p) = platform {
            let (os, arch) = p.split_once('/').unwrap();
            e["platform"] = serde_json::json!({"os": os, "architecture": arch});
        }
        if attestation {
            e["annotations"] =
                serde_json::json!({"vnd.docker.reference.type": "attestation-manifest"});
        }
        e
    }

    #[test]
    fn attestations_and_unknown_entries_are_never_chosen() {
        let index: ImageIndex = serde_json::from_value(serde_json::json!({
            "schemaVersion": 2,
            "manifests": [
                entry(1, Some("unknown/unknown"), true),
                entry(2, Some("linux/amd64"), true),
                entry(3, None, false),
                entry(4, Some("linux/arm64"), false),
                entry(5, Some("linux/amd64"), false),
            ],
        }))
        .unwrap();
        let r: Reference = "example.com/app:1".parse().unwrap();
        let amd = Selection::List(vec![Platform::parse("linux/amd64").unwrap()]);
        let picked = choose_all(&r, &index, &amd).unwrap();
        assert_eq!(picked.len(), 1);
        assert!(
            picked[0].digest.hex().starts_with("05"),
            "not the attestation"
        );
        let all = choose_all(&r, &index, &Selection::All).unwrap();
        let hexes: Vec<&str> = all.iter().map(|d| &d.digest.hex()[..2]).collect();
        assert_eq!(hexes, ["04", "05"]);
        let s390 = Selection::List(vec![Platform::parse("linux/s390x").unwrap()]);
        let e = choose_all(&r, &index, &s390).unwrap_err().to_string();
        assert!(
            e.contains("linux/arm64") && e.contains("linux/amd64"),
            "{e}"
        );
        assert!(!e.contains("unknown"), "attestations are not offered: {e}");
    }
}
