//! Test images made here: real tar+gzip layers (files, directories,
//! symlinks), a config with matching diff_ids, Docker schema2 or OCI
//! manifests, and indexes; pushed through the registry's HTTP API.

use super::registry::Registry;
use sha2::{Digest as _, Sha256};
use std::io::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Docker,
    Oci,
}

impl Format {
    pub fn manifest_type(self) -> &'static str {
        match self {
            Format::Docker => "application/vnd.docker.distribution.manifest.v2+json",
            Format::Oci => "application/vnd.oci.image.manifest.v1+json",
        }
    }
    fn config_type(self) -> &'static str {
        match self {
            Format::Docker => "application/vnd.docker.container.image.v1+json",
            Format::Oci => "application/vnd.oci.image.config.v1+json",
        }
    }
    fn layer_type(self) -> &'static str {
        match self {
            Format::Docker => "application/vnd.docker.image.rootfs.diff.tar.gzip",
            Format::Oci => "application/vnd.oci.image.layer.v1.tar+gzip",
        }
    }
    pub fn index_type(self) -> &'static str {
        match self {
            Format::Docker => "application/vnd.docker.distribution.manifest.list.v2+json",
            Format::Oci => "application/vnd.oci.image.index.v1+json",
        }
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

#[derive(Clone)]
pub struct Layer {
    pub blob: Vec<u8>,
    pub digest: String,
    pub diff_id: String,
    /// Overrides the format's (gzip) layer type, e.g. for an uncompressed tar.
    pub media_type: Option<String>,
}

#[derive(Clone)]
pub struct TestImage {
    pub format: Format,
    pub arch: String,
    pub variant: Option<String>,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub layers: Vec<Layer>,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
}

/// Deterministic pseudo-random bytes (incompressible enough to matter).
fn noise(seed: &str, len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15
        ^ seed
            .bytes()
            .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn layer(seed: &str, i: usize, big: usize) -> Layer {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    tar.append_data(&mut dir, format!("layer{i}/"), std::io::empty())
        .unwrap();
    let files = [
        (
            format!("layer{i}/hello.txt"),
            format!("hello from {seed} layer {i}\n").into_bytes(),
        ),
        (
            format!("layer{i}/data.bin"),
            noise(&format!("{seed}-{i}"), big),
        ),
    ];
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        tar.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_mode(0o777);
    link.set_size(0);
    tar.append_link(&mut link, format!("layer{i}/link"), "hello.txt")
        .unwrap();
    pack(tar.into_inner().unwrap(), Packing::Gzip)
}

/// How a test layer's tar is stored in the registry.
#[derive(Clone, Copy, Debug)]
pub enum Packing {
    Gzip,
    Zstd,
    Plain,
}

/// A layer holding the tar `raw`, compressed as `packing` says. Zstd and
/// plain layers carry OCI media types.
pub fn pack(raw: Vec<u8>, packing: Packing) -> Layer {
    let (blob, media_type) = match packing {
        Packing::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&raw).unwrap();
            (gz.finish().unwrap(), None)
        }
        Packing::Zstd => (
            ruzstd::encoding::compress_to_vec(
                raw.as_slice(),
                ruzstd::encoding::CompressionLevel::Fastest,
            ),
            Some("application/vnd.oci.image.layer.v1.tar+zstd".to_string()),
        ),
        Packing::Plain => (
            raw.clone(),
            Some("application/vnd.oci.image.layer.v1.tar".to_string()),
        ),
    };
    Layer {
        digest: sha256(&blob),
        diff_id: sha256(&raw),
        blob,
        media_type,
    }
}

/// The uncompressed tar of a layer built by [`layers`] (for re-packing).
pub fn layer_tar(seed: &str, i: usize) -> Vec<u8> {
    let l = layer(seed, i, 16 * 1024 + i * 100);
    let mut raw = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(l.blob.as_slice()),
        &mut raw,
    )
    .unwrap();
    raw
}

/// An uncompressed layer holding one incompressible file of `size` bytes.
pub fn big_layer(seed: &str, size: usize) -> Layer {
    let data = noise(seed, size);
    let mut tar = tar::Builder::new(Vec::with_capacity(size + 4096));
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(size as u64);
    tar.append_data(&mut h, "big.bin", data.as_slice()).unwrap();
    let blob = tar.into_inner().unwrap();
    let digest = sha256(&blob);
    Layer {
        diff_id: digest.clone(),
        digest,
        blob,
        media_type: Some("application/vnd.oci.image.layer.v1.tar".into()),
    }
}

/// `n` small gzip layers (as `build` makes) for composing images.
pub fn layers(seed: &str, n: usize) -> Vec<Layer> {
    (0..n)
        .map(|i| layer(seed, i, 16 * 1024 + i * 100))
        .collect()
}

/// An image of `n` layers; `seed` makes its content unique.
pub fn build(seed: &str, format: Format, arch: &str, n: usize) -> TestImage {
    let layers: Vec<Layer> = (0..n)
        .map(|i| layer(seed, i, 64 * 1024 + i * 1000))
        .collect();
    build_from(seed, format, arch, layers)
}

