//! `docker-archive`: one tar that `docker load` (old and new), podman and
//! OCI tools all read, laid out as Docker 25+ `docker save` writes it:
//!
//! ```text
//! blobs/sha256/<hex>   config (byte for byte as fetched), layers as pulled
//!                      (compressed), and the image manifest
//! index.json           OCI index of the manifests, annotated with the name
//! manifest.json        docker's list: Config, RepoTags, Layers (into blobs/)
//! oci-layout           {"imageLayoutVersion":"1.0.0"}
//! repositories         legacy {name: {tag: id}}, for old loaders
//! ```
//!
//! With `layer_format = "uncompressed"` (`--layer-format uncompressed`)
//! layers are the plain tars, named by diff_id, and the manifests in
//! `blobs/` name them; with `legacy = true` (`--legacy`) the tar has the
//! v1.2 layout instead (see [`legacy_plan`]).
//!
//! A blob shared by several images is stored once. The tar is written to a
//! temporary file beside the destination and renamed when complete.

use crate::cache::BlobSource;
use crate::catalog::{Build, Kind, Plugin, PluginConfig, PluginError};
use crate::export::tar_out::write_tar;
use crate::export::{
    blob_name, name_annotations, parent_dir, Destination, Entry, ExportContext, ExportError,
    ExportImage, ExportManifest, Exporter, LiveOutput, PlacedTar, Uncompressed,
};
use crate::oci::digest::Digest;
use crate::oci::manifest::{media, with_uncompressed_layers};
use crate::oci::reference::Reference;
use async_trait::async_trait;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

/// How layers are written (`layer_format = "compressed"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerFormat {
    /// As pulled (gzip, zstd): the smallest tar, `docker load` 1.10+.
    Compressed,
    /// Plain tars named by diff_id, byte for byte what `docker save` writes.
    Uncompressed,
}

pub struct DockerArchive {
    pub layers: LayerFormat,
    /// The v1.2 layout of `docker save` before Docker 25.
    pub legacy: bool,
}

/// `[exporters.docker-archive]`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    layer_format: Option<LayerFormat>,
    #[serde(default)]
    legacy: bool,
}

fn build(cfg: &PluginConfig) -> Result<Arc<dyn Exporter>, PluginError> {
    let invalid = |m: String| PluginError::invalid(Kind::Exporter, "docker-archive", m);
    let o: Options = crate::catalog::options(Kind::Exporter, "docker-archive", cfg)?;
    let (layers, legacy) = (o.layer_format, o.legacy);
    if legacy && layers == Some(LayerFormat::Compressed) {
        return Err(invalid("the legacy layout holds uncompressed layers (layer.tar); drop layer_format = \"compressed\"".into()));
    }
    let layers = match (layers, legacy) {
        (Some(l), _) => l,
        (None, true) => LayerFormat::Uncompressed,
        (None, false) => LayerFormat::Compressed,
    };
    Ok(Arc::new(DockerArchive { layers, legacy }))
}

inventory::submit! {
    Plugin {
        name: "docker-archive",
        summary: "a `docker load` tar (Docker 25+ layout, also an OCI layout; options layer_format, legacy) (default)",
        build: Build::Exporter(build),
    }
}

