//! Third-party checks of what we write: skopeo (digests every layer on
//! copy) and podman (verifies diff_ids on load, reports the tag).

use std::path::Path;
use std::process::Command;

/// `skopeo copy docker-archive:TAR oci:DIR`; panics with skopeo's output
/// when it refuses. Returns the layout's index.json.
pub fn skopeo_copy_to_oci(tar: &Path, work: &Path) -> serde_json::Value {
    skopeo_copy(&format!("docker-archive:{}", tar.display()), work, &[])
}

/// `skopeo copy [EXTRA] SOURCE oci:FRESH_DIR` (every blob digested);
/// returns the copy's index.json.
pub fn skopeo_copy(source: &str, work: &Path, extra: &[&str]) -> serde_json::Value {
    let fresh = tempfile::Builder::new()
        .prefix("skopeo-")
        .tempdir_in(work)
        .unwrap();
    let dest = fresh.path().join("oci");
    let out = Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--quiet"])
        .args(extra)
        .arg(source)
        .arg(format!("oci:{}", dest.display()))
        .output()
        .expect("run skopeo (apt-get install skopeo)");
    assert!(
        out.status.success(),
        "skopeo copy {source} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(dest.join("index.json")).unwrap()).unwrap()
}

/// `podman load` into a throwaway root; returns podman's stdout+stderr.
pub fn podman_load(tar: &Path, work: &Path) -> String {
    let fresh = tempfile::Builder::new()
        .prefix("podman-")
        .tempdir_in(work)
        .unwrap();
    let root = fresh.path().join("root");
    let runroot = fresh.path().join("runroot");
    let out = Command::new("podman")
        .arg("--root")
        .arg(&root)
        .arg("--runroot")
        .arg(&runroot)
        .args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "none",
        ])
        .args(["load", "-i"])
        .arg(tar)
        .output()
        .expect("run podman (apt-get install podman)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // vfs layers are plain directories owned by root; remove them now.
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&runroot);
    assert!(out.status.success(), "podman load failed:\n{text}");
    text
}

/// Both checks; asserts podman reports `expected_tag`. Returns podman's output.
pub fn check_archive(tar: &Path, work: &Path, expected_tag: Option<&str>) -> String {
    let index = skopeo_copy_to_oci(tar, work);
    assert_eq!(
        index["manifests"].as_array().map(|m| m.len()),
        Some(1),
        "{index}"
    );
    let loaded = podman_load(tar, work);
    if let Some(tag) = expected_tag {
        assert!(
            loaded.contains(&format!("Loaded image: {tag}"))
                || loaded.contains(&format!("Loaded image(s): {tag}")),
            "podman did not load {tag}:\n{loaded}"
        );
    }
    loaded
}

/// `umoci unpack --image LAYOUT:TAG BUNDLE` (`--rootless` when not root);
/// panics with umoci's output when it refuses.
pub fn umoci_unpack(layout: &Path, tag: &str, bundle: &Path) {
    let mut cmd = Command::new("umoci");
    cmd.arg("unpack");
    if !is_root() {
        cmd.arg("--rootless");
    }
    let out = cmd
        .arg("--image")
        .arg(format!("{}:{tag}", layout.display()))
        .arg(bundle)
        .output()
        .expect("run umoci (apt-get install umoci)");
    assert!(
        out.status.success(),
        "umoci unpack failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}
