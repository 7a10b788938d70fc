//! What a person sees: bars in a real terminal (tmux), plain lines without
//! escapes when piped, `--json` events, and a hint with every error.

use crate::support::image::{self, Format};
use crate::support::proxy::{self, Fault};
use crate::support::registry::Variant;
use crate::support::{imgpull, tempdir, text};
use std::process::Command;
use std::time::Duration;

/// Run `imgpull ARGS` in a real terminal (tmux, 120x50) in `dir` and
/// return the screen once it has exited (its exit code shows as `EXIT=N`).
async fn in_terminal(dir: &std::path::Path, args: &str) -> String {
    if Command::new("tmux").arg("-V").output().is_err() {
        panic!("tmux is needed (apt-get install tmux; scripts/test installs it)");
    }
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let session = format!(
        "imgpull-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let cmd = format!(
        "cd {} && env -u NO_COLOR TERM=xterm {} {args}; echo EXIT=$?; sleep 60",
        dir.display(),
        env!("CARGO_BIN_EXE_imgpull"),
    );
    let started = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            "120",
            "-y",
            "50",
            &cmd,
        ])
        .status()
        .unwrap();
    assert!(started.success());
    let capture = || {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &session])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut pane = String::new();
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        pane = capture();
        if pane.contains("EXIT=") {
            break;
        }
    }
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", &session])
        .status();
    pane
}