pub fn build_from(seed: &str, format: Format, arch: &str, layers: Vec<Layer>) -> TestImage {
    // `arch` may carry a variant: "arm/v7".
    let (arch, variant) = match arch.split_once('/') {
        Some((a, v)) => (a, Some(v.to_string())),
        None => (arch, None),
    };
    let mut config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "created": "2026-11-28T00:00:00Z",
        "config": {"Cmd": ["/bin/sh"], "Env": [format!("SEED={seed}")]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
        "history": layers.iter().map(|_| serde_json::json!({"created_by": "imgpull test"})).collect::<Vec<_>>(),
    });
    if let Some(v) = &variant {
        config["variant"] = serde_json::json!(v);
    }
    let config = serde_json::to_vec(&config).unwrap();
    let config_digest = sha256(&config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": format.manifest_type(),
        "config": {"mediaType": format.config_type(), "size": config.len(), "digest": config_digest},
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": l.media_type.as_deref().unwrap_or(format.layer_type()),
            "size": l.blob.len(),
            "digest": l.digest,
        })).collect::<Vec<_>>(),
    });
    let manifest = serde_json::to_vec_pretty(&manifest).unwrap();
    TestImage {
        format,
        arch: arch.to_string(),
        variant,
        manifest_digest: sha256(&manifest),
        manifest,
        config,
        config_digest,
        layers,
    }
}

/// The host's architecture in OCI terms.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

async fn push_blob(reg: &Registry, repo: &str, blob: &[u8]) {
    let http = reg.http();
    let auth = reg.push_auth(repo);
    let with_auth = |b: reqwest::RequestBuilder| match &auth {
        Some(a) => b.header("Authorization", a),
        None => b,
    };
    let start = with_auth(http.post(format!("{}/v2/{repo}/blobs/uploads/", reg.base_url())))
        .send()
        .await
        .unwrap();
    assert_eq!(
        start.status(),
        202,
        "start upload: {}",
        start.text().await.unwrap()
    );
    let loc = start.headers()["location"].to_str().unwrap().to_string();
    let url = if loc.starts_with("http") {
        loc
    } else {
        format!("{}{loc}", reg.base_url())
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let put = with_auth(http.put(format!("{url}{sep}digest={}", sha256(blob))))
        .header("Content-Type", "application/octet-stream")
        .body(blob.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201, "put blob: {}", put.text().await.unwrap());
}

pub async fn push_manifest(
    reg: &Registry,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
) {
    let http = reg.http();
    let mut req = http
        .put(format!(
            "{}/v2/{repo}/manifests/{reference}",
            reg.base_url()
        ))
        .header("Content-Type", media_type)
        .body(body.to_vec());
    if let Some(a) = reg.push_auth(repo) {
        req = req.header("Authorization", a);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(
        resp.status(),
        201,
        "put manifest: {}",
        resp.text().await.unwrap()
    );
}

/// Push `img`'s blobs and manifest, tagged `tag`.
pub async fn push(reg: &Registry, repo: &str, tag: &str, img: &TestImage) {
    push_blobs(reg, repo, img).await;
    push_manifest(reg, repo, tag, img.format.manifest_type(), &img.manifest).await;
}

async fn push_blobs(reg: &Registry, repo: &str, img: &TestImage) {
    push_blob(reg, repo, &img.config).await;
    for l in &img.layers {
        push_blob(reg, repo, &l.blob).await;
    }
}

/// Push several single-platform images and an index over them tagged `tag`;
/// returns the index bytes.
pub async fn push_index(
    reg: &Registry,
    repo: &str,
    tag: &str,
    format: Format,
    images: &[TestImage],
) -> Vec<u8> {
    let mut entries = Vec::new();
    for img in images {
        push_blobs(reg, repo, img).await;
        push_manifest(
            reg,
            repo,
            &img.manifest_digest,
            format.manifest_type(),
            &img.manifest,
        )
        .await;
        let mut platform = serde_json::json!({"architecture": img.arch, "os": "linux"});
        if let Some(v) = &img.variant {
            platform["variant"] = serde_json::json!(v);
        }
        entries.push(serde_json::json!({
            "mediaType": format.manifest_type(),
            "size": img.manifest.len(),
            "digest": img.manifest_digest,
            "platform": platform,
        }));
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": format.index_type(),
        "manifests": entries,
    }))
    .unwrap();
    push_manifest(reg, repo, tag, format.index_type(), &index).await;
    index
}

/// A fresh registry holding one image of `layers` layers at `repo:1`.
pub async fn registry_with(
    variant: super::registry::Variant,
    repo: &str,
    format: Format,
    layers: usize,
) -> (Registry, TestImage) {
    let reg = Registry::start(variant).await;
    let img = build(
        &format!("{repo}-{format:?}-{variant:?}"),
        format,
        host_arch(),
        layers,
    );
    push(&reg, repo, "1", &img).await;
    (reg, img)
}
