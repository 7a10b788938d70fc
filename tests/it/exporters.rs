//! docker-archive variants (compressed, uncompressed, legacy v1.2) and the
//! OCI layout read by tools we did not write: skopeo, podman, umoci.

use crate::pull::tar_file;
use crate::support::image::{self, Format, Packing};
use crate::support::registry::{Registry, Variant};
use crate::support::{imgpull, tempdir, text, tools};
use serde_json::Value;
use std::path::Path;

/// An OCI image whose layers are gzip, zstd, plain, and the first again.
pub(crate) async fn mixed_image(reg: &Registry) -> image::TestImage {
    let seed = "mixed";
    let layers = vec![
        image::pack(image::layer_tar(seed, 0), Packing::Gzip),
        image::pack(image::layer_tar(seed, 1), Packing::Zstd),
        image::pack(image::layer_tar(seed, 2), Packing::Plain),
        image::pack(image::layer_tar(seed, 0), Packing::Gzip),
    ];
    let img = image::build_from(seed, Format::Oci, image::host_arch(), layers);
    image::push(reg, "ns/mixed", "1", &img).await;
    img
}

fn json(bytes: Option<Vec<u8>>) -> Value {
    serde_json::from_slice(&bytes.expect("file present in tar")).unwrap()
}

fn hex(d: &str) -> &str {
    d.trim_start_matches("sha256:")
}

