//! `imgpull push SOURCE DEST`: the images of a tar or layout (see
//! [`sources`](super::sources)) into a registry. Plain layers are gzip-
//! compressed on the way, as `docker push` does (new manifests then name
//! the compressed blobs; configs, so image IDs, are unchanged); compressed
//! ones and every manifest that needs no change go byte for byte.
//! Everything the images name is checked before anything is pushed.

use super::sources::{load, Loaded, Source, SourceImage};
use crate::cache::BlobSource;
use crate::credentials::CredentialProvider;
use crate::engine::Engine;
use crate::error::Error;
use crate::export::push::{PushImage, PushManifest, PushReport};
use crate::oci::digest::{Digest, Verifier};
use crate::oci::manifest::{media, ImageConfig, ImageManifest};
use crate::oci::reference::Reference;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;

/// What to push, and where.
pub struct PushOptions {
    pub source: Source,
    /// The tag may be `None`: each image keeps its own.
    pub dest: Reference,
    /// gzip plain layers (`--compress=false`: push them as they are).
    pub compress: bool,
    /// Credentials from the command line, for the destination.
    pub cli_credentials: Option<Box<dyn CredentialProvider>>,
}

impl Engine {
    pub async fn push(&self, opts: PushOptions) -> Result<Vec<PushReport>, Error> {
        let exporter = self.pusher()?;
        let source = opts.source.clone();
        let mut loaded = tokio::task::spawn_blocking(move || load(&source))
            .await
            .map_err(|e| Error::io(&opts.source.path, std::io::Error::other(e)))??;
        let chosen = choose(std::mem::take(&mut loaded.images), &opts)?;
        loaded.check(&chosen.iter().map(|(i, _)| i).collect::<Vec<_>>())?;
        // Layers compressed for the push are spooled beside the source
        // (or in the temp dir when that is read-only), removed at the end.
        let mut _spool = None;
        let mut plans = Vec::new();
        if opts.compress {
            let images: Vec<SourceImage> = chosen.iter().map(|(i, _)| i.clone()).collect();
            let n = self.config.max_concurrent_downloads;
            let spool = || {
                const PREFIX: &str = ".imgpull-push-";
                crate::export::temp::Dir::beside(&opts.source.path, Some(PREFIX))
                    .or_else(|_| crate::export::temp::Dir::new_in(&std::env::temp_dir(), PREFIX))
                    .map_err(Error::from)
            };
            let (swaps, dir) = compress_all(&images, &mut loaded, spool, n).await?;
            for (image, dest) in chosen {
                plans.push(plan(swapped(image, &swaps)?, dest));
            }
            _spool = dir;
        } else {
            plans = chosen.into_iter().map(|(i, d)| plan(i, d)).collect();
        }
        let registries = super::Registries {
            engine: self,
            cli: opts.cli_credentials.as_deref(),
        };
        let reporter = self.reporter.as_ref();
        Ok(exporter
            .push(&plans, &loaded, &registries, reporter)
            .await?)
    }
}

fn plan(image: SourceImage, dest: Reference) -> PushImage {
    PushImage {
        dest,
        mount_from: Vec::new(),
        manifests: image.manifests,
        index: image.index,
    }
}

/// The images to push and where each goes: the one `SOURCE:NAME` names
/// (else every image), to DEST's tag, or each to its own tag when DEST
/// has none.
fn choose(
    images: Vec<SourceImage>,
    opts: &PushOptions,
) -> Result<Vec<(SourceImage, Reference)>, Error> {
    let names = |imgs: &[SourceImage]| {
        let n: Vec<String> = imgs
            .iter()
            .map(|i| i.name.clone().unwrap_or_else(|| "(untagged)".into()))
            .collect();
        n.join(", ")
    };
    let shown = opts.source.path.display();
    let all = names(&images);
    let picked: Vec<SourceImage> = match &opts.source.select {
        Some(s) => images.into_iter().filter(|i| named(i, s)).collect(),
        None => images,
    };
    if picked.is_empty() {
        return Err(Error::Usage(format!(
            "{shown} holds no image named {}; it holds: {all}",
            opts.source.select.as_deref().unwrap_or("")
        )));
    }
    let dest = &opts.dest;
    if dest.tag.is_some() || dest.digest.is_some() {
        if picked.len() > 1 {
            return Err(Error::Usage(format!(
                "{shown} holds {} images ({}): name one as {shown}:NAME, or give {dest} without a tag to push each under its own",
                picked.len(),
                names(&picked)
            )));
        }
        return Ok(picked.into_iter().map(|i| (i, dest.clone())).collect());
    }
    picked
        .into_iter()
        .map(|i| {
            let tag = i.name.as_deref().and_then(tag_of).ok_or_else(|| {
                Error::Usage(format!(
                    "an image in {shown} has no tag; give the destination one ({}/{}:TAG)",
                    dest.registry, dest.repository
                ))
            })?;
            let mut d = dest.clone();
            d.tag = Some(tag);
            Ok((i, d))
        })
        .collect()
}

