//! What `imgpull push` reads, each file read in place (a tar's entries by
//! their offset, never copied out):
//!
//! - a docker-archive: the Docker 25+ layout (`index.json` naming the
//!   manifests in `blobs/`, as imgpull and `docker save` write it), or the
//!   v1.2 layout (`manifest.json`, `<id>/layer.tar`), for which a manifest
//!   is made, as `docker push` does;
//! - an OCI layout directory (`oci:DIR[:TAG]`) or archive
//!   (`oci-archive:FILE[:TAG]`).
//!
//! Every image found keeps the name its source gives it (`RepoTags`, the
//! `io.containerd.image.name` or `org.opencontainers.image.ref.name`
//! annotation).

use crate::cache::BlobSource;
use crate::error::Error;
use crate::export::push::PushManifest;
use crate::oci::digest::Digest;
use crate::oci::manifest::{media, Descriptor, ImageConfig, ImageManifest, Manifest};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A manifest, config or index read from a source may not exceed this.
const DOC_MAX: u64 = 16 << 20;

/// What a source is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    DockerArchive,
    Oci,
    OciArchive,
}

/// `[FORMAT:]PATH[:NAME]`, parsed.
#[derive(Clone, Debug)]
pub struct Source {
    pub kind: Kind,
    pub path: PathBuf,
    /// The image to take (`NAME:TAG` for a docker-archive, `TAG` for an OCI
    /// layout); every image when `None`.
    pub select: Option<String>,
}

impl Source {
    /// `docker-archive:FILE[:NAME:TAG]`, `oci:DIR[:TAG]`,
    /// `oci-archive:FILE[:TAG]`, or a bare path (a directory is an OCI
    /// layout, a file a docker-archive). The path is the longest prefix,
    /// cut at a `:`, that exists.
    pub fn parse(input: &str) -> Result<Source, Error> {
        let (kind, rest) = match input.split_once(':') {
            Some(("docker-archive", r)) => (Some(Kind::DockerArchive), r),
            Some(("oci", r)) => (Some(Kind::Oci), r),
            Some(("oci-archive", r)) => (Some(Kind::OciArchive), r),
            _ => (None, input),
        };
        let cuts = std::iter::once(rest.len())
            .chain(
                rest.match_indices(':')
                    .map(|(i, _)| i)
                    .rev()
                    .collect::<Vec<_>>(),
            )
            .collect::<Vec<_>>();
        let mut cuts = cuts;
        cuts.sort_unstable_by(|a, b| b.cmp(a));
        for cut in cuts {
            let path = Path::new(&rest[..cut]);
            if cut == 0 || !path.exists() {
                continue;
            }
            let select = rest.get(cut + 1..).filter(|s| !s.is_empty());
            let kind = kind.unwrap_or(if path.is_dir() {
                Kind::Oci
            } else {
                Kind::DockerArchive
            });
            return Ok(Source {
                kind,
                path: path.to_path_buf(),
                select: select.map(str::to_string),
            });
        }
        Err(Error::Usage(format!(
            "{input}: no such file or directory (a docker-archive tar, oci:DIR or oci-archive:FILE)"
        )))
    }
}

/// One image found in a source.
#[derive(Clone, Debug)]
pub struct SourceImage {
    /// The name it carries (`REPO:TAG`, or only `TAG` in an OCI layout).
    pub name: Option<String>,
    /// Its `org.opencontainers.image.ref.name` (what `oci:DIR:TAG` names).
    pub ref_name: Option<String>,
    pub manifests: Vec<PushManifest>,
    /// The index naming several platforms, byte for byte.
    pub index: Option<PushManifest>,
}

/// What a source holds: its images and where each blob is.
pub struct Loaded {
    pub images: Vec<SourceImage>,
    /// Blobs not under `blobs/ALG/HEX` (a v1.2 tar's files, layers
    /// compressed for the push).
    pub blobs: HashMap<Digest, BlobSource>,
    files: Files,
}

/// The files of a source by name: a directory's, or a tar's entries.
enum Files {
    Dir(PathBuf),
    Tar {
        path: PathBuf,
        entries: HashMap<String, (u64, u64)>,
    },
}

/// A window onto one tar entry's bytes.
struct Window {
    file: std::fs::File,
    start: u64,
    len: u64,
    pos: u64,
}

impl Read for Window {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.file.seek(SeekFrom::Start(self.start + self.pos))?;
        let got = self.file.read(&mut buf[..n])?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Seek for Window {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => p as i128,
            SeekFrom::End(d) => self.len as i128 + d as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if pos < 0 {
            return Err(std::io::Error::other(
                "seek before the start of a tar entry",
            ));
        }
        self.pos = pos as u64;
        Ok(self.pos)
    }
}