#[async_trait]
impl Exporter for DockerArchive {
    fn extension(&self) -> Option<&'static str> {
        Some("tar")
    }

    fn accepts_uncompressed_layers(&self) -> bool {
        true
    }

    /// The default layout (compressed layers) is known from the manifests
    /// alone: the layers can be written into the tar as they download.
    fn live(
        &self,
        images: &[ExportImage],
        dest: &Destination,
        _cx: &ExportContext<'_>,
    ) -> Result<Option<Arc<dyn LiveOutput>>, ExportError> {
        if self.legacy || self.layers == LayerFormat::Uncompressed {
            return Ok(None);
        }
        let dest = dest.path()?;
        let mut by_name = BTreeMap::new();
        for em in images.iter().flat_map(|i| &i.manifests) {
            for d in std::iter::once(&em.manifest.config).chain(&em.manifest.layers) {
                by_name.insert(blob_name(&d.digest), d.digest.clone());
            }
        }
        let job = Job {
            images: images.to_vec(),
            // Not read: the blobs are placed by digest, not copied by path.
            files: by_name
                .iter()
                .map(|(n, d)| (d.clone(), BlobSource::File(PathBuf::from(n))))
                .collect(),
            uncompressed: false,
            legacy: false,
            dest: dest.to_path_buf(),
        };
        let entries = plan(&job, &|em| job.as_pulled(em))?;
        let placed = PlacedTar::create(dest, DIRS, &entries, &|name| by_name.get(name).cloned())?;
        Ok(placed.map(|p| Arc::new(p) as Arc<dyn LiveOutput>))
    }

    /// zstd layers as pulled: Docker before 23 (Debian 12's docker.io
    /// 20.10) cannot load them ("archive/tar: invalid tar header").
    fn warnings(&self, images: &[ExportImage]) -> Vec<String> {
        if self.layers == LayerFormat::Uncompressed {
            return Vec::new();
        }
        let zstd = images
            .iter()
            .flat_map(|i| &i.manifests)
            .flat_map(|m| &m.manifest.layers)
            .filter(|l| l.media_type.ends_with("zstd"))
            .count();
        if zstd == 0 {
            return Vec::new();
        }
        vec![format!(
            "{zstd} layer(s) are zstd-compressed: Docker before 23 cannot load them (\"archive/tar: invalid tar header\"); \
             for an older Docker pull with --layer-format uncompressed (podman and Docker 23+ read them as they are)"
        )]
    }

    async fn export(
        &self,
        images: &[ExportImage],
        dest: &Destination,
        cx: &ExportContext<'_>,
    ) -> Result<(), ExportError> {
        let cache = cx.cache;
        let dest = dest.path()?;
        let mut files = BTreeMap::new();
        for em in images.iter().flat_map(|i| &i.manifests) {
            for d in std::iter::once(&em.manifest.config).chain(&em.manifest.layers) {
                files.insert(d.digest.clone(), cache.source(&d.digest).await?);
            }
        }
        let job = Job {
            images: images.to_vec(),
            files,
            uncompressed: self.layers == LayerFormat::Uncompressed,
            legacy: self.legacy,
            dest: dest.to_path_buf(),
        };
        tokio::task::spawn_blocking(move || job.run())
            .await
            .map_err(|e| ExportError::Invalid(format!("export task failed: {e}")))?
    }
}

/// The directories at the start of the Docker 25+ layout.
const DIRS: &[&str] = &["blobs/", "blobs/sha256/"];

/// Everything the blocking half needs.
struct Job {
    images: Vec<ExportImage>,
    /// Cached blobs by digest.
    files: BTreeMap<Digest, BlobSource>,
    uncompressed: bool,
    legacy: bool,
    dest: PathBuf,
}

/// A layer as it goes into the tar.
struct LayerFile {
    digest: Digest,
    size: u64,
    source: BlobSource,
    /// The diff_id (uncompressed outputs only).
    diff_id: Option<Digest>,
}

impl Job {
    fn file(&self, d: &Digest) -> BlobSource {
        self.files[d].clone()
    }

    /// The layers as pulled (compressed, by their own digests).
    fn as_pulled(&self, em: &ExportManifest) -> Vec<LayerFile> {
        em.manifest
            .layers
            .iter()
            .map(|l| LayerFile {
                digest: l.digest.clone(),
                size: l.size,
                source: self.file(&l.digest),
                diff_id: None,
            })
            .collect()
    }

