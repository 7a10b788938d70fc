//! `oci`: an OCI image layout directory.
//!
//! ```text
//! DIR/oci-layout          {"imageLayoutVersion":"1.0.0"}
//! DIR/index.json          one entry per image, named by
//!                         org.opencontainers.image.ref.name (the tag)
//! DIR/blobs/sha256/<hex>  configs, layers (as pulled), manifests, and an
//!                         index per multi-platform image
//! ```
//!
//! Docker schema2 manifests are written with OCI media types (as skopeo
//! does), so their digests differ from the registry's; configs and layers
//! are byte for byte as pulled. Blobs are hardlinked from the cache when it is on the same filesystem,
//! else copied. A new layout is built under a temporary name and renamed
//! into place; writing into an existing layout adds its blobs first and
//! replaces `index.json` last (atomically), replacing entries of the same name.

use crate::cache::BlobSource;
use crate::cache::CacheBackend;
use crate::catalog::{Build, Kind, Plugin, PluginConfig, PluginError};
use crate::export::{
    blob_name, name_annotations, Destination, ExportContext, ExportError, ExportImage, Exporter,
};
use crate::oci::digest::Digest;
use crate::oci::manifest::media;
use async_trait::async_trait;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct OciLayout;

fn build(cfg: &PluginConfig) -> Result<Arc<dyn Exporter>, PluginError> {
    crate::catalog::options::<crate::catalog::NoOptions>(Kind::Exporter, "oci", cfg)?;
    Ok(Arc::new(OciLayout))
}

inventory::submit! {
    Plugin {
        name: "oci",
        summary: "an OCI image layout directory (several platforms become one index)",
        build: Build::Exporter(build),
    }
}

/// What goes into the layout: blobs from the cache, generated blobs, and
/// the `index.json` entries.
struct Plan {
    cached: Vec<(Digest, u64, BlobSource)>,
    generated: Vec<(Digest, Vec<u8>)>,
    entries: Vec<Value>,
}

#[async_trait]
impl Exporter for OciLayout {
    fn extension(&self) -> Option<&'static str> {
        None
    }

    async fn export(
        &self,
        images: &[ExportImage],
        dest: &Destination,
        cx: &ExportContext<'_>,
    ) -> Result<(), ExportError> {
        let cache = cx.cache;
        let dest = dest.path()?;
        let plan = plan(images, cache).await?;
        let dest = dest.to_path_buf();
        let linked = tokio::task::spawn_blocking(move || write_layout(&plan, &dest))
            .await
            .map_err(|e| ExportError::Invalid(format!("export task failed: {e}")))??;
        // Linking moved the cache files' change times, not their bytes.
        for d in &linked {
            cache.linked(d).await?;
        }
        Ok(())
    }
}

async fn plan(images: &[ExportImage], cache: &dyn CacheBackend) -> Result<Plan, ExportError> {
    let mut plan = Plan {
        cached: Vec::new(),
        generated: Vec::new(),
        entries: Vec::new(),
    };
    for img in images {
        let mut descs = Vec::new();
        for em in &img.manifests {
            let m = &em.manifest;
            for d in std::iter::once(&m.config).chain(&m.layers) {
                plan.cached
                    .push((d.digest.clone(), d.size, cache.source(&d.digest).await?));
            }
            // OCI-only readers (skopeo's oci: transport) skip Docker types.
            let (bytes, media_type) = match crate::oci::manifest::docker_to_oci(&em.bytes) {
                Some(b) => (b, media::OCI_MANIFEST.to_string()),
                None => (em.bytes.to_vec(), em.media_type.clone()),
            };
            let digest = Digest::of(&bytes);
            let mut desc = json!({"mediaType": media_type, "digest": digest, "size": bytes.len()});
            plan.generated.push((digest, bytes));
            if let Some(p) = &em.platform {
                desc["platform"] = serde_json::to_value(p).unwrap_or(Value::Null);
            }
            descs.push(desc);
        }
        let mut entry = if descs.len() == 1 {
            descs.pop().expect("one descriptor")
        } else {
            // Several platforms of one image: an index of them.
            let index =
                json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": descs});
            let bytes = serde_json::to_vec(&index).expect("JSON serializes");
            let digest = Digest::of(&bytes);
            let desc =
                json!({"mediaType": media::OCI_INDEX, "digest": digest, "size": bytes.len()});
            plan.generated.push((digest, bytes));
            desc
        };
        if let Some(tag) = &img.tag {
            entry["annotations"] = name_annotations(tag);
        }
        plan.entries.push(entry);
    }
    Ok(plan)
}

/// Whether a new index entry replaces an old one: same full name
/// (`io.containerd.image.name`, else the tag), or both untagged with the
/// same digest.
fn same_image(old: &Value, new: &Value) -> bool {
    let name = |e: &Value| {
        let a = &e["annotations"];
        a["io.containerd.image.name"]
            .as_str()
            .or_else(|| a["org.opencontainers.image.ref.name"].as_str())
            .map(str::to_string)
    };
    match (name(old), name(new)) {
        (Some(a), Some(b)) => a == b,
        (None, None) => old["digest"] == new["digest"],
        _ => false,
    }
}

/// Whether the file at `path` hashes to `digest`.
fn holds(path: &Path, digest: &Digest) -> bool {
    matches!(crate::oci::digest::hash_file(path, digest), Ok(Some(d)) if d == *digest)
}