impl Files {
    fn open(source: &Source) -> Result<Files, Error> {
        if source.kind == Kind::Oci {
            return Ok(Files::Dir(source.path.clone()));
        }
        let path = &source.path;
        let io = |e| Error::io(path, e);
        let mut ar = tar::Archive::new(std::fs::File::open(path).map_err(io)?);
        let mut entries = HashMap::new();
        // Links (docker save before Docker 25 links a layer.tar it already
        // wrote): name -> the name they point to.
        let mut links = HashMap::new();
        // Seeking past each entry's data: a big tar is not read through.
        for e in ar.entries_with_seek().map_err(|e| not_a_tar(path, e))? {
            let e = e.map_err(|e| not_a_tar(path, e))?;
            let Ok(name) = e.path() else { continue };
            let name = clean(&name.to_string_lossy());
            let kind = e.header().entry_type();
            if kind.is_file() {
                entries.insert(name, (e.raw_file_position(), e.size()));
            } else if kind.is_symlink() || kind.is_hard_link() {
                let Ok(Some(target)) = e.link_name() else {
                    continue;
                };
                let target = target.to_string_lossy().into_owned();
                let target = match (kind.is_symlink(), name.rsplit_once('/')) {
                    (true, Some((dir, _))) => clean(&format!("{dir}/{target}")),
                    _ => clean(&target),
                };
                links.insert(name, target);
            }
        }
        for (name, target) in links.iter() {
            let mut t = target;
            for _ in 0..8 {
                if let Some(found) = entries.get(t).copied() {
                    entries.insert(name.clone(), found);
                    break;
                }
                match links.get(t) {
                    Some(next) => t = next,
                    None => break,
                }
            }
        }
        Ok(Files::Tar {
            path: path.clone(),
            entries,
        })
    }

    /// File `name`, if the source has it.
    fn get(&self, name: &str) -> Option<BlobSource> {
        match self {
            Files::Dir(dir) => {
                let p = dir.join(name);
                p.is_file().then_some(BlobSource::File(p))
            }
            Files::Tar { path, entries } => {
                let (start, len) = *entries.get(name)?;
                let file = path.clone();
                Some(BlobSource::Reader {
                    name: PathBuf::from(format!("{}:{name}", path.display())),
                    size: len,
                    open: Arc::new(move || {
                        Ok(Box::new(Window {
                            file: std::fs::File::open(&file)?,
                            start,
                            len,
                            pos: 0,
                        }))
                    }),
                })
            }
        }
    }

    fn where_(&self) -> &Path {
        match self {
            Files::Dir(p) => p,
            Files::Tar { path, .. } => path,
        }
    }

    /// File `name`, which must be there, whole (a small document).
    fn read(&self, name: &str) -> Result<Vec<u8>, Error> {
        let missing = || bad(self.where_(), format!("{name} is missing"));
        let src = self.get(name).ok_or_else(missing)?;
        let io = |e| Error::io(src.name(), e);
        if src.size().map_err(io)? > DOC_MAX {
            return Err(bad(
                self.where_(),
                format!("{name} is over {DOC_MAX} bytes"),
            ));
        }
        src.read_all().map_err(io)
    }
}

