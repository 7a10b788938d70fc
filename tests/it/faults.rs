//! The fault suite: a proxy in front of the real registry injects errors;
//! every pull ends in a valid image or the documented error, and the cache
//! verifies clean afterwards.

use crate::support::image::{self, Format, TestImage};
use crate::support::proxy::{self, Fault, Proxy};
use crate::support::registry::{Registry, Variant};
use crate::support::{imgpull, imgpull_env, tempdir, text, tools};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn setup(fault: Fault) -> (Registry, TestImage, Proxy, tempfile::TempDir, String) {
    let (reg, img) = image::registry_with(Variant::Anonymous, "ns/app", Format::Oci, 3).await;
    let proxy = proxy::start(reg.base_url(), fault).await;
    let name = format!("{}/ns/app:1", proxy.host());
    (reg, img, proxy, tempdir(), name)
}

fn times(n: usize) -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(n))
}

/// Pull into `cache`, expect success, check the tar and the cache.
async fn pull_ok(work: &std::path::Path, name: &str) {
    let out = imgpull(
        work,
        &["pull", name, "-o", "out.tar", "--cache-dir", "cache", "-v"],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    tools::skopeo_copy_to_oci(&work.join("out.tar"), work);
    verify_clean(work).await;
}

async fn verify_clean(work: &std::path::Path) {
    crate::support::assert_cache_clean(work, "cache").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_retried() {
    for status in [500, 502, 503] {
        let fault = Fault::Status {
            status,
            retry_after: None,
            times: times(3),
        };
        let (_reg, _img, _proxy, work, name) = setup(fault).await;
        pull_ok(work.path(), &name).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_after_is_honoured() {
    let fault = Fault::Status {
        status: 429,
        retry_after: Some("1".into()),
        times: times(2),
    };
    let (_reg, _img, _proxy, work, name) = setup(fault).await;
    let started = Instant::now();
    pull_ok(work.path(), &name).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "waited {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_that_keeps_failing_gives_a_clear_error() {
    let fault = Fault::Status {
        status: 503,
        retry_after: None,
        times: times(1000),
    };
    let (_reg, _img, _proxy, work, name) = setup(fault).await;
    let env = [("IMGPULL_RETRIES", "2")];
    let out = imgpull_env(
        work.path(),
        &["pull", &name, "-o", "out.tar", "--cache-dir", "cache"],
        None,
        &env,
    )
    .await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("503"),
        "{}",
        text(&out)
    );
    assert!(!work.path().join("out.tar").exists());
    verify_clean(work.path()).await;

    // A Retry-After longer than we wait fails at once, saying when.
    let fault = Fault::Status {
        status: 429,
        retry_after: Some("3600".into()),
        times: times(1000),
    };
    let (_reg, _img, _proxy, work, name) = setup(fault).await;
    let started = Instant::now();
    let out = imgpull(
        work.path(),
        &["pull", &name, "-o", "out.tar", "--cache-dir", "cache"],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("retry after 3600"),
        "{}",
        text(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    verify_clean(work.path()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_mid_blob_resumes_with_range() {
    let (reg, img) = image::registry_with(Variant::Anonymous, "ns/app", Format::Oci, 3).await;
    let victim = img.layers[0].digest.clone();
    let fault = Fault::Reset {
        digest: victim.clone(),
        after: 20_000,
        times: times(1),
    };
    let proxy = proxy::start(reg.base_url(), fault).await;
    let work = tempdir();
    pull_ok(work.path(), &format!("{}/ns/app:1", proxy.host())).await;
    let ranges = proxy.ranges.lock().unwrap().clone();
    let asks: Vec<_> = ranges
        .iter()
        .filter(|(p, _, _)| p.ends_with(&victim))
        .collect();
    assert_eq!(asks.len(), 2, "{asks:?}");
    assert_eq!(asks[1].1.as_deref(), Some("bytes=20000-"), "{asks:?}");
    assert_eq!(asks[1].2, 206);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_blob_is_fetched_again_once() {
    let (reg, img) = image::registry_with(Variant::Anonymous, "ns/app", Format::Oci, 3).await;
    let victim = img.layers[2].digest.clone();
    let proxy = proxy::start(
        reg.base_url(),
        Fault::CorruptTimes {
            digest: victim.clone(),
            times: times(1),
        },
    )
    .await;
    let work = tempdir();
    pull_ok(work.path(), &format!("{}/ns/app:1", proxy.host())).await;
    let asks = proxy
        .ranges
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _, _)| p.ends_with(&victim))
        .count();
    assert_eq!(asks, 2, "the bad copy, then a good one");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_that_is_down_and_comes_up_is_waited_for() {
    let (mut reg, _img) = image::registry_with(Variant::Anonymous, "ns/app", Format::Oci, 2).await;
    reg.stop();
    let work = tempdir();
    let name = format!("{}/ns/app:1", reg.host());
    let w = work.path().to_path_buf();
    let n = name.clone();
    let pull = tokio::spawn(async move {
        let env = [("IMGPULL_RETRIES", "8")];
        imgpull_env(
            &w,
            &["pull", &n, "-o", "out.tar", "--cache-dir", "cache"],
            None,
            &env,
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    reg.restart().await;
    let out = pull.await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    tools::skopeo_copy_to_oci(&work.path().join("out.tar"), work.path());
    verify_clean(work.path()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_ignores_range_makes_the_blob_start_over() {
    let (reg, img) = image::registry_with(Variant::Anonymous, "ns/app", Format::Oci, 3).await;
    let victim = img.layers[0].digest.clone();
    let fault = Fault::Reset {
        digest: victim.clone(),
        after: 20_000,
        times: times(1),
    };
    let proxy = proxy::start(reg.base_url(), fault).await;
    *proxy.ignore_range.lock().unwrap() = true;
    let work = tempdir();
    pull_ok(work.path(), &format!("{}/ns/app:1", proxy.host())).await;
    let asks: Vec<_> = proxy
        .ranges
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _, _)| p.ends_with(&victim))
        .cloned()
        .collect();
    assert_eq!(asks.len(), 2, "{asks:?}");
    assert_eq!(asks[1].2, 200, "the whole blob again: {asks:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn mirrors_are_tried_in_order_and_a_broken_one_is_left_mid_blob() {
    let (reg, img) = image::registry_with(Variant::Anonymous, "ns/app", Format::Oci, 3).await;
    let origin = proxy::start(reg.base_url(), Fault::None).await;
    let broken = proxy::start(reg.base_url(), Fault::ResetEveryBlob).await;
    let good = proxy::start(reg.base_url(), Fault::None).await;
    let work = tempdir();
    let toml = format!(
        "[registries.\"{}\"]\nmirrors = [\"http://{}\", \"http://{}\"]\n",
        origin.host(),
        broken.host(),
        good.host()
    );
    std::fs::write(work.path().join("imgpull.toml"), toml).unwrap();
    let name = format!("{}/ns/app:1", origin.host());
    let out = imgpull(
        work.path(),
        &["pull", &name, "-o", "out.tar", "--cache-dir", "cache"],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("Served by: http://{}", broken.host())),
        "{stdout}"
    );
    tools::check_archive(&work.path().join("out.tar"), work.path(), Some(&name));
    verify_clean(work.path()).await;

    assert!(
        origin.ranges.lock().unwrap().is_empty(),
        "the origin was not asked for blobs"
    );
    let resumed: Vec<_> = good
        .ranges
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, range, status)| {
            range.as_deref().is_some_and(|r| r != "bytes=0-") && *status == 206
        })
        .cloned()
        .collect();
    assert!(
        !resumed.is_empty(),
        "the second mirror was asked for the rest: {:?}",
        good.ranges.lock().unwrap()
    );
    let all_blobs = 1 + img.layers.len();
    assert!(good.ranges.lock().unwrap().len() >= all_blobs - 1);

    // mirror_only: a dead mirror and the origin untouched.
    let dead = format!("http://127.0.0.1:{}", crate::support::free_port());
    let toml = format!(
        "[registries.\"{}\"]\nmirrors = [\"{dead}\"]\nmirror_only = true\n",
        origin.host()
    );
    std::fs::write(work.path().join("imgpull.toml"), toml).unwrap();
    let before = origin.seen.lock().unwrap().len();
    let env = [("IMGPULL_RETRIES", "1")];
    let out = imgpull_env(
        work.path(),
        &["pull", &name, "-o", "only.tar", "--no-cache"],
        None,
        &env,
    )
    .await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("mirror_only"),
        "{}",
        text(&out)
    );
    assert_eq!(
        origin.seen.lock().unwrap().len(),
        before,
        "the origin was never contacted"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_body_times_out_and_resumes_with_range() {
    let (reg, img) = image::registry_with(Variant::Anonymous, "ns/app", Format::Oci, 3).await;
    let victim = img.layers[1].digest.clone();
    let fault = Fault::Stall {
        digest: victim.clone(),
        after: 30_000,
        times: times(1),
    };
    let proxy = proxy::start(reg.base_url(), fault).await;
    let work = tempdir();
    let name = format!("{}/ns/app:1", proxy.host());
    let started = Instant::now();
    let out = imgpull_env(
        work.path(),
        &["pull", &name, "-o", "out.tar", "--cache-dir", "cache", "-v"],
        None,
        &[("IMGPULL_STALL_TIMEOUT", "2s")],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the stall was cut short"
    );
    let ranges = proxy.ranges.lock().unwrap().clone();
    let asks: Vec<_> = ranges
        .iter()
        .filter(|(p, _, _)| p.ends_with(&victim))
        .collect();
    assert_eq!(asks.len(), 2, "{asks:?}");
    assert_eq!(asks[1].1.as_deref(), Some("bytes=30000-"), "{asks:?}");
    tools::skopeo_copy_to_oci(&work.path().join("out.tar"), work.path());
    verify_clean(work.path()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_that_expire_after_k_requests_are_renewed() {
    use crate::support::token;
    let reg = Registry::start(Variant::Token).await;
    let img = image::build("expiring", Format::Docker, image::host_arch(), 6);
    image::push(&reg, "open/app", "1", &img).await;
    let tokens = reg.token.as_ref().unwrap();
    let challenge = format!(
        "Bearer realm=\"{}\",service=\"{}\",scope=\"repository:open/app:pull\",error=\"invalid_token\"",
        tokens.realm(),
        token::SERVICE
    );
    let fault = Fault::ExpireTokens {
        after: 3,
        challenge,
        uses: Default::default(),
    };
    let proxy = proxy::start(reg.base_url(), fault).await;
    let work = tempdir();
    let name = format!("{}/open/app:1", proxy.host());
    let before = tokens.count();
    let out = imgpull(
        work.path(),
        &[
            "pull",
            &name,
            "-o",
            "out.tar",
            "--cache-dir",
            "cache",
            "--max-concurrent-downloads",
            "1",
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    // 1 manifest + 1 config + 6 layers (+ pings): at least three tokens.
    assert!(
        tokens.count() - before >= 3,
        "{} tokens",
        tokens.count() - before
    );
    tools::check_archive(&work.path().join("out.tar"), work.path(), Some(&name));
    verify_clean(work.path()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_content_length_is_treated_as_corruption() {
    let (reg, img) = image::registry_with(Variant::Anonymous, "ns/app", Format::Oci, 3).await;
    let victim = img.layers[2].digest.clone();
    let count = times(1);
    let fault = Fault::Truncate {
        digest: victim.clone(),
        times: count.clone(),
    };
    let proxy = proxy::start(reg.base_url(), fault).await;
    let work = tempdir();
    let name = format!("{}/ns/app:1", proxy.host());
    let out = imgpull(
        work.path(),
        &["pull", &name, "-o", "out.tar", "--cache-dir", "cache", "-v"],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("were expected; trying again"),
        "{}",
        text(&out)
    );
    tools::skopeo_copy_to_oci(&work.path().join("out.tar"), work.path());
    verify_clean(work.path()).await;

    // Always short: a clear integrity error naming the blob, nothing kept.
    count.store(100, std::sync::atomic::Ordering::SeqCst);
    let out = imgpull(
        work.path(),
        &["pull", &name, "-o", "again.tar", "--cache-dir", "fresh"],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&victim) && stderr.contains("hint:"),
        "{stderr}"
    );
    assert!(!work.path().join("again.tar").exists());
    let v = imgpull(
        work.path(),
        &["cache", "verify", "--cache-dir", "fresh"],
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
async fn sigkill_at_twenty_moments_leaves_a_sound_cache() {
    let reg = Registry::start(Variant::Anonymous).await;
    let mut layers = vec![image::big_layer("kill", 24 * 1024 * 1024)];
    layers.extend(image::layers("kill-small", 4));
    let img = image::build_from("kill", Format::Oci, image::host_arch(), layers);
    image::push(&reg, "ns/kill", "1", &img).await;
    // About 1.5 s per pull, so the kills land anywhere in it.
    let proxy = proxy::start(reg.base_url(), Fault::SlowBlobs(16 * 1024 * 1024)).await;
    let name = format!("{}/ns/kill:1", proxy.host());
    let work = tempdir();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut finished = 0;
    for round in 0..20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let delay = Duration::from_millis(x % 1800);
        // Two pulls into one cache, racing for the same blobs.
        let mut children = Vec::new();
        for side in ["a", "b"] {
            let out = format!("out-{round}-{side}.tar");
            let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_imgpull"))
                .args(["pull", &name, "-o", &out, "--cache-dir", "cache", "-q"])
                .current_dir(work.path())
                .env_remove("HTTP_PROXY")
                .env_remove("HTTPS_PROXY")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            children.push((out, child));
        }
        tokio::time::sleep(delay).await;
        for (out, mut child) in children {
            let _ = child.start_kill();
            let status = child.wait().await.unwrap();
            let path = work.path().join(&out);
            if status.success() {
                finished += 1;
                tools::skopeo_copy_to_oci(&path, work.path());
            } else {
                assert!(!path.exists(), "round {round}: a killed pull left {out}");
            }
        }
        // Some rounds find the blobs cached: start cold again now and then.
        if round % 5 == 4 {
            let _ = std::fs::remove_dir_all(work.path().join("cache/blobs"));
        }
        verify_clean(work.path()).await;
    }
    eprintln!("{finished} of 40 pulls finished before their kill");
    *proxy.fault.lock().unwrap() = Fault::None;
    pull_ok(work.path(), &name).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_without_retry_after_backs_off_for_seconds_and_says_so() {
    let fault = Fault::Status {
        status: 429,
        retry_after: None,
        times: times(2),
    };
    let (_reg, _img, _proxy, work, name) = setup(fault).await;
    let started = Instant::now();
    let out = imgpull(
        work.path(),
        &["pull", &name, "-o", "out.tar", "--cache-dir", "cache"],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    // 1 s, then 2 s (plus jitter): not five tries in a second.
    assert!(
        started.elapsed() >= Duration::from_millis(2900),
        "waited {:?}",
        started.elapsed()
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rate limited (429)") && err.contains("without Retry-After"),
        "{}",
        text(&out)
    );
}

/// A token server that rate limits (auth.docker.io does) is waited out as
/// the registry is: its `Retry-After` is honoured, then the pull succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limited_token_server_is_waited_out() {
    let (reg, _img) = image::registry_with(Variant::Token, "ns/app", Format::Docker, 1).await;
    let tokens = reg.token.as_ref().unwrap();
    tokens
        .rate_limited
        .store(2, std::sync::atomic::Ordering::SeqCst);
    let work = tempdir();
    let started = Instant::now();
    let name = format!("{}/ns/app:1", reg.host());
    let out = imgpull(work.path(), &["pull", &name, "-o", "out.tar"], None).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        tokens
            .rate_limited
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "two Retry-After: 1 waited out, took {:?}",
        started.elapsed()
    );
    tools::check_archive(&work.path().join("out.tar"), work.path(), Some(&name));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_power_cut_that_loses_unsynced_bytes_costs_a_download_never_a_wrong_blob() {
    // What is not fsynced may be lost in a power cut: the partial
    // downloads (their tails, or blocks read back as zeros), an unfinished
    // output, and the blobs committed since the process's ledger was made
    // durable (they are not fsynced one by one). A power cut is a new
    // boot: the ledger is renamed to another boot id. After such a loss
    // the next pull must still give a sound output and cache, re-hashing
    // the blobs the ledger covers.
    let reg = Registry::start(Variant::Anonymous).await;
    let mut layers = vec![image::big_layer("cut", 12 * 1024 * 1024)];
    layers.extend(image::layers("cut-small", 3));
    let img = image::build_from("cut", Format::Oci, image::host_arch(), layers);
    image::push(&reg, "ns/cut", "1", &img).await;
    let proxy = proxy::start(reg.base_url(), Fault::SlowBlobs(8 * 1024 * 1024)).await;
    let name = format!("{}/ns/cut:1", proxy.host());
    for (round, damage) in ["zeros", "tail", "both"].into_iter().enumerate() {
        let work = tempdir();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_imgpull"))
            .args(["pull", &name, "-o", "out.tar", "--cache-dir", "cache", "-q"])
            .current_dir(work.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(600 + 200 * round as u64)).await;
        let _ = child.start_kill();
        let _ = child.wait().await;
        // The loss: every unsynced file of the cache and the output.
        let ledgers = crate::support::list_files(&work.path().join("cache/unsynced"));
        assert_eq!(ledgers.len(), 1, "{damage}: one ledger per process");
        let (mut hit, mut committed) = (0, 0);
        for f in crate::support::list_files(work.path()) {
            let blob = f.starts_with("cache/blobs");
            let f = work.path().join(f);
            let unsynced = blob
                || f.to_string_lossy().ends_with(".partial")
                || f.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".imgpull-"));
            let len = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
            if !unsynced || len < 2 {
                continue;
            }
            hit += 1;
            committed += usize::from(blob);
            let file = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
            if damage != "tail" {
                use std::os::unix::fs::FileExt;
                file.write_all_at(&vec![0u8; (len / 4) as usize], len / 4)
                    .unwrap();
            }
            if damage != "zeros" {
                file.set_len(len * 3 / 4).unwrap();
            }
        }
        assert!(hit > 0, "{damage}: the kill left unsynced files to damage");
        assert!(
            committed > 0,
            "{damage}: blobs were committed before the kill"
        );
        let ledger = work.path().join("cache/unsynced").join(&ledgers[0]);
        let ledger_name = ledgers[0].to_string_lossy().into_owned();
        let (_, rest) = ledger_name.split_once('.').unwrap();
        let other_boot =
            ledger.with_file_name(format!("00000000-0000-0000-0000-000000000000.{rest}"));
        std::fs::rename(&ledger, &other_boot).unwrap();
        *proxy.fault.lock().unwrap() = Fault::None;
        let out = imgpull(
            work.path(),
            &["pull", &name, "-o", "out.tar", "--cache-dir", "cache"],
            None,
        )
        .await;
        assert!(out.status.success(), "{damage}: {}", text(&out));
        // Same size or not, each damaged blob was re-hashed and removed.
        assert!(
            text(&out).contains(&format!("removed {committed} with wrong bytes")),
            "{damage}: the committed blobs were re-checked after the restart: {}",
            text(&out)
        );
        assert!(
            !other_boot.exists(),
            "{damage}: the old boot's ledger is settled"
        );
        tools::check_archive(&work.path().join("out.tar"), work.path(), Some(&name));
        verify_clean(work.path()).await;
        *proxy.fault.lock().unwrap() = Fault::SlowBlobs(8 * 1024 * 1024);
    }
}
