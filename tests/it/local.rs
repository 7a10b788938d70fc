//! Local state a pull must not trust or leak: a cached blob changed on
//! disk (directly, or through an OCI layout that hardlinks it), the umask,
//! and device nodes in a rootfs.

use crate::support::hostile::{self, Content};
use crate::support::image::{self, Format};
use crate::support::registry::{Registry, Variant};
use crate::support::{assert_cache_clean, measured, tempdir, tools};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

/// Change one byte of `path` in place (same size, same inode), and put
/// its mtime back as it was: only the change time, which nobody can set,
/// still tells.
fn tamper(path: &Path) {
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let mut b = [0u8; 1];
    let r = std::fs::File::open(path).unwrap();
    r.read_exact_at(&mut b, 100).unwrap();
    f.write_all_at(&[b[0] ^ 0xff], 100).unwrap();
    f.set_modified(mtime).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cached_blob_changed_on_disk_is_never_delivered() {
    let (reg, img) = image::registry_with(Variant::Anonymous, "ns/app", Format::Oci, 2).await;
    let name = format!("{}/ns/app:1", reg.host());
    let layer = img.layers[1].digest.clone();
    let work = tempdir();
    let w = work.path();
    let pull = |out: &'static str| {
        let name = name.clone();
        async move {
            measured(
                w,
                &["pull", &name, "-o", out, "--cache-dir", "cache"],
                &[],
                LIMIT,
                None,
            )
            .await
        }
    };
    let m = pull("first.tar").await;
    assert!(m.out.status.success(), "{}", m.text());
    let cached = w.join("cache/blobs/sha256").join(&layer[7..]);
    let gets = |reg: &Registry| {
        reg.blob_gets()
            .iter()
            .filter(|l| l.contains(&layer))
            .count()
    };
    assert_eq!(gets(&reg), 1);

    // docker-archive: the changed blob is found, dropped and fetched again.
    tamper(&cached);
    let m = pull("second.tar").await;
    assert!(m.out.status.success(), "{}", m.text());
    assert!(m.all().contains("did not match its digest"), "{}", m.text());
    assert_eq!(gets(&reg), 2, "fetched again");
    tools::check_archive(&w.join("second.tar"), w, Some(&name));
    assert_cache_clean(w, "cache").await;

    // An OCI layout hardlinks the cache: editing its blob edits the cache's.
    let m = pull("oci:one").await;
    assert!(m.out.status.success(), "{}", m.text());
    let in_layout = w.join("one/blobs/sha256").join(&layer[7..]);
    assert_eq!(
        std::fs::metadata(&in_layout).unwrap().ino(),
        std::fs::metadata(&cached).unwrap().ino(),
        "hardlinked"
    );
    tamper(&in_layout);
    for out in ["oci:two", "oci:one"] {
        let m = pull(out).await;
        assert!(m.out.status.success(), "{out}: {}", m.text());
        let dir = out.trim_start_matches("oci:");
        tools::skopeo_copy(&format!("oci:{}:1", w.join(dir).display()), w, &[]);
    }
    assert_eq!(gets(&reg), 3, "fetched once more, not per output");
    assert_cache_clean(w, "cache").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn outputs_and_cache_files_honour_the_umask() {
    let (reg, _img) = image::registry_with(Variant::Anonymous, "ns/app", Format::Docker, 1).await;
    let name = format!("{}/ns/app:1", reg.host());
    let work = tempdir();
    let w = work.path();
    let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().mode() & 0o777;
    for out in [
        "out.tar",
        "oci:layout",
        "oci-archive:out.oci.tar",
        "rootfs:root",
    ] {
        let m = measured(
            w,
            &["pull", &name, "-o", out, "--cache-dir", "cache"],
            &[],
            LIMIT,
            Some(0o077),
        )
        .await;
        assert!(m.out.status.success(), "{out}: {}", m.text());
    }
    for f in ["out.tar", "out.oci.tar", "layout/index.json"] {
        assert_eq!(mode(&w.join(f)), 0o600, "{f}");
    }
    for d in ["layout", "root", "cache", "cache/blobs/sha256"] {
        assert_eq!(mode(&w.join(d)), 0o700, "{d}");
    }
    for blob in std::fs::read_dir(w.join("cache/blobs/sha256"))
        .unwrap()
        .flatten()
    {
        assert_eq!(mode(&blob.path()), 0o600, "{}", blob.path().display());
    }
    // The usual umask: readable by others, as docker save's output is.
    let m = measured(
        w,
        &["pull", &name, "-o", "open.tar", "--cache-dir", "c2"],
        &[],
        LIMIT,
        Some(0o022),
    )
    .await;
    assert!(m.out.status.success(), "{}", m.text());
    assert_eq!(mode(&w.join("open.tar")), 0o644);
}

#[tokio::test(flavor = "multi_thread")]
async fn rootfs_creates_device_nodes_only_when_asked() {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, kind) in [
        ("dev/null", tar::EntryType::Char),
        ("dev/sda", tar::EntryType::Block),
        ("run/fifo", tar::EntryType::Fifo),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(0);
        h.set_mode(0o666);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        tar.append_data(&mut h, name, std::io::empty()).unwrap();
    }
    let layer = image::pack(tar.into_inner().unwrap(), image::Packing::Gzip);
    let img = image::build_from("devices", Format::Oci, image::host_arch(), vec![layer]);
    let reg = hostile::start(Content::image(&img, "1"), |_| None).await;
    let name = format!("{}/ns/app:1", reg.host());
    let work = tempdir();
    let w = work.path();
    let m = measured(
        w,
        &["pull", &name, "--format", "rootfs", "-o", "plain"],
        &[],
        LIMIT,
        None,
    )
    .await;
    assert!(m.out.status.success(), "{}", m.text());
    assert!(
        m.all().contains("2 device node(s) not created"),
        "{}",
        m.text()
    );
    assert!(!w.join("plain/dev/null").exists() && !w.join("plain/dev/sda").exists());
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(w.join("plain/run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let m = measured(
        w,
        &[
            "pull",
            &name,
            "--format",
            "rootfs",
            "-o",
            "devs",
            "--devices",
        ],
        &[],
        LIMIT,
        None,
    )
    .await;
    assert!(m.out.status.success(), "{}", m.text());
    if tools::is_root() {
        let t = std::fs::symlink_metadata(w.join("devs/dev/null"))
            .unwrap()
            .file_type();
        assert!(t.is_char_device(), "created with --devices");
        assert!(!m.all().contains("not created"), "{}", m.text());
    } else {
        assert!(m.all().contains("needs root"), "{}", m.text());
    }
    let m = measured(
        w,
        &["pull", &name, "-o", "x.tar", "--devices"],
        &[],
        LIMIT,
        None,
    )
    .await;
    assert_eq!(
        m.out.status.code(),
        Some(2),
        "--devices is for rootfs: {}",
        m.text()
    );
}
