//! A full disk and read-only directories: a clear error naming the path,
//! nothing committed half-way, no output that looks complete. Small tmpfs
//! mounts stand in for the disks (needs root, as CI runs; skipped with a
//! message otherwise).

use crate::support::image::{self, Format};
use crate::support::registry::{Registry, Variant};
use crate::support::{imgpull, tempdir, text};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted at `dir` (removed on drop); `None` without the right.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, size: &str, read_only: bool) -> Option<Mount> {
        std::fs::create_dir_all(dir).unwrap();
        let mut opts = format!("size={size}");
        if read_only {
            opts.push_str(",ro");
        }
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &opts, "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs (needs root)");
            return None;
        }
        Some(Mount(dir.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

async fn big_image(reg: &Registry) -> String {
    let mut layers = vec![image::big_layer("disk", 3 * 1024 * 1024)];
    layers.extend(image::layers("disk-small", 2));
    let img = image::build_from("disk", Format::Oci, image::host_arch(), layers);
    image::push(reg, "ns/disk", "1", &img).await;
    format!("{}/ns/disk:1", reg.host())
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_cache_disk_fails_naming_the_path_and_keeps_the_cache_sound() {
    let reg = Registry::start(Variant::Anonymous).await;
    let name = big_image(&reg).await;
    let work = tempdir();
    let cache = work.path().join("cache");
    let Some(_m) = Mount::tmpfs(&cache, "1m", false) else {
        return;
    };
    let out = imgpull(
        work.path(),
        &["pull", &name, "-o", "out.tar", "--cache-dir", "cache"],
        None,
    )
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("No space left on device"), "{}", text(&out));
    assert!(
        stderr.contains("cache/ingest/") && stderr.contains("hint: the disk is full"),
        "names the path: {stderr}"
    );
    assert!(!work.path().join("out.tar").exists());
    let v = imgpull(
        work.path(),
        &["cache", "verify", "--cache-dir", "cache"],
        None,
    )
    .await;
    assert!(
        String::from_utf8_lossy(&v.stdout).contains(", 0 bad"),
        "{}",
        text(&v)
    );
    // Nothing under blobs/ is short: every committed blob verified above.
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_output_disk_leaves_no_output() {
    let reg = Registry::start(Variant::Anonymous).await;
    let name = big_image(&reg).await;
    let work = tempdir();
    let outdir = work.path().join("out");
    let Some(_m) = Mount::tmpfs(&outdir, "1m", false) else {
        return;
    };
    for output in [
        "out/image.tar",
        "oci-archive:out/image.tar",
        "oci:out/layout",
    ] {
        let out = imgpull(
            work.path(),
            &["pull", &name, "-o", output, "--cache-dir", "cache"],
            None,
        )
        .await;
        assert!(!out.status.success(), "{output}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("No space left on device"),
            "{output}: {}",
            text(&out)
        );
        assert!(
            stderr.contains(&outdir.display().to_string()),
            "{output}: names the path: {stderr}"
        );
        assert_eq!(
            files_in(&outdir),
            Vec::<String>::new(),
            "{output}: nothing left"
        );
    }
    let v = imgpull(
        work.path(),
        &["cache", "verify", "--cache-dir", "cache"],
        None,
    )
    .await;
    assert!(
        String::from_utf8_lossy(&v.stdout).contains(", 0 bad"),
        "{}",
        text(&v)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_directories_fail_naming_the_path() {
    let reg = Registry::start(Variant::Anonymous).await;
    let name = big_image(&reg).await;
    let work = tempdir();
    let ro = work.path().join("ro");
    let Some(_m) = Mount::tmpfs(&ro, "1m", true) else {
        return;
    };
    let out = imgpull(
        work.path(),
        &["pull", &name, "-o", "out.tar", "--cache-dir", "ro/cache"],
        None,
    )
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Read-only file system"), "{}", text(&out));
    assert!(
        stderr.contains("ro/cache") && stderr.contains("hint: imgpull cannot write there"),
        "names the path: {stderr}"
    );
    assert!(!work.path().join("out.tar").exists());

    let out = imgpull(
        work.path(),
        &["pull", &name, "-o", "ro/out.tar", "--cache-dir", "cache"],
        None,
    )
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Read-only file system"), "{}", text(&out));
    assert!(stderr.contains("ro/"), "names the path: {stderr}");
    let v = imgpull(
        work.path(),
        &["cache", "verify", "--cache-dir", "cache"],
        None,
    )
    .await;
    assert!(
        String::from_utf8_lossy(&v.stdout).contains(", 0 bad"),
        "{}",
        text(&v)
    );
}