fn names(tar: &Path) -> Vec<String> {
    let mut ar = tar::Archive::new(std::fs::File::open(tar).unwrap());
    ar.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

async fn pull(work: &Path, args: &[&str]) {
    let out = imgpull(work, args, None).await;
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn compressed_layers_pass_through_zstd_included() {
    let reg = Registry::start(Variant::Anonymous).await;
    let img = mixed_image(&reg).await;
    let work = tempdir();
    let name = format!("{}/ns/mixed:1", reg.host());
    pull(work.path(), &["pull", &name, "-o", "out.tar"]).await;
    let tar = work.path().join("out.tar");
    for l in &img.layers {
        let got = tar_file(&tar, &format!("blobs/sha256/{}", hex(&l.digest)));
        assert_eq!(
            got.as_ref(),
            Some(&l.blob),
            "layer {} byte for byte",
            l.digest
        );
    }
    let index = json(tar_file(&tar, "index.json"));
    assert_eq!(index["manifests"][0]["digest"], img.manifest_digest);
    tools::check_archive(&tar, work.path(), Some(&name));
}

#[tokio::test(flavor = "multi_thread")]
async fn uncompressed_layers_are_the_plain_tars_named_by_diff_id() {
    let reg = Registry::start(Variant::Anonymous).await;
    let img = mixed_image(&reg).await;
    let work = tempdir();
    let name = format!("{}/ns/mixed:1", reg.host());
    pull(
        work.path(),
        &[
            "pull",
            &name,
            "--layer-format",
            "uncompressed",
            "-o",
            "out.tar",
        ],
    )
    .await;
    let tar = work.path().join("out.tar");
    let manifest = json(tar_file(&tar, "manifest.json"));
    let want: Vec<String> = img
        .layers
        .iter()
        .map(|l| format!("blobs/sha256/{}", hex(&l.diff_id)))
        .collect();
    assert_eq!(manifest[0]["Layers"], serde_json::json!(want));
    for l in &img.layers {
        let got = tar_file(&tar, &format!("blobs/sha256/{}", hex(&l.diff_id))).unwrap();
        assert_eq!(
            image::sha256(&got),
            l.diff_id,
            "the layer tar hashes to its diff_id"
        );
    }
    assert_eq!(
        names(&tar)
            .iter()
            .filter(|n| n.ends_with(hex(&img.layers[0].diff_id)))
            .count(),
        1,
        "a layer used twice is stored once"
    );
    // The manifest in blobs/ names the plain tars, and index.json names it.
    let index = json(tar_file(&tar, "index.json"));
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let m = json(tar_file(&tar, &format!("blobs/sha256/{}", hex(&digest))));
    assert_eq!(m["layers"][1]["digest"], img.layers[1].diff_id);
    assert_eq!(
        m["layers"][1]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );
    assert_eq!(m["config"]["digest"], img.config_digest);
    tools::check_archive(&tar, work.path(), Some(&name));

    // Flags that only docker-archive takes are refused for other formats.
    let out = imgpull(
        work.path(),
        &["pull", &name, "--legacy", "-o", "oci:x"],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_layout_chains_layer_ids() {
    let reg = Registry::start(Variant::Anonymous).await;
    let img = mixed_image(&reg).await;
    let other = image::build_from(
        "legacy-other",
        Format::Docker,
        image::host_arch(),
        vec![
            image::pack(image::layer_tar("mixed", 0), Packing::Gzip),
            image::pack(image::layer_tar("other", 1), Packing::Gzip),
        ],
    );
    image::push(&reg, "ns/other", "2", &other).await;
    let work = tempdir();
    let name = format!("{}/ns/mixed:1", reg.host());
    let other_name = format!("{}/ns/other:2", reg.host());
    pull(
        work.path(),
        &["pull", &name, &other_name, "--legacy", "-o", "out.tar"],
    )
    .await;
    let tar = work.path().join("out.tar");
    let all = names(&tar);
    assert!(
        !all.iter()
            .any(|n| n == "index.json" || n.starts_with("blobs")),
        "{all:?}"
    );
    let manifest = json(tar_file(&tar, "manifest.json"));
    assert_eq!(
        manifest[0]["Config"],
        format!("{}.json", hex(&img.config_digest))
    );
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!([name]));
    let layers: Vec<String> = manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(layers.len(), 4);
    let distinct: std::collections::BTreeSet<_> = layers.iter().collect();
    assert_eq!(
        distinct.len(),
        4,
        "the repeated layer gets its own id: {layers:?}"
    );
    let mut parent = Value::Null;
    for (l, path) in img.layers.iter().zip(&layers) {
        let id = path.strip_suffix("/layer.tar").unwrap();
        assert_eq!(tar_file(&tar, &format!("{id}/VERSION")).unwrap(), b"1.0");
        let v1 = json(tar_file(&tar, &format!("{id}/json")));
        assert_eq!(v1["id"], id);
        assert_eq!(v1.get("parent").cloned().unwrap_or(Value::Null), parent);
        parent = Value::from(id);
        let data = tar_file(&tar, path).unwrap();
        assert_eq!(image::sha256(&data), l.diff_id);
    }
    // The other image starts with the same layer, with no parent: the same
    // id, stored once.
    let other_layers = manifest[1]["Layers"].as_array().unwrap();
    assert_eq!(other_layers[0].as_str(), Some(layers[0].as_str()));
    assert_eq!(all.iter().filter(|n| **n == layers[0]).count(), 1);
    let repos = json(tar_file(&tar, "repositories"));
    let top = layers[3].strip_suffix("/layer.tar").unwrap();
    assert_eq!(repos[format!("{}/ns/mixed", reg.host())]["1"], top);

    let loaded = tools::podman_load(&tar, work.path());
    assert!(
        loaded.contains(&name) && loaded.contains(&other_name),
        "{loaded}"
    );
    for n in ["@0", "@1"] {
        tools::skopeo_copy(
            &format!("docker-archive:{}:{n}", tar.display()),
            work.path(),
            &[],
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn oci_layout_unpacks_with_umoci_and_shares_inodes_with_the_cache() {
    use std::os::unix::fs::MetadataExt;
    let (reg, img) = image::registry_with(Variant::Anonymous, "ns/app", Format::Docker, 3).await;
    let work = tempdir();
    let name = format!("{}/ns/app:1", reg.host());
    // Warm the cache, then write the layout from it.
    pull(work.path(), &["pull", &name, "-o", "first.tar"]).await;
    pull(work.path(), &["pull", &name, "-o", "oci:layout"]).await;
    for l in &img.layers {
        let in_layout = work.path().join("layout/blobs/sha256").join(hex(&l.digest));
        let in_cache = work
            .path()
            .join("docker_images_cache/blobs/sha256")
            .join(hex(&l.digest));
        let (a, b) = (in_layout.metadata().unwrap(), in_cache.metadata().unwrap());
        assert_eq!(
            (a.dev(), a.ino()),
            (b.dev(), b.ino()),
            "hardlinked: {}",
            l.digest
        );
    }
    tools::umoci_unpack(
        &work.path().join("layout"),
        "1",
        &work.path().join("bundle"),
    );
    let hello = work.path().join("bundle/rootfs/layer2/hello.txt");
    assert!(std::fs::read_to_string(&hello)
        .unwrap()
        .starts_with("hello from"));
    tools::skopeo_copy(
        &format!("oci:{}:1", work.path().join("layout").display()),
        work.path(),
        &[],
    );
}