/// A tar path without `./` and with `..` applied (`a/../b/layer.tar` is
/// `b/layer.tar`).
fn clean(name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in name.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

fn not_a_tar(path: &Path, e: std::io::Error) -> Error {
    bad(path, format!("not a tar: {e}"))
}

fn bad(path: &Path, why: impl Into<String>) -> Error {
    Error::Usage(format!("{}: {}", path.display(), why.into()))
}

/// Read `source`: its images, and its blobs by digest.
pub fn load(source: &Source) -> Result<Loaded, Error> {
    let files = Files::open(source)?;
    let mut loaded = Loaded {
        images: Vec::new(),
        blobs: HashMap::new(),
        files: Files::Dir(PathBuf::new()),
    };
    let has_index = files.get("index.json").is_some();
    if has_index {
        from_index(&files, &mut loaded)?;
    } else if source.kind == Kind::DockerArchive && files.get("manifest.json").is_some() {
        from_legacy(&files, &mut loaded)?;
    } else {
        return Err(bad(
            files.where_(),
            "neither index.json (an OCI layout, a Docker 25+ save) nor manifest.json (docker save)",
        ));
    }
    if source.kind == Kind::DockerArchive && has_index {
        // Docker's list names the images when the index does not.
        name_from_manifest_json(&files, &mut loaded);
    }
    loaded.files = files;
    Ok(loaded)
}

/// The entries of `index.json`: image manifests, or indexes of several.
fn from_index(files: &Files, loaded: &mut Loaded) -> Result<(), Error> {
    let text = files.read("index.json")?;
    let index: crate::oci::manifest::ImageIndex = serde_json::from_slice(&text)
        .map_err(|e| bad(files.where_(), format!("index.json: {e}")))?;
    for entry in &index.manifests {
        let m = document(files, &entry.digest, &entry.media_type)?;
        let note = |k: &str| entry.annotations.as_ref().and_then(|a| a.get(k).cloned());
        let ref_name = note("org.opencontainers.image.ref.name");
        let name = note("io.containerd.image.name").or_else(|| ref_name.clone());
        let image = match Manifest::parse(&m.media_type, &m.bytes) {
            Ok(Manifest::Index(children)) => {
                let mut manifests = Vec::new();
                for c in &children.manifests {
                    let mut child = document(files, &c.digest, &c.media_type)?;
                    child.platform = c.platform.clone();
                    manifests.push(child);
                }
                SourceImage {
                    name,
                    ref_name,
                    manifests,
                    index: Some(m),
                }
            }
            Ok(Manifest::Image(_)) => {
                let mut m = m;
                m.platform = entry.platform.clone();
                // An unnamed platform after a named one is more of that
                // image (imgpull names the first platform of a reference).
                if let Some(last) = loaded.images.last_mut().filter(|last| {
                    name.is_none()
                        && m.platform.is_some()
                        && last.index.is_none()
                        && last
                            .manifests
                            .iter()
                            .all(|l| l.platform.is_some() && l.platform != m.platform)
                }) {
                    last.manifests.push(m);
                    continue;
                }
                SourceImage {
                    name,
                    ref_name,
                    manifests: vec![m],
                    index: None,
                }
            }
            Err(e) => return Err(bad(files.where_(), format!("{}: {e}", entry.digest))),
        };
        loaded.images.push(image);
    }
    Ok(())
}

/// The manifest or index blob `digest`, checked against its digest, with
/// the blobs an image manifest names.
fn document(files: &Files, digest: &Digest, said: &str) -> Result<PushManifest, Error> {
    let bytes = files.read(&crate::export::blob_name(digest))?;
    let found = crate::oci::digest::digest_like(&bytes, digest);
    if found != *digest {
        return Err(Error::Registry(
            crate::registry::RegistryError::DigestMismatch {
                registry: "push".into(),
                what: format!(
                    "manifest {digest} as read from {}",
                    files.where_().display()
                ),
                expected: digest.to_string(),
                found,
            },
        ));
    }
    let named = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string));
    let media_type = named.unwrap_or_else(|| said.to_string());
    let blobs = match Manifest::parse(&media_type, &bytes) {
        Ok(Manifest::Image(m)) => std::iter::once(m.config.clone())
            .chain(m.layers.iter().cloned())
            .collect(),
        _ => Vec::new(),
    };
    Ok(PushManifest {
        bytes: bytes.into(),
        media_type,
        digest: digest.clone(),
        blobs,
        platform: None,
    })
}

/// An entry of a docker-archive's `manifest.json` (docker's list).
#[derive(serde::Deserialize)]
pub(crate) struct LegacyEntry {
    #[serde(rename = "Config")]
    pub config: String,
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    pub layers: Vec<String>,
}

fn legacy_entries(files: &Files) -> Result<Vec<LegacyEntry>, Error> {
    let text = files.read("manifest.json")?;
    serde_json::from_slice(&text).map_err(|e| bad(files.where_(), format!("manifest.json: {e}")))
}