/// Whether `image` is the one `wanted` names (its whole name, the same
/// reference written another way, or, in an OCI layout, its tag).
fn named(image: &SourceImage, wanted: &str) -> bool {
    if image.ref_name.as_deref() == Some(wanted) {
        return true;
    }
    let Some(name) = image.name.as_deref() else {
        return false;
    };
    if name == wanted {
        return true;
    }
    match (name.parse::<Reference>(), wanted.parse::<Reference>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The tag of `REPO:TAG` (or of a bare `TAG`, as OCI layouts name images).
fn tag_of(name: &str) -> Option<String> {
    let name = name.split('@').next().unwrap_or(name);
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once(':') {
        Some((_, t)) if !t.is_empty() => Some(t.to_string()),
        Some(_) => None,
        None if !name.contains('/') && !name.is_empty() => Some(name.to_string()),
        None => None,
    }
}

/// A plain layer compressed: its gzip blob's digest and size.
#[derive(Clone)]
struct Compressed {
    digest: Digest,
    size: u64,
}

/// The layers plain tar media types name.
fn gzip_type(media_type: &str) -> Option<&'static str> {
    match media_type {
        media::OCI_LAYER_TAR => Some(media::OCI_LAYER_GZIP),
        media::DOCKER_LAYER_TAR => Some(media::DOCKER_LAYER_GZIP),
        _ => None,
    }
}

/// Compress every plain layer of `images` into `dir` (at most `n` at
/// once), each checked against the diff_id its config gives it. The
/// compressed blobs join `loaded`'s.
async fn compress_all(
    images: &[SourceImage],
    loaded: &mut Loaded,
    spool: impl FnOnce() -> Result<crate::export::temp::Dir, Error>,
    n: usize,
) -> Result<
    (
        HashMap<Digest, Compressed>,
        Option<crate::export::temp::Dir>,
    ),
    Error,
> {
    let mut jobs: HashMap<Digest, (BlobSource, Digest)> = HashMap::new();
    for m in images.iter().flat_map(|i| &i.manifests) {
        let Ok(parsed) = serde_json::from_slice::<ImageManifest>(&m.bytes) else {
            continue;
        };
        let diff_ids = diff_ids(loaded, &parsed)?;
        for (i, l) in parsed.layers.iter().enumerate() {
            if gzip_type(&l.media_type).is_none() || jobs.contains_key(&l.digest) {
                continue;
            }
            let src = loaded.blob(&l.digest).ok_or_else(|| {
                Error::Usage(format!("layer {} is missing from the source", l.digest))
            })?;
            let diff_id = diff_ids.get(i).cloned().unwrap_or_else(|| l.digest.clone());
            jobs.insert(l.digest.clone(), (src, diff_id));
        }
    }
    if jobs.is_empty() {
        return Ok((HashMap::new(), None));
    }
    let spooled = spool()?;
    let dir = spooled.path();
    let work: Vec<_> = jobs
        .into_iter()
        .enumerate()
        .map(|(k, (digest, (src, diff_id)))| {
            let out = dir.join(format!("layer-{k}.gz"));
            async move {
                let o = out.clone();
                let done = tokio::task::spawn_blocking(move || gzip(&src, &diff_id, &o))
                    .await
                    .map_err(|e| Error::io(&out, std::io::Error::other(e)))??;
                Ok::<_, Error>((digest, done, out))
            }
        })
        .collect();
    let results = futures_util::stream::iter(work)
        .buffer_unordered(n.clamp(1, 8))
        .collect::<Vec<_>>()
        .await;
    let mut swaps = HashMap::new();
    for r in results {
        let (plain, done, path) = r?;
        loaded
            .blobs
            .insert(done.digest.clone(), BlobSource::File(path));
        swaps.insert(plain, done);
    }
    Ok((swaps, Some(spooled)))
}

/// The diff_ids of a manifest's config (empty when it lists none).
fn diff_ids(loaded: &Loaded, m: &ImageManifest) -> Result<Vec<Digest>, Error> {
    let Some(src) = loaded.blob(&m.config.digest) else {
        return Ok(Vec::new());
    };
    let bytes = src.read_all().map_err(|e| Error::io(src.name(), e))?;
    Ok(serde_json::from_slice::<ImageConfig>(&bytes)
        .ok()
        .and_then(|c| c.rootfs)
        .map(|r| r.diff_ids)
        .unwrap_or_default())
}

/// Writes through to a file, hashing what passes.
struct Hashing {
    file: std::fs::File,
    verifier: Verifier,
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.verifier.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// gzip `src` into `out`; its plain bytes must hash to `diff_id`.
fn gzip(src: &BlobSource, diff_id: &Digest, out: &PathBuf) -> Result<Compressed, Error> {
    let io_in = |e| Error::io(src.name(), e);
    let io_out = |e| Error::io(out, e);
    let file = std::fs::File::create(out).map_err(io_out)?;
    let sink = Hashing {
        file,
        verifier: Verifier::sha256(),
    };
    let mut gz = flate2::write::GzEncoder::new(sink, flate2::Compression::fast());
    let mut plain = Verifier::of(diff_id.algorithm());
    let mut r = src.open().map_err(io_in)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf).map_err(io_in)?;
        if n == 0 {
            break;
        }
        plain.update(&buf[..n]);
        gz.write_all(&buf[..n]).map_err(io_out)?;
    }
    let found = plain.finish();
    if found != *diff_id {
        // Said before anything is pushed.
        return Err(Error::Export(crate::export::ExportError::DiffId {
            layer: diff_id.clone(),
            source: crate::layer::LayerError::DiffIdMismatch {
                expected: diff_id.clone(),
                found,
            },
        }));
    }
    let sink = gz.finish().map_err(io_out)?;
    Ok(Compressed {
        size: sink.verifier.len(),
        digest: sink.verifier.finish(),
    })
}