/// Maps an I/O error to the path it concerns.
fn io(p: &Path) -> impl FnOnce(std::io::Error) -> ExportError {
    let p = p.to_path_buf();
    move |e| ExportError::io(p, e)
}

/// Write the layout; returns the cached blobs that were hardlinked.
fn write_layout(plan: &Plan, dest: &Path) -> Result<Vec<Digest>, ExportError> {
    let (root, guard) = layout_root(dest)?;
    // An existing index.json is read before anything is written: one that
    // cannot be read stops the export with the layout as it was.
    let index_path = root.join("index.json");
    let index = index_bytes(plan, &index_path)?;
    let blobs = root.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(io(&blobs))?;
    let linked = put_cached(plan, &root)?;
    for (digest, bytes) in &plan.generated {
        let to = root.join(blob_name(digest));
        // One already there is kept only if it is byte for byte ours (a
        // damaged one would be named by the new index).
        if !std::fs::read(&to).is_ok_and(|held| held == *bytes) {
            write_atomic(&to, bytes)?;
        }
    }
    write_atomic(
        &root.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    write_atomic(&index_path, &index)?;
    let _ = std::fs::File::open(&blobs).and_then(|d| d.sync_all());
    if let Some(tmp) = guard {
        crate::util::fs::set_dir_mode(&root).map_err(io(&root))?;
        tmp.persist(dest)?;
    }
    Ok(linked)
}

/// The directory to write into: `dest` if it is a layout already, else a
/// temporary one beside it (with the guard that renames it into place).
fn layout_root(dest: &Path) -> Result<(PathBuf, Option<crate::export::temp::Dir>), ExportError> {
    // An empty directory is as good as none: build beside it and rename
    // over it, so a failure leaves nothing half-written there.
    if dest.is_dir() && std::fs::read_dir(dest).map_err(io(dest))?.next().is_none() {
        std::fs::remove_dir(dest).map_err(io(dest))?;
    }
    if !dest.exists() {
        let tmp = crate::export::temp::Dir::beside(dest, None)?;
        return Ok((tmp.path().to_path_buf(), Some(tmp)));
    }
    if !dest.join("oci-layout").is_file() {
        return Err(ExportError::Invalid(format!(
            "{} exists and is not an OCI layout (no oci-layout file); choose another -o",
            dest.display()
        )));
    }
    Ok((dest.to_path_buf(), None))
}

/// Put the cached blobs under `root`; returns those that were hardlinked.
fn put_cached(plan: &Plan, root: &Path) -> Result<Vec<Digest>, ExportError> {
    let mut linked = Vec::new();
    for (digest, size, src) in &plan.cached {
        if crate::util::cancel::requested() {
            return Err(ExportError::Invalid("interrupted".into()));
        }
        let to = root.join(blob_name(digest));
        // blobs/sha512/ too, for an image that uses it.
        if let Some(dir) = to.parent().filter(|d| !d.is_dir()) {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        // A blob already in an existing layout is kept only if it is right.
        if std::fs::metadata(&to).is_ok_and(|m| m.len() == *size) && holds(&to, digest) {
            continue;
        }
        if link_or_copy(src, &to)? {
            linked.push(digest.clone());
        }
    }
    Ok(linked)
}

/// The new `index.json`: the entries of an existing one that the plan's do
/// not replace, then the plan's.
fn index_bytes(plan: &Plan, index_path: &Path) -> Result<Vec<u8>, ExportError> {
    let mut manifests: Vec<Value> = Vec::new();
    if index_path.is_file() {
        let old: Value =
            serde_json::from_slice(&std::fs::read(index_path).map_err(io(index_path))?).map_err(
                |e| ExportError::Invalid(format!("{}: not valid JSON: {e}", index_path.display())),
            )?;
        manifests.extend(
            old["manifests"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| !plan.entries.iter().any(|n| same_image(e, n)))
                .cloned(),
        );
    }
    manifests.extend(plan.entries.iter().cloned());
    let index = json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": manifests});
    Ok(serde_json::to_vec(&index).expect("JSON serializes"))
}

/// Hardlink (a local file on the same filesystem) or copy, through a
/// temporary name; `true` when linked.
fn link_or_copy(src: &BlobSource, to: &Path) -> Result<bool, ExportError> {
    let dir = to.parent().expect("blob paths have a parent");
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        to.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let linked = match src {
        BlobSource::File(p) => std::fs::hard_link(p, &tmp).is_ok(),
        BlobSource::Reader { .. } => false,
    };
    if !linked {
        let copied = match src {
            BlobSource::File(p) => std::fs::copy(p, &tmp),
            BlobSource::Reader { .. } => src
                .open()
                .and_then(|mut r| std::io::copy(&mut r, &mut std::fs::File::create(&tmp)?)),
        };
        copied.map_err(|e| ExportError::io(&tmp, e))?;
        // A copy must be on disk before index.json can name it.
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| ExportError::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, to).map_err(|e| ExportError::io(to, e))?;
    Ok(linked)
}

fn write_atomic(to: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    use std::io::Write;
    let dir = to.parent().expect("layout paths have a parent");
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| ExportError::io(dir, e))?;
    tmp.write_all(bytes)
        .map_err(|e| ExportError::io(tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| ExportError::io(tmp.path(), e))?;
    crate::util::fs::set_readable(tmp.path()).map_err(|e| ExportError::io(to, e))?;
    tmp.persist(to).map_err(|e| ExportError::io(to, e.error))?;
    Ok(())
}