/// The v1.2 layout: a manifest made for each entry of `manifest.json`
/// (Docker schema2, its layers the plain `layer.tar`s named by diff_id;
/// compressed on the way by the push unless told not to).
fn from_legacy(files: &Files, loaded: &mut Loaded) -> Result<(), Error> {
    for entry in legacy_entries(files)? {
        let config = files.read(&entry.config)?;
        let config_digest = Digest::of(&config);
        let parsed: ImageConfig = serde_json::from_slice(&config)
            .map_err(|e| bad(files.where_(), format!("{}: {e}", entry.config)))?;
        let diff_ids = parsed.rootfs.map(|r| r.diff_ids).unwrap_or_default();
        if diff_ids.len() != entry.layers.len() {
            return Err(bad(
                files.where_(),
                format!(
                    "{}: {} diff_ids for {} layers",
                    entry.config,
                    diff_ids.len(),
                    entry.layers.len()
                ),
            ));
        }
        loaded.blobs.insert(
            config_digest.clone(),
            files.get(&entry.config).expect("read above"),
        );
        let mut layers = Vec::new();
        for (file, diff_id) in entry.layers.iter().zip(&diff_ids) {
            let src = files
                .get(file)
                .ok_or_else(|| bad(files.where_(), format!("{file} is missing")))?;
            let size = src.size().map_err(|e| Error::io(src.name(), e))?;
            // A gzip layer (crane and go-containerregistry tarballs) is
            // pushed as it is, under its own digest.
            match gzip_digest(&src)? {
                Some(digest) => {
                    layers.push(descriptor(media::DOCKER_LAYER_GZIP, &digest, size));
                    loaded.blobs.insert(digest, src);
                }
                None => {
                    layers.push(descriptor(media::DOCKER_LAYER_TAR, diff_id, size));
                    loaded.blobs.insert(diff_id.clone(), src);
                }
            }
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media::DOCKER_MANIFEST,
            "config": descriptor(media::DOCKER_CONFIG, &config_digest, config.len() as u64),
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest).expect("JSON");
        let parsed: ImageManifest = serde_json::from_slice(&bytes).expect("made above");
        let names = entry.repo_tags.clone().unwrap_or_default();
        let m = PushManifest {
            digest: Digest::of(&bytes),
            bytes: bytes.into(),
            media_type: media::DOCKER_MANIFEST.to_string(),
            blobs: std::iter::once(parsed.config)
                .chain(parsed.layers)
                .collect(),
            platform: None,
        };
        // One image per tag (none: one untagged image).
        let names: Vec<Option<String>> = if names.is_empty() {
            vec![None]
        } else {
            names.into_iter().map(Some).collect()
        };
        for name in names {
            loaded.images.push(SourceImage {
                name,
                ref_name: None,
                manifests: vec![m.clone()],
                index: None,
            });
        }
    }
    Ok(())
}

/// The digest of a layer file that is gzip (read through once), or `None`
/// for a plain tar.
fn gzip_digest(src: &BlobSource) -> Result<Option<Digest>, Error> {
    let io = |e| Error::io(src.name(), e);
    let mut r = src.open().map_err(io)?;
    let mut magic = [0u8; 2];
    if r.read_exact(&mut magic).is_err() || magic != [0x1f, 0x8b] {
        return Ok(None);
    }
    let mut v = crate::oci::digest::Verifier::sha256();
    v.update(&magic);
    v.update_from(&mut r).map_err(io)?;
    Ok(Some(v.finish()))
}

fn descriptor(media_type: &str, digest: &Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.to_string(),
        digest: digest.clone(),
        size,
        platform: None,
        annotations: None,
        urls: None,
    }
}

/// A Docker 25+ save whose index does not name an image: the name
/// `manifest.json` gives the image with the same config.
fn name_from_manifest_json(files: &Files, loaded: &mut Loaded) {
    let Ok(entries) = legacy_entries(files) else {
        return;
    };
    for image in loaded.images.iter_mut().filter(|i| i.name.is_none()) {
        let Some(config) = image.manifests.first().and_then(|m| m.blobs.first()) else {
            continue;
        };
        let named = entries.iter().find(|e| {
            e.config.ends_with(config.digest.hex())
                && e.repo_tags.as_ref().is_some_and(|t| !t.is_empty())
        });
        if let Some(e) = named {
            image.name = e.repo_tags.as_ref().and_then(|t| t.first().cloned());
        }
    }
}

impl Loaded {
    /// Every blob `images` name is in the source, with its size: checked
    /// before anything is pushed (images not chosen are not asked about).
    pub fn check(&self, images: &[&SourceImage]) -> Result<(), Error> {
        let files = &self.files;
        for d in images
            .iter()
            .flat_map(|i| &i.manifests)
            .flat_map(|m| &m.blobs)
        {
            let src = self
                .blob(&d.digest)
                .ok_or_else(|| bad(files.where_(), format!("blob {} is missing", d.digest)))?;
            let size = src.size().map_err(|e| Error::io(src.name(), e))?;
            if size != d.size {
                return Err(bad(
                    files.where_(),
                    format!(
                        "blob {} has {size} bytes; its manifest says {}",
                        d.digest, d.size
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Where blob `digest` is read from.
    pub fn blob(&self, digest: &Digest) -> Option<BlobSource> {
        self.blobs
            .get(digest)
            .cloned()
            .or_else(|| self.files.get(&crate::export::blob_name(digest)))
    }
}

#[async_trait::async_trait]
impl crate::export::push::Blobs for Loaded {
    async fn source(&self, digest: &Digest) -> Result<BlobSource, crate::export::ExportError> {
        self.blob(digest).ok_or_else(|| {
            crate::export::ExportError::Invalid(format!(
                "{}: blob {digest} is missing",
                self.files.where_().display()
            ))
        })
    }
}