    fn run(self) -> Result<(), ExportError> {
        // Uncompressed outputs: every layer's diff_id from its config, and
        // the compressed ones uncompressed (and checked) first.
        let mut diff_ids = BTreeMap::new();
        let mut jobs = Vec::new();
        if self.uncompressed {
            for em in self.images.iter().flat_map(|i| &i.manifests) {
                let ids = crate::export::diff_ids(&self.file(&em.manifest.config.digest), em)?;
                for (l, id) in em.manifest.layers.iter().zip(&ids) {
                    if l.digest != *id {
                        jobs.push((id.clone(), self.file(&l.digest)));
                    }
                }
                diff_ids.insert(em.digest.clone(), ids);
            }
        }
        let unpacked = Uncompressed::run(jobs, &parent_dir(&self.dest))?;
        let layers_of = |em: &ExportManifest| -> Vec<LayerFile> {
            let ids = diff_ids.get(&em.digest);
            em.manifest
                .layers
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let diff_id = ids.map(|ids| ids[i].clone());
                    match diff_id.as_ref().and_then(|id| unpacked.get(id)) {
                        Some((path, size)) => LayerFile {
                            digest: diff_id.clone().expect("looked up by it"),
                            size,
                            source: BlobSource::File(path.to_path_buf()),
                            diff_id,
                        },
                        None => LayerFile {
                            digest: l.digest.clone(),
                            size: l.size,
                            source: self.file(&l.digest),
                            diff_id,
                        },
                    }
                })
                .collect()
        };
        if self.legacy {
            let entries = legacy_plan(&self, &layers_of)?;
            write_tar(&[], &entries, &self.dest)
        } else {
            let entries = plan(&self, &layers_of)?;
            write_tar(DIRS, &entries, &self.dest)
        }
    }
}

fn to_json(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("JSON values serialize")
}

/// `repositories`: {name: {tag: id}}.
type Repositories = BTreeMap<String, BTreeMap<String, String>>;

/// The Docker 25+ layout.
fn plan(
    job: &Job,
    layers_of: &dyn Fn(&ExportManifest) -> Vec<LayerFile>,
) -> Result<Vec<Entry>, ExportError> {
    let mut entries = Vec::new();
    let mut seen = BTreeSet::new();
    let mut index = Vec::new();
    let mut manifest_json = Vec::new();
    let mut repositories = Repositories::new();
    for img in &job.images {
        for (i, em) in img.manifests.iter().enumerate() {
            let m = &em.manifest;
            let layers = layers_of(em);
            push_blobs(job, em, &layers, &mut seen, &mut entries);
            let (bytes, digest) = written_manifest(em, &layers)?;
            let mut desc = descriptor(em, &digest, bytes.len());
            if seen.insert(digest.clone()) {
                entries.push(Entry::Bytes {
                    name: blob_name(&digest),
                    data: bytes,
                });
            }
            // One name per reference: the first platform carries it.
            let tag = img.tag.as_ref().filter(|_| i == 0);
            if let Some(t) = tag {
                desc["annotations"] = name_annotations(t);
                add_repository(&mut repositories, t, m.config.digest.hex().to_string());
            }
            index.push(desc);
            manifest_json.push(json!({
                "Config": blob_name(&m.config.digest),
                "RepoTags": repo_tags(tag),
                "Layers": layers.iter().map(|l| blob_name(&l.digest)).collect::<Vec<_>>(),
            }));
        }
    }
    entries.extend(index_files(index, manifest_json, &repositories));
    Ok(entries)
}

/// Adds an image's config and layers to `entries`, each blob once.
fn push_blobs(
    job: &Job,
    em: &ExportManifest,
    layers: &[LayerFile],
    seen: &mut BTreeSet<Digest>,
    entries: &mut Vec<Entry>,
) {
    let config = &em.manifest.config;
    if seen.insert(config.digest.clone()) {
        entries.push(Entry::File {
            name: blob_name(&config.digest),
            size: config.size,
            source: job.file(&config.digest),
        });
    }
    for l in layers {
        if seen.insert(l.digest.clone()) {
            entries.push(Entry::File {
                name: blob_name(&l.digest),
                size: l.size,
                source: l.source.clone(),
            });
        }
    }
}

