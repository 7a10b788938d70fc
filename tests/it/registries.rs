//! Every registry of shared/REAL-REGISTRIES.md, reproduced by a front
//! (support/front.rs) over the real distribution registry, in every
//! scenario: by tag, by digest, multi-platform with attestations, a
//! private repository with credentials (and without), a wrong password, a
//! missing repository, a reset on the CDN, a big blob in Range pieces, and
//! the odd manifests real registries serve. Every request's Authorization
//! is logged: none may reach a host it was not issued for.

use crate::support::front::{self, Front, Kind, Overrides, Profile, PASSWORD, REFRESH};
use crate::support::image::{self, sha256, Format, TestImage};
use crate::support::registry::{Registry, Variant};
use crate::support::{certs, measured, tempdir, tools, Measured};
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

/// What the registry behind every front holds.
struct World {
    reg: Registry,
    app: TestImage,
    multi_arm: TestImage,
    overrides: Overrides,
}

/// The manifest of `img` re-serialised with `edit` applied.
fn edited(img: &TestImage, edit: impl Fn(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
    edit(&mut v);
    serde_json::to_vec(&v).unwrap()
}

async fn world() -> World {
    let reg = Registry::start(Variant::Anonymous).await;
    let arch = image::host_arch();
    let app = image::build("front-app", Format::Docker, arch, 2);
    image::push(&reg, "ns/app", "1", &app).await;
    let private = image::build("front-private", Format::Oci, arch, 1);
    image::push(&reg, "private/app", "1", &private).await;
    // A big incompressible layer, for Range pieces.
    let big = image::build_from(
        "front-big",
        Format::Oci,
        arch,
        vec![image::big_layer("front-big", 6 << 20)],
    );
    image::push(&reg, "ns/app", "big", &big).await;
    // Two platforms and a BuildKit attestation.
    let other = if arch == "arm64" { "amd64" } else { "arm64" };
    let multi_host = image::build("front-multi-host", Format::Oci, arch, 1);
    let multi_arm = image::build("front-multi-other", Format::Oci, other, 1);
    let mut entries = Vec::new();
    for img in [&multi_host, &multi_arm] {
        image::push(&reg, "ns/app", &img.manifest_digest.clone(), img).await;
        entries.push(serde_json::json!({
            "mediaType": Format::Oci.manifest_type(), "size": img.manifest.len(), "digest": img.manifest_digest,
            "platform": {"os": "linux", "architecture": img.arch},
        }));
    }
    entries.push(serde_json::json!({
        "mediaType": Format::Oci.manifest_type(), "size": 500, "digest": sha256(b"attestation"),
        "platform": {"os": "unknown", "architecture": "unknown"},
        "annotations": {"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": multi_host.manifest_digest},
    }));
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": Format::Oci.index_type(), "manifests": entries,
    }))
    .unwrap();
    // Served by the front (the registry behind would want the
    // attestation's manifest pushed too).
    // The odd manifests, over app's blobs.
    let docker = Format::Docker.manifest_type().to_string();
    let mut overrides = Overrides::new();
    let no_type = edited(&app, |v| {
        v.as_object_mut().unwrap().remove("mediaType");
    });
    overrides.insert("nomediatype".into(), (docker.clone(), no_type));
    let pretty = String::from_utf8(
        serde_json::to_vec_pretty(
            &serde_json::from_slice::<serde_json::Value>(&app.manifest).unwrap(),
        )
        .unwrap(),
    )
    .unwrap()
    .replace('/', "\\/");
    overrides.insert("pretty".into(), (docker.clone(), pretty.into_bytes()));
    overrides.insert(
        "json".into(),
        ("application/json".into(), app.manifest.clone()),
    );
    let octet = edited(&app, |v| {
        v["config"]["mediaType"] = "application/octet-stream".into()
    });
    overrides.insert("octetconfig".into(), (docker.clone(), octet));
    let artifact = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": Format::Oci.manifest_type(),
        "artifactType": "application/vnd.example.sbom+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/vnd.example.sbom+json", "digest": app.layers[0].digest, "size": app.layers[0].blob.len()}],
        "subject": {"mediaType": docker, "digest": app.manifest_digest, "size": app.manifest.len()},
    }))
    .unwrap();
    overrides.insert(
        "artifact".into(),
        (Format::Oci.manifest_type().into(), artifact),
    );
    overrides.insert(
        "attest".into(),
        (Format::Oci.index_type().into(), index.clone()),
    );
    overrides.insert("multi".into(), (Format::Oci.index_type().into(), index));
    // Typed octet-stream, but its "config" is a layer's gzip bytes: no image.
    let not_image = edited(&app, |v| {
        v["config"]["mediaType"] = "application/octet-stream".into();
        v["config"]["digest"] = app.layers[0].digest.clone().into();
        v["config"]["size"] = app.layers[0].blob.len().into();
    });
    overrides.insert("octetnotimage".into(), (docker.clone(), not_image));
    World {
        reg,
        app,
        multi_arm,
        overrides,
    }
}