/// `image` with its plain layers swapped for their compressed blobs: new
/// manifests (and a new index over them) where anything changed.
fn swapped(image: SourceImage, swaps: &HashMap<Digest, Compressed>) -> Result<SourceImage, Error> {
    let mut renamed: HashMap<Digest, (Digest, usize)> = HashMap::new();
    let mut manifests = Vec::new();
    for m in image.manifests {
        let Some(new) = rewrite_manifest(&m, swaps)? else {
            manifests.push(m);
            continue;
        };
        renamed.insert(m.digest.clone(), (new.digest.clone(), new.bytes.len()));
        manifests.push(new);
    }
    let index = match image.index {
        Some(ix) if !renamed.is_empty() => Some(rewrite_index(&ix, &renamed)?),
        other => other,
    };
    Ok(SourceImage {
        name: image.name,
        ref_name: image.ref_name,
        manifests,
        index,
    })
}

fn json_error(e: serde_json::Error) -> Error {
    Error::Usage(format!("a manifest of the source: {e}"))
}

/// `m` naming compressed blobs for its plain layers (`None`: none swapped).
fn rewrite_manifest(
    m: &PushManifest,
    swaps: &HashMap<Digest, Compressed>,
) -> Result<Option<PushManifest>, Error> {
    let mut doc: serde_json::Value = serde_json::from_slice(&m.bytes).map_err(json_error)?;
    let mut changed = false;
    let layers = doc.get_mut("layers").and_then(|l| l.as_array_mut());
    for layer in layers.into_iter().flatten() {
        let (Some(d), Some(t)) = (layer["digest"].as_str(), layer["mediaType"].as_str()) else {
            continue;
        };
        let (Ok(d), Some(gz)) = (d.parse::<Digest>(), gzip_type(t)) else {
            continue;
        };
        if let Some(c) = swaps.get(&d) {
            layer["mediaType"] = gz.into();
            layer["digest"] = c.digest.to_string().into();
            layer["size"] = c.size.into();
            changed = true;
        }
    }
    if !changed {
        return Ok(None);
    }
    let bytes = serde_json::to_vec(&doc).map_err(json_error)?;
    let parsed: ImageManifest = serde_json::from_slice(&bytes).map_err(json_error)?;
    Ok(Some(PushManifest {
        digest: Digest::of(&bytes),
        bytes: bytes.into(),
        media_type: m.media_type.clone(),
        blobs: std::iter::once(parsed.config)
            .chain(parsed.layers)
            .collect(),
        platform: m.platform.clone(),
    }))
}

/// `ix` naming the new manifests of `renamed` (old digest -> new, size).
fn rewrite_index(
    ix: &PushManifest,
    renamed: &HashMap<Digest, (Digest, usize)>,
) -> Result<PushManifest, Error> {
    let mut doc: serde_json::Value = serde_json::from_slice(&ix.bytes).map_err(json_error)?;
    let entries = doc.get_mut("manifests").and_then(|l| l.as_array_mut());
    for entry in entries.into_iter().flatten() {
        let Some(Ok(d)) = entry["digest"].as_str().map(str::parse::<Digest>) else {
            continue;
        };
        if let Some((new, size)) = renamed.get(&d) {
            entry["digest"] = new.to_string().into();
            entry["size"] = (*size).into();
        }
    }
    let bytes = serde_json::to_vec(&doc).map_err(json_error)?;
    Ok(PushManifest {
        digest: Digest::of(&bytes),
        bytes: bytes.into(),
        media_type: ix.media_type.clone(),
        blobs: Vec::new(),
        platform: None,
    })
}
