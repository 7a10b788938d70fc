//! The docker-archive written while its layers download: every byte that
//! arrives also goes to its place in the output (and, with `--no-cache`,
//! only there). Whatever the network does, the tar is the same as one
//! copied from a warm cache, loaders accept it, and a failed pull leaves
//! no file behind.

use crate::support::image::{self, Format};
use crate::support::proxy::{self, Fault};
use crate::support::registry::Variant;
use crate::support::{imgpull, tempdir, text, tools};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

fn top_level(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn times(n: usize) -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(n))
}

#[tokio::test(flavor = "multi_thread")]
async fn written_while_downloading_equals_copied_from_the_cache() {
    let (reg, _img) = image::registry_with(Variant::Anonymous, "ns/app", Format::Docker, 4).await;
    let name = format!("{}/ns/app:1", reg.host());
    let work = tempdir();
    let w = work.path();
    // The 4 layers arrive into the tar; the config (fetched first, to
    // check the platform) and everything of a warm pull are copied.
    for (out, extra, said) in [
        (
            "cold.tar",
            vec!["--cache-dir", "cache"],
            "4 blobs written as they downloaded, 1 copied",
        ),
        (
            "warm.tar",
            vec!["--cache-dir", "cache"],
            "0 blobs written as they downloaded, 5 copied",
        ),
        (
            "nocache.tar",
            vec!["--no-cache"],
            "4 blobs written as they downloaded, 1 copied",
        ),
        (
            "synced.tar",
            vec!["--no-cache", "--sync"],
            "4 blobs written as they downloaded, 1 copied",
        ),
    ] {
        let mut args = vec!["pull", &name, "-o", out, "-v"];
        args.extend(extra);
        let o = imgpull(w, &args, None).await;
        assert!(o.status.success(), "{}", text(&o));
        assert!(text(&o).contains(said), "{out}: {}", text(&o));
    }
    let cold = std::fs::read(w.join("cold.tar")).unwrap();
    assert_eq!(cold, std::fs::read(w.join("warm.tar")).unwrap());
    assert_eq!(cold, std::fs::read(w.join("nocache.tar")).unwrap());
    assert_eq!(cold, std::fs::read(w.join("synced.tar")).unwrap());
    tools::check_archive(&w.join("cold.tar"), w, Some(&name));
    crate::support::assert_cache_clean(w, "cache").await;
}

/// With `--no-cache` the bytes go only to the output: a corrupt copy, a
/// cut connection and a short answer are each put right there.
#[tokio::test(flavor = "multi_thread")]
async fn faults_are_put_right_in_the_output_without_a_cache() {
    let (reg, img) = image::registry_with(Variant::Anonymous, "ns/app", Format::Oci, 3).await;
    let digest = img.layers[1].digest.clone();
    let faults = [
        (
            Fault::CorruptTimes {
                digest: digest.clone(),
                times: times(1),
            },
            "trying again",
        ),
        (
            Fault::Reset {
                digest: digest.clone(),
                after: 1000,
                times: times(2),
            },
            "resuming at byte 2000",
        ),
        (
            Fault::Truncate {
                digest: digest.clone(),
                times: times(1),
            },
            "starting over",
        ),
        (
            Fault::TruncateUnsized {
                digest: digest.clone(),
                times: times(1),
            },
            "the answer ended at byte",
        ),
    ];
    for (fault, seen) in faults {
        let label = format!("{fault:?}");
        let proxy = proxy::start(reg.base_url(), fault).await;
        let name = format!("{}/ns/app:1", proxy.host());
        let work = tempdir();
        let o = imgpull(
            work.path(),
            &["pull", &name, "-o", "out.tar", "--no-cache", "-v"],
            None,
        )
        .await;
        assert!(o.status.success(), "{label}: {}", text(&o));
        assert!(text(&o).contains(seen), "{label}: {}", text(&o));
        tools::check_archive(&work.path().join("out.tar"), work.path(), Some(&name));
        // No temporary file or throwaway cache is left beside the output.
        let names = top_level(work.path());
        assert!(names.contains(&"out.tar".to_string()), "{names:?}");
        assert!(
            names
                .iter()
                .all(|n| !n.contains("partial") && !n.contains("nocache")),
            "{label}: {names:?}"
        );
    }
}

/// A blob that never arrives right: the pull fails naming it, and no file
/// that could pass for the output (nor a temporary one) is left.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_pull_leaves_no_output() {
    let (reg, img) = image::registry_with(Variant::Anonymous, "ns/app", Format::Oci, 3).await;
    let digest = img.layers[2].digest.clone();
    let proxy = proxy::start(reg.base_url(), Fault::CorruptBlob(digest.clone())).await;
    let name = format!("{}/ns/app:1", proxy.host());
    for extra in [["--no-cache", ""], ["--cache-dir", "cache"]] {
        let work = tempdir();
        let mut args = vec!["pull", &name, "-o", "out.tar"];
        args.extend(extra.iter().filter(|a| !a.is_empty()));
        let o = imgpull(work.path(), &args, None).await;
        assert_eq!(o.status.code(), Some(7), "{}", text(&o));
        assert!(text(&o).contains(&digest), "{}", text(&o));
        let names = top_level(work.path());
        assert!(
            names
                .iter()
                .all(|n| !n.contains("out.tar") && !n.contains("nocache")),
            "{names:?}"
        );
    }
}