/// The manifest as written and its digest: as pulled, or rewritten to name
/// the layers written uncompressed.
fn written_manifest(
    em: &ExportManifest,
    layers: &[LayerFile],
) -> Result<(Vec<u8>, Digest), ExportError> {
    // Layers written uncompressed: the manifest names them.
    let swaps: Vec<(usize, Digest, u64)> = layers
        .iter()
        .zip(&em.manifest.layers)
        .enumerate()
        .filter(|(_, (w, l))| w.digest != l.digest)
        .map(|(i, (w, _))| (i, w.digest.clone(), w.size))
        .collect();
    if swaps.is_empty() {
        return Ok((em.bytes.to_vec(), em.digest.clone()));
    }
    let b = with_uncompressed_layers(&em.bytes, &swaps).ok_or_else(|| {
        ExportError::Invalid(format!("manifest {} cannot be rewritten", em.digest))
    })?;
    let d = Digest::of(&b);
    Ok((b, d))
}

/// A manifest's `index.json` descriptor (its platform, no name yet).
fn descriptor(em: &ExportManifest, digest: &Digest, size: usize) -> Value {
    let mut desc = json!({
        "mediaType": em.media_type,
        "digest": digest,
        "size": size,
    });
    if let Some(p) = &em.platform {
        desc["platform"] = serde_json::to_value(p).unwrap_or(Value::Null);
    }
    desc
}

/// Records in `repositories` that tag `t` names image (or layer) `id`.
fn add_repository(repositories: &mut Repositories, t: &Reference, id: String) {
    repositories
        .entry(t.familiar_name())
        .or_default()
        .insert(t.tag.clone().unwrap_or_default(), id);
}

/// An image's `RepoTags` in manifest.json: its tag, or null (untagged).
fn repo_tags(tag: Option<&Reference>) -> Value {
    match tag {
        Some(t) => json!([t.familiar_tagged().unwrap_or_default()]),
        None => Value::Null,
    }
}

/// The Docker 25+ layout's last files: index.json, manifest.json,
/// oci-layout and (when an image is tagged) repositories.
fn index_files(
    index: Vec<Value>,
    manifest_json: Vec<Value>,
    repositories: &Repositories,
) -> Vec<Entry> {
    let index = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": index,
    });
    let mut entries = vec![
        Entry::Bytes {
            name: "index.json".into(),
            data: to_json(&index),
        },
        manifest_json_entry(manifest_json),
        Entry::Bytes {
            name: "oci-layout".into(),
            data: br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        },
    ];
    entries.extend(repositories_entry(repositories));
    entries
}

/// `manifest.json`: docker's list of the images.
fn manifest_json_entry(manifest_json: Vec<Value>) -> Entry {
    Entry::Bytes {
        name: "manifest.json".into(),
        data: to_json(&Value::Array(manifest_json)),
    }
}

/// `repositories`, unless no image is tagged.
fn repositories_entry(repositories: &Repositories) -> Option<Entry> {
    (!repositories.is_empty()).then(|| Entry::Bytes {
        name: "repositories".into(),
        data: serde_json::to_vec(repositories).expect("map serializes"),
    })
}

/// The v1.2 layout (`docker save` before Docker 25):
///
/// ```text
/// <config hex>.json     the config, byte for byte
/// <id>/VERSION          "1.0"
/// <id>/json             a v1 image description (id, parent; the image's
///                       config for the top layer)
/// <id>/layer.tar        the uncompressed layer
/// manifest.json         Config, RepoTags, Layers (<id>/layer.tar)
/// repositories          {name: {tag: top layer id}}
/// ```
///
/// Layer ids are chained (each hashes its parent's id and its layer's
/// chain id; the top one also the config), so a layer that appears twice
/// in an image, or in two images under different parents, gets two
/// directories, and a layer shared with the same history is stored once.
fn legacy_plan(
    job: &Job,
    layers_of: &dyn Fn(&ExportManifest) -> Vec<LayerFile>,
) -> Result<Vec<Entry>, ExportError> {
    let mut entries = Vec::new();
    let mut seen = BTreeSet::new();
    let mut manifest_json = Vec::new();
    let mut repositories = Repositories::new();
    for img in &job.images {
        for (i, em) in img.manifests.iter().enumerate() {
            let m = &em.manifest;
            let config_name = format!("{}.json", m.config.digest.hex());
            let config_path = job.file(&m.config.digest);
            if seen.insert(config_name.clone()) {
                entries.push(Entry::File {
                    name: config_name.clone(),
                    size: m.config.size,
                    source: config_path.clone(),
                });
            }
            let layers = layers_of(em);
            let (layer_names, top) =
                legacy_layers(em, &layers, &config_path, &mut seen, &mut entries)?;
            let tag = img.tag.as_ref().filter(|_| i == 0);
            if let (Some(t), Some(top)) = (tag, top) {
                add_repository(&mut repositories, t, top);
            }
            manifest_json.push(json!({
                "Config": config_name,
                "RepoTags": repo_tags(tag),
                "Layers": layer_names,
            }));
        }
    }
    entries.push(manifest_json_entry(manifest_json));
    entries.extend(repositories_entry(&repositories));
    Ok(entries)
}