/// imgpull against `front` in `work`, with the test CA and `config`.
async fn pull(
    work: &Path,
    front: &Front,
    what: &str,
    config: Option<&str>,
    extra: &[&str],
) -> Measured {
    let ca = certs::get().ca_pem.display().to_string();
    let name = format!("{}/{what}", front.host());
    let out = format!("{}.tar", what.replace(['/', ':', '@'], "_"));
    let cache = format!("cache-{}", what.replace(['/', ':', '@'], "_"));
    let mut args = vec![
        "pull",
        &name,
        "-o",
        &out,
        "--ca-file",
        &ca,
        "--cache-dir",
        &cache,
    ];
    if let Some(c) = config {
        args.extend(["--config", c]);
    }
    args.extend_from_slice(extra);
    measured(work, &args, &[], LIMIT, None).await
}

fn credentials(work: &Path, file: &str, host: &str, user: &str, password: &str) {
    std::fs::write(
        work.join(file),
        format!(
            "[registries.\"{host}\"]\ncredentials = [{{ provider = \"static\", username = \"{user}\", password = \"{password}\" }}]\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(work.join(file), std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn ok(m: &Measured, what: &str, kind: Kind) {
    assert!(m.out.status.success(), "{kind:?} {what}: {}", m.text());
}

fn fails(m: &Measured, what: &str, kind: Kind, code: i32, says: &str) {
    assert_eq!(
        m.out.status.code(),
        Some(code),
        "{kind:?} {what}: {}",
        m.text()
    );
    assert!(
        m.all().to_lowercase().contains(&says.to_lowercase()),
        "{kind:?} {what}: wanted {says:?}: {}",
        m.text()
    );
}

async fn every_scenario(kind: Kind) {
    let w = world().await;
    let front = front::start(kind, &w.reg.base_url(), w.overrides.clone()).await;
    let p: Profile = front.profile.clone();
    let work = tempdir();
    let dir = work.path();
    let host = front.host();
    credentials(dir, "good.toml", &host, p.user, PASSWORD);
    credentials(dir, "bad.toml", &host, p.user, "not-the-password");
    // Registries without anonymous access log in for everything.
    let anon = if p.login_always() {
        Some("good.toml")
    } else {
        None
    };

    let m = pull(dir, &front, "ns/app:1", anon, &["-v"]).await;
    ok(&m, "by tag", kind);
    if kind == Kind::AcrAlibaba {
        // Layers from plain-HTTP object storage: followed, and said so.
        assert!(m.all().contains("from HTTPS to plain HTTP"), "{}", m.text());
        assert!(front.cdn_requests().len() >= 3, "blobs came from the CDN");
    }
    tools::check_archive(
        &dir.join("ns_app_1.tar"),
        dir,
        Some(&format!("{host}/ns/app:1")),
    );
    let by_digest = format!("ns/app@{}", w.app.manifest_digest);
    ok(
        &pull(dir, &front, &by_digest, anon, &[]).await,
        "by digest",
        kind,
    );
    let m = pull(
        dir,
        &front,
        "ns/app:multi",
        anon,
        &["--platform", &format!("linux/{}", w.multi_arm.arch)],
    )
    .await;
    ok(&m, "multi-platform", kind);
    assert!(
        m.all().contains(&w.multi_arm.manifest_digest),
        "{kind:?}: the other platform's image: {}",
        m.text()
    );

    // A private repository: with credentials; without; with wrong ones.
    let m = pull(dir, &front, "private/app:1", Some("good.toml"), &[]).await;
    match kind {
        // Credentials stay with the front door; its target only gets
        // anonymous tokens.
        Kind::Redirector => fails(&m, "private via a front door", kind, 3, "unauthorized"),
        _ => ok(&m, "private with credentials", kind),
    }
    if !p.login_always() {
        let m = pull(dir, &front, "private/app:1", None, &[]).await;
        assert_eq!(
            m.out.status.code(),
            Some(3),
            "{kind:?} private anonymously: {}",
            m.text()
        );
    }
    if kind != Kind::Redirector {
        let m = pull(dir, &front, "private/app:1", Some("bad.toml"), &[]).await;
        fails(&m, "wrong password", kind, 3, p.wrong_says);
    }
    let m = pull(dir, &front, "ns/nothing:1", anon, &[]).await;
    assert_eq!(
        m.out.status.code(),
        Some(p.missing_exit),
        "{kind:?} missing repository: {}",
        m.text()
    );

    // A reset halfway through a layer, where blobs are served.
    let layer = w.app.layers[1].digest.clone();
    front.faults_for_blobs().lock().unwrap().reset = Some((layer.clone(), 1));
    let m = pull(dir, &front, "ns/app:1", anon, &["--no-cache", "-v"]).await;
    ok(&m, "resume after a reset", kind);
    assert!(
        m.all().contains("resuming"),
        "{kind:?}: resumed: {}",
        m.text()
    );

    // A big blob over a slow link: split into Range pieces.
    front.faults_for_blobs().lock().unwrap().throttle = Some(1_500_000);
    let m = pull(
        dir,
        &front,
        "ns/app:big",
        anon,
        &["--chunk-size", "1MiB", "-v"],
    )
    .await;
    front.faults_for_blobs().lock().unwrap().throttle = None;
    ok(&m, "big blob in pieces", kind);
    assert!(m.all().contains("pieces"), "{kind:?}: split: {}", m.text());

    // The odd manifests pull; an artifact is refused.
    for tag in ["nomediatype", "pretty", "json", "octetconfig", "attest"] {
        ok(
            &pull(dir, &front, &format!("ns/app:{tag}"), anon, &[]).await,
            tag,
            kind,
        );
    }
    let m = pull(dir, &front, "ns/app:artifact", anon, &[]).await;
    fails(&m, "an artifact", kind, 5, "not a container image");
    let m = pull(dir, &front, "ns/app:octetnotimage", anon, &[]).await;
    fails(
        &m,
        "an octet-stream config that is no image config",
        kind,
        5,
        "not an image config",
    );

    // Azure: the identity token `az acr login` leaves, exchanged by POST
    // at the realm (over the test CA, as every request).
    if kind == Kind::AcrAzure {
        let docker = dir.join(".home/.docker");
        std::fs::create_dir_all(&docker).unwrap();
        std::fs::write(
            docker.join("config.json"),
            format!(
                r#"{{"auths":{{"{host}":{{"auth":"{}","identitytoken":"{REFRESH}"}}}}}}"#,
                b64("00000000-0000-0000-0000-000000000000:")
            ),
        )
        .unwrap();
        let m = pull(dir, &front, "private/app:1", None, &[]).await;
        ok(&m, "identity token", kind);
    }

    audit(&front, kind);
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Every request of every server: no Authorization where it does not belong.
fn audit(front: &Front, kind: Kind) {
    let cdn = front.cdn.as_ref().map(|c| c.addr.to_string());
    let auth = front.auth.as_ref().map(|a| a.addr.to_string());
    for s in front.all_requests() {
        let Some(a) = &s.auth else { continue };
        if Some(&s.server) == cdn.as_ref() {
            panic!("{kind:?}: Authorization reached the CDN: {s:?}");
        }
        if Some(&s.server) == auth.as_ref() {
            assert!(
                a.starts_with("Basic "),
                "{kind:?}: the token host got {s:?}"
            );
        }
        // A bearer token reaches only the registry that issued it.
        if let Some(t) = a.strip_prefix("Bearer ") {
            assert!(
                front.issued(t),
                "{kind:?}: a token this registry did not issue: {s:?}"
            );
        }
    }
    if let Some(t) = &front.target {
        // The front door's target gets anonymous tokens only, never the
        // credentials meant for the front door.
        for s in t.all_requests() {
            let basic = s.auth.as_deref().is_some_and(|a| a.starts_with("Basic "));
            assert!(
                !basic,
                "{kind:?}: credentials reached the front door's target: {s:?}"
            );
            if let Some(tok) = s.auth.as_deref().and_then(|a| a.strip_prefix("Bearer ")) {
                assert!(
                    t.issued(tok),
                    "{kind:?}: a token the target did not issue: {s:?}"
                );
            }
        }
        // The target served it under another name (asked by its own scope).
        let renamed = t
            .all_requests()
            .iter()
            .any(|s| s.target.contains("/v2/mirror/"));
        assert!(renamed, "{kind:?}: the front door did not rename");
    }
}

macro_rules! modes {
    ($($name:ident => $kind:expr),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $name() {
                every_scenario($kind).await;
            }
        )*
    };
}

modes! {
    dockerhub => Kind::DockerHub,
    ghcr => Kind::Ghcr,
    quay => Kind::Quay,
    ecr => Kind::Ecr,
    gcr => Kind::Gcr,
    artifact_registry => Kind::Ar,
    acr_azure => Kind::AcrAzure,
    acr_alibaba_personal => Kind::AcrAlibaba,
    acr_alibaba_enterprise => Kind::AcrAlibabaEe,
    harbor => Kind::Harbor,
    harbor_s3 => Kind::HarborS3,
    gitlab => Kind::Gitlab,
    gitlab_virtual_registry => Kind::GitlabVr,
    nexus => Kind::Nexus,
    artifactory => Kind::Artifactory,
    redirector => Kind::Redirector,
    distribution => Kind::Distribution,
}

/// A script named `name` in `dir` that logs each run to `name.log` and
/// exits 1 after a second (gcloud installed without a login).
fn slow_failing_tool(dir: &Path, name: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.join(format!("{name}.log"));
    let script = bin.join(name);
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\nsleep 1\nexit 1\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    log
}

#[tokio::test(flavor = "multi_thread")]
async fn cloud_helpers_are_asked_only_once_the_registry_refuses() {
    let w = world().await;
    let front = front::start(Kind::Gcr, &w.reg.base_url(), w.overrides.clone()).await;
    let work = tempdir();
    let dir = work.path();
    let log = slow_failing_tool(dir, "gcloud");
    std::fs::write(
        dir.join("imgpull.toml"),
        format!("[registries.\"{}\"]\nkind = \"gcr\"\n", front.host()),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        dir.join("bin").display(),
        std::env::var("PATH").unwrap()
    );
    let ca = certs::get().ca_pem.display().to_string();
    let run = |what: &'static str| {
        let (name, path, ca) = (format!("{}/{what}", front.host()), path.clone(), ca.clone());
        async move {
            let out = format!("{}.tar", what.replace(['/', ':'], "_"));
            measured(
                dir,
                &["pull", &name, "-o", &out, "--ca-file", &ca],
                &[("PATH", path.as_str())],
                LIMIT,
                None,
            )
            .await
        }
    };
    let m = run("ns/app:1").await;
    assert!(m.out.status.success(), "{}", m.text());
    assert!(!log.exists(), "gcloud was run for a public image");
    let m = run("private/app:1").await;
    assert_eq!(m.out.status.code(), Some(3), "{}", m.text());
    let runs = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(runs.lines().count(), 1, "asked once, once refused: {runs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_docker_hub_pull_by_tag_makes_one_head() {
    let w = world().await;
    let front = front::start(Kind::DockerHub, &w.reg.base_url(), w.overrides.clone()).await;
    let work = tempdir();
    let dir = work.path();
    std::fs::write(
        dir.join("imgpull.toml"),
        format!("[registries.\"{}\"]\nkind = \"dockerhub\"\n", front.host()),
    )
    .unwrap();
    let m = pull(dir, &front, "ns/app:1", None, &["-v"]).await;
    assert!(m.out.status.success(), "{}", m.text());
    assert!(
        m.all().contains("pull quota 99 of 100"),
        "the quota was read: {}",
        m.text()
    );
    let heads = front
        .all_requests()
        .iter()
        .filter(|s| s.method == "HEAD" && s.target.contains("/manifests/"))
        .count();
    assert_eq!(heads, 1, "{:#?}", front.all_requests());
}

#[tokio::test(flavor = "multi_thread")]
async fn manifests_are_never_downgraded_and_a_refusal_is_not_retried() {
    use crate::support::hostile::{self, Content};
    use crate::support::http::{Request, Response};
    let img = image::build("downgrade", Format::Oci, image::host_arch(), 1);
    let plain = hostile::start_on(
        "127.0.0.2",
        Content::image(&img, "1"),
        Default::default(),
        |_| None,
    )
    .await;
    let to = format!("http://{}", plain.host());
    let reg = hostile::start_tls(Content::image(&img, "1"), move |r: &Request| {
        r.path()
            .contains("/manifests/")
            .then(|| Response::new(307, "").header("Location", &format!("{to}{}", r.target)))
    })
    .await;
    let work = tempdir();
    let ca = certs::get().ca_pem.display().to_string();
    let name = format!("{}/ns/app:1", reg.host());
    let m = measured(
        work.path(),
        &["pull", &name, "-o", "out.tar", "--ca-file", &ca],
        &[],
        LIMIT,
        None,
    )
    .await;
    assert_eq!(m.out.status.code(), Some(5), "{}", m.text());
    assert!(m.all().contains("from HTTPS to plain HTTP"), "{}", m.text());
    assert_eq!(
        plain.log.lock().unwrap().len(),
        0,
        "the plain-HTTP host was never asked"
    );
    assert!(
        reg.count("/manifests/") <= 2,
        "one HEAD, one GET, no retries: {}",
        reg.count("/manifests/")
    );
    assert!(m.elapsed < Duration::from_secs(5), "{}", m.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn zstd_layers_in_a_docker_archive_are_warned_about() {
    use crate::support::hostile::{self, Content};
    let raw = image::layer_tar("zstd-warn", 0);
    let img = image::build_from(
        "zstd-warn",
        Format::Oci,
        image::host_arch(),
        vec![image::pack(raw, image::Packing::Zstd)],
    );
    let reg = hostile::start(Content::image(&img, "1"), |_| None).await;
    let work = tempdir();
    let name = format!("{}/ns/app:1", reg.host());
    let m = measured(
        work.path(),
        &["pull", &name, "-o", "out.tar"],
        &[],
        LIMIT,
        None,
    )
    .await;
    assert!(m.out.status.success(), "{}", m.text());
    assert!(
        m.all().contains("zstd-compressed") && m.all().contains("--layer-format uncompressed"),
        "{}",
        m.text()
    );
    let m = measured(
        work.path(),
        &[
            "pull",
            &name,
            "-o",
            "plain.tar",
            "--layer-format",
            "uncompressed",
        ],
        &[],
        LIMIT,
        None,
    )
    .await;
    assert!(
        m.out.status.success() && !m.all().contains("zstd-compressed"),
        "{}",
        m.text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cloud_helpers_are_asked_when_the_token_server_refuses() {
    // Artifact Registry refuses an anonymous token for a private
    // repository (403): that too is the registry asking for credentials.
    use std::os::unix::fs::PermissionsExt;
    let w = world().await;
    let front = front::start(Kind::Ar, &w.reg.base_url(), w.overrides.clone()).await;
    let work = tempdir();
    let dir = work.path();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.join("gcloud.log");
    std::fs::write(
        bin.join("gcloud"),
        format!(
            "#!/bin/sh\necho run >> {}\necho {PASSWORD}\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(bin.join("gcloud"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.join("imgpull.toml"),
        format!("[registries.\"{}\"]\nkind = \"gcr\"\n", front.host()),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let ca = certs::get().ca_pem.display().to_string();
    let name = format!("{}/private/app:1", front.host());
    let m = measured(
        dir,
        &["pull", &name, "-o", "p.tar", "--ca-file", &ca, "-v"],
        &[("PATH", path.as_str())],
        LIMIT,
        None,
    )
    .await;
    assert!(m.out.status.success(), "{}", m.text());
    assert!(
        m.all()
            .contains("anonymous access refused; using credentials from gcr"),
        "{}",
        m.text()
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);
    audit(&front, Kind::Ar);
}