/// Pull a six-layer image through a proxy with `fault` (chosen knowing the
/// image) to `out.tar` in a terminal: the image, the screen at the end and
/// the work directory.
async fn pull_in_terminal(
    fault: impl FnOnce(&image::TestImage) -> Fault,
) -> (image::TestImage, String, tempfile::TempDir) {
    let (reg, img) = image::registry_with(Variant::Anonymous, "ns/six", Format::Oci, 6).await;
    let proxy = proxy::start(reg.base_url(), fault(&img)).await;
    let work = tempdir();
    let name = format!("{}/ns/six:1", proxy.host());
    let pane = in_terminal(
        work.path(),
        &format!("pull {name} -o out.tar --cache-dir cache"),
    )
    .await;
    (img, pane, work)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_terminal_shows_one_line_per_layer_and_a_total() {
    // Slow enough that the bars are drawn while several layers are in flight.
    let (img, pane, _work) = pull_in_terminal(|_| Fault::SlowBlobs(256 * 1024)).await;
    assert!(pane.contains("EXIT=0"), "{pane}");
    let lines: Vec<&str> = pane.lines().collect();
    for l in &img.layers {
        let short = &l.digest[7..19];
        let with: Vec<&&str> = lines.iter().filter(|x| x.contains(short)).collect();
        assert_eq!(with.len(), 1, "one line for layer {short}:\n{pane}");
        assert!(with[0].contains("done"), "{pane}");
    }
    let totals = lines.iter().filter(|x| x.starts_with("total")).count();
    assert_eq!(totals, 1, "one total line:\n{pane}");
    // No line carries two layers (lines overwriting each other).
    for x in &lines {
        let n = img
            .layers
            .iter()
            .filter(|l| x.contains(&l.digest[7..19]))
            .count();
        assert!(n <= 1, "garbled line {x:?}:\n{pane}");
    }
    assert!(pane.contains("Next: docker load -i out.tar"), "{pane}");
}

/// A failed pull leaves the bars where they stopped: the total says it
/// failed, the broken layer says it stopped, nothing claims to be done
/// that is not, and the error follows.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_pull_freezes_the_bars() {
    let (img, pane, work) =
        pull_in_terminal(|img| Fault::CorruptBlob(img.layers[2].digest.clone())).await;
    let bad = img.layers[2].digest.clone();
    assert!(pane.contains("EXIT=7"), "{pane}");
    let lines: Vec<&str> = pane.lines().collect();
    let total: Vec<&&str> = lines.iter().filter(|x| x.starts_with("total")).collect();
    assert_eq!(total.len(), 1, "{pane}");
    assert!(total[0].contains("failed"), "{pane}");
    let short = &bad[7..19];
    let line = lines
        .iter()
        .find(|x| x.contains(short))
        .expect("a line for the bad layer");
    assert!(line.contains("stopped") && !line.contains("done"), "{pane}");
    assert!(pane.contains("error"), "{pane}");
    assert!(!work.path().join("out.tar").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn piped_output_has_no_escapes_and_json_is_one_object_per_line() {
    let (reg, img) = image::registry_with(Variant::Anonymous, "ns/six", Format::Docker, 6).await;
    let work = tempdir();
    let name = format!("{}/ns/six:1", reg.host());
    let out = imgpull(work.path(), &["pull", &name, "-o", "out.tar", "-v"], None).await;
    assert!(out.status.success(), "{}", text(&out));
    for stream in [&out.stdout, &out.stderr] {
        assert!(
            !stream.contains(&0x1b),
            "an escape byte in:\n{}",
            text(&out)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    for want in [
        "Digest: ",
        "Layers: 6 (0 cached)",
        "Time: ",
        "Saved to: out.tar",
        "Next: docker load -i out.tar",
    ] {
        assert!(stdout.contains(want), "{want}: {stdout}");
    }

    let out = imgpull(
        work.path(),
        &["pull", &name, "-o", "again.tar", "--json", "--no-cache"],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    let last = events.last().expect("events");
    assert_eq!(last["event"], "summary", "{last}");
    assert_eq!(last["digest"], img.manifest_digest);
    assert_eq!(last["layers"], 6);
    let done = events.iter().filter(|e| e["event"] == "done").count();
    assert_eq!(done, 7, "six layers and the config");
    assert!(events.iter().any(|e| e["event"] == "start"));

    // An error is an event too, with its hint and exit code.
    let missing = format!("{}/ns/nothing:1", reg.host());
    let out = imgpull(work.path(), &["pull", &missing, "--json"], None).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "error");
    assert_eq!(last["exit_code"], 4);
    assert!(last["hint"].is_string(), "{last}");
}

/// The README's exit code table: code -> meaning.
fn readme_exit_codes() -> std::collections::BTreeMap<i32, String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = readme
        .split("## Exit codes")
        .nth(1)
        .expect("an exit code section");
    table
        .lines()
        .filter_map(|l| {
            let mut cells = l.trim().trim_matches('|').split('|');
            let code = cells.next()?.trim().parse().ok()?;
            Some((code, cells.next()?.trim().to_string()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_error_kind_has_a_hint_and_the_documented_exit_code() {
    use crate::support::imgpull_env;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    let codes = readme_exit_codes();
    let work = tempdir();
    let mut checked = Vec::new();
    let mut check =
        |what: &str, out: std::process::Output, code: i32, meaning: &str, hint_says: &str| {
            assert_eq!(out.status.code(), Some(code), "{what}: {}", text(&out));
            assert!(
                codes.get(&code).is_some_and(|m| m.contains(meaning)),
                "{what}: README says {:?} for {code}",
                codes.get(&code)
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            let hint = stderr
                .lines()
                .find(|l| l.starts_with("hint: "))
                .unwrap_or_else(|| panic!("{what}: no hint line:\n{stderr}"));
            assert!(hint.contains(hint_says), "{what}: {hint}");
            checked.push(what.to_string());
        };

    // 401: no credentials for a registry that needs them.
    let (basic, _) = image::registry_with(Variant::Basic, "team/app", Format::Docker, 1).await;
    let name = format!("{}/team/app:1", basic.host());
    let out = imgpull(work.path(), &["pull", &name, "-o", "x.tar"], None).await;
    check("401", out, 3, "authentication", "--password-stdin");

    let (reg, _) = image::registry_with(Variant::Anonymous, "ns/app", Format::Docker, 1).await;
    // 403 to an anonymous pull: the hint says to log in (not that the
    // credentials "lack pull access": none were sent).
    let p403 = proxy::start(
        reg.base_url(),
        Fault::Status {
            status: 403,
            retry_after: None,
            times: Arc::new(AtomicUsize::new(100)),
        },
    )
    .await;
    let out = imgpull(
        work.path(),
        &["pull", &format!("{}/ns/app:1", p403.host()), "-o", "x.tar"],
        None,
    )
    .await;
    check("403", out, 3, "authentication", "refuses anonymous pulls");

    // 404: the name as normalized.
    let out = imgpull(
        work.path(),
        &[
            "pull",
            &format!("{}/ns/nothing:1", reg.host()),
            "-o",
            "x.tar",
        ],
        None,
    )
    .await;
    check("404", out, 4, "not found", "normalized");

    // 429 with a reset far away.
    let p429 = proxy::start(
        reg.base_url(),
        Fault::Status {
            status: 429,
            retry_after: Some("3600".into()),
            times: Arc::new(AtomicUsize::new(100)),
        },
    )
    .await;
    let out = imgpull(
        work.path(),
        &["pull", &format!("{}/ns/app:1", p429.host()), "-o", "x.tar"],
        None,
    )
    .await;
    check("429", out, 6, "rate limited", "retry");

    // TLS with an unknown CA.
    let (tls, _) = image::registry_with(Variant::Tls, "secure/app", Format::Docker, 1).await;
    let out = imgpull(
        work.path(),
        &[
            "pull",
            &format!("{}/secure/app:1", tls.host()),
            "-o",
            "x.tar",
        ],
        None,
    )
    .await;
    check("TLS", out, 5, "TLS", "--ca-file");

    // No image for the platform asked.
    let out = imgpull(
        work.path(),
        &[
            "pull",
            &format!("{}/ns/app:1", reg.host()),
            "--platform",
            "linux/s390x",
            "-o",
            "x.tar",
        ],
        None,
    )
    .await;
    check("platform", out, 8, "platform", "--platform");

    // A proxy that is not there.
    let dead = format!("http://127.0.0.1:{}", crate::support::free_port());
    let out = imgpull_env(
        work.path(),
        &[
            "pull",
            &format!("{}/secure/app:1", tls.host()),
            "-o",
            "x.tar",
            "--ca-file",
            certs_ca(),
        ],
        None,
        &[("HTTPS_PROXY", &dead), ("IMGPULL_RETRIES", "1")],
    )
    .await;
    check("proxy", out, 5, "network", "HTTPS_PROXY");

    // A corrupt layer, every time.
    let (creg, cimg) = image::registry_with(Variant::Anonymous, "ns/bad", Format::Docker, 1).await;
    let pbad = proxy::start(
        creg.base_url(),
        Fault::CorruptBlob(cimg.layers[0].digest.clone()),
    )
    .await;
    let out = imgpull(
        work.path(),
        &["pull", &format!("{}/ns/bad:1", pbad.host()), "-o", "x.tar"],
        None,
    )
    .await;
    check("integrity", out, 7, "integrity", "corrupt");

    assert_eq!(checked.len(), 8);
    assert!(!work.path().join("x.tar").exists());
}

fn certs_ca() -> &'static str {
    Box::leak(
        crate::support::certs::get()
            .ca_pem
            .to_str()
            .unwrap()
            .to_string()
            .into_boxed_str(),
    )
}