/// Adds an image's layer directories to `entries`, each id once; returns
/// its `Layers` (`<id>/layer.tar`) and the top layer's id.
fn legacy_layers(
    em: &ExportManifest,
    layers: &[LayerFile],
    config_path: &BlobSource,
    seen: &mut BTreeSet<String>,
    entries: &mut Vec<Entry>,
) -> Result<(Vec<String>, Option<String>), ExportError> {
    let mut parent: Option<String> = None;
    let mut chain: Option<Digest> = None;
    let mut layer_names = Vec::new();
    for (n, l) in layers.iter().enumerate() {
        let diff_id = l.diff_id.as_ref().expect("legacy layers are uncompressed");
        let c = match &chain {
            None => diff_id.clone(),
            Some(prev) => Digest::of(format!("{prev} {diff_id}").as_bytes()),
        };
        let top = n + 1 == layers.len();
        let id = legacy_id(
            &c,
            parent.as_deref(),
            top.then_some(&em.manifest.config.digest),
        );
        if seen.insert(id.clone()) {
            let description = v1_json(&id, parent.as_deref(), top.then_some(config_path))?;
            entries.extend(layer_dir(&id, description, l));
        }
        layer_names.push(format!("{id}/layer.tar"));
        parent = Some(id);
        chain = Some(c);
    }
    Ok((layer_names, parent))
}

/// A v1 layer id: the hash of its chain id, its parent's id and (the top
/// layer) the config digest.
fn legacy_id(chain: &Digest, parent: Option<&str>, config: Option<&Digest>) -> String {
    let mut v1 = json!({"layer_id": chain});
    if let Some(p) = parent {
        v1["parent"] = json!(format!("sha256:{p}"));
    }
    if let Some(c) = config {
        v1["config"] = json!(c);
    }
    Digest::of(&to_json(&v1)).hex().to_string()
}

/// A v1 layer's directory: `VERSION`, `json` and `layer.tar`.
fn layer_dir(id: &str, description: Vec<u8>, l: &LayerFile) -> [Entry; 3] {
    [
        Entry::Bytes {
            name: format!("{id}/VERSION"),
            data: b"1.0".to_vec(),
        },
        Entry::Bytes {
            name: format!("{id}/json"),
            data: description,
        },
        Entry::File {
            name: format!("{id}/layer.tar"),
            size: l.size,
            source: l.source.clone(),
        },
    ]
}

/// A layer's v1 `json`: id and parent; the top layer also carries the
/// image's config (less rootfs and history), as `docker save` wrote it.
fn v1_json(
    id: &str,
    parent: Option<&str>,
    config: Option<&BlobSource>,
) -> Result<Vec<u8>, ExportError> {
    let mut v = match config {
        Some(src) => {
            let bytes = src.read_all().map_err(|e| ExportError::io(src.name(), e))?;
            let mut c: Value = serde_json::from_slice(&bytes).map_err(|e| {
                ExportError::Invalid(format!("{}: not JSON: {e}", src.name().display()))
            })?;
            if let Some(o) = c.as_object_mut() {
                o.remove("rootfs");
                o.remove("history");
            }
            c
        }
        None => json!({"created": "1970-01-01T00:00:00Z", "container_config": {"Cmd": null}}),
    };
    if !v.is_object() {
        v = json!({});
    }
    v["id"] = json!(id);
    if let Some(p) = parent {
        v["parent"] = json!(p);
    }
    Ok(to_json(&v))
}
