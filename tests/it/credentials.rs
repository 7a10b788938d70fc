//! Credentials from where they already live: the config file's `static`
//! entries, docker's config.json (auths, credHelpers, identity tokens),
//! podman's REGISTRY_AUTH_FILE — against the Basic and Bearer registries.

use crate::support::image::{self, Format};
use crate::support::registry::{Registry, Variant, BASIC_PASSWORD, BASIC_USER};
use crate::support::{imgpull_env, tempdir, text, token, tools};
use base64::Engine as _;
use std::path::Path;

fn user_and_password(variant: Variant) -> (&'static str, &'static str) {
    match variant {
        Variant::Basic => (BASIC_USER, BASIC_PASSWORD),
        _ => (token::USER, token::PASSWORD),
    }
}

fn auths_json(host: &str, user: &str, password: &str) -> String {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#)
}

/// A `docker-credential-NAME` script that answers with fixed credentials
/// and records the server URL it was asked for.
fn helper_script(bin: &Path, name: &str, user: &str, secret: &str) {
    std::fs::create_dir_all(bin).unwrap();
    let path = bin.join(format!("docker-credential-{name}"));
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\necho \"$server\" > \"$(dirname \"$0\")/asked\"\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{secret}\"}}' \"$server\"\n"
    );
    std::fs::write(&path, script).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

async fn pull_ok(work: &Path, name: &str, out: &str, env: &[(&str, &str)]) {
    let result = imgpull_env(work, &["pull", name, "-o", out], None, env).await;
    assert!(result.status.success(), "{out}: {}", text(&result));
    tools::skopeo_copy_to_oci(&work.join(out), work);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_credential_source_works_with_basic_and_bearer() {
    for variant in [Variant::Basic, Variant::Token] {
        let reg = Registry::start(variant).await;
        let img = image::build(
            &format!("creds-{variant:?}"),
            Format::Oci,
            image::host_arch(),
            2,
        );
        image::push(&reg, "private/app", "1", &img).await;
        let name = format!("{}/private/app:1", reg.host());
        let host = reg.host();
        let (user, password) = user_and_password(variant);
        let work = tempdir();
        let w = work.path();

        // Anonymous fails: the sources below are what make it work.
        let out = imgpull_env(w, &["pull", &name, "-o", "anon.tar"], None, &[]).await;
        assert_eq!(out.status.code(), Some(3), "{variant:?}: {}", text(&out));

        // 1. TOML static + password_env.
        let toml = format!(
            "[registries.\"{host}\"]\ncredentials = [{{ provider = \"static\", username = \"{user}\", password_env = \"REG_PASSWORD\" }}]\n"
        );
        std::fs::write(w.join("static.toml"), toml).unwrap();
        let r = imgpull_env(
            w,
            &["pull", &name, "-o", "static.tar", "--config", "static.toml"],
            None,
            &[("REG_PASSWORD", password)],
        )
        .await;
        assert!(r.status.success(), "{variant:?} static: {}", text(&r));
        tools::check_archive(&w.join("static.tar"), w, Some(&name));

        // 2. $DOCKER_CONFIG/config.json auths.
        let docker = w.join("docker");
        std::fs::create_dir_all(&docker).unwrap();
        std::fs::write(
            docker.join("config.json"),
            auths_json(&host, user, password),
        )
        .unwrap();
        let docker_env = docker.to_str().unwrap().to_string();
        pull_ok(w, &name, "auths.tar", &[("DOCKER_CONFIG", &docker_env)]).await;

        // 3. credHelpers naming a helper on PATH.
        let bin = w.join("bin");
        helper_script(&bin, "imgpulltest", user, password);
        let helpers = w.join("helpers");
        std::fs::create_dir_all(&helpers).unwrap();
        std::fs::write(
            helpers.join("config.json"),
            format!(r#"{{"credHelpers": {{"{host}": "imgpulltest"}}}}"#),
        )
        .unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let helpers_env = helpers.to_str().unwrap().to_string();
        pull_ok(
            w,
            &name,
            "helper.tar",
            &[("DOCKER_CONFIG", &helpers_env), ("PATH", &path)],
        )
        .await;
        assert_eq!(
            std::fs::read_to_string(bin.join("asked")).unwrap().trim(),
            host,
            "server URL on stdin"
        );

        // 4. REGISTRY_AUTH_FILE (podman/skopeo's auth.json).
        let auth_file = w.join("auth.json");
        std::fs::write(&auth_file, auths_json(&host, user, password)).unwrap();
        let auth_env = auth_file.to_str().unwrap().to_string();
        pull_ok(
            w,
            &name,
            "authfile.tar",
            &[("REGISTRY_AUTH_FILE", &auth_env)],
        )
        .await;

        // 5. Bearer only: an identity token, exchanged as an OAuth2 refresh token.
        if variant == Variant::Token {
            let idt = w.join("idt");
            std::fs::create_dir_all(&idt).unwrap();
            let json = format!(
                r#"{{"auths": {{"{host}": {{"identitytoken": "{}"}}}}}}"#,
                token::REFRESH_TOKEN
            );
            std::fs::write(idt.join("config.json"), json).unwrap();
            let idt_env = idt.to_str().unwrap().to_string();
            pull_ok(w, &name, "identity.tar", &[("DOCKER_CONFIG", &idt_env)]).await;
            let scopes = reg.token.as_ref().unwrap().scopes.lock().unwrap().clone();
            assert!(!scopes.is_empty());
            assert!(
                scopes.iter().all(|s| s == "repository:private/app:pull"),
                "minimal scopes: {scopes:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn command_line_credentials_win_over_a_broken_config() {
    let (reg, _) = image::registry_with(Variant::Basic, "team/app", Format::Docker, 1).await;
    let work = tempdir();
    let host = reg.host();
    let toml = format!(
        "[registries.\"{host}\"]\ncredentials = [{{ provider = \"static\", username = \"x\", password_env = \"UNSET_VARIABLE\" }}]\n"
    );
    std::fs::write(work.path().join("imgpull.toml"), toml).unwrap();
    let name = format!("{host}/team/app:1");
    let out = imgpull_env(work.path(), &["pull", &name, "-o", "o.tar"], None, &[]).await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "the broken entry is reported: {}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("UNSET_VARIABLE"),
        "{}",
        text(&out)
    );
    let stdin = format!("{BASIC_PASSWORD}\n");
    let args = [
        "pull",
        name.as_str(),
        "-o",
        "o.tar",
        "-u",
        BASIC_USER,
        "--password-stdin",
    ];
    let out = imgpull_env(work.path(), &args, Some(&stdin), &[]).await;
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn ecr_provider_gets_a_token_from_the_moto_emulator() {
    use crate::support::cloud;
    let moto = cloud::start_moto().await;
    let reg = Registry::start_as(Variant::Basic, "AWS", cloud::MOTO_ECR_PASSWORD).await;
    let img = image::build("ecr", Format::Docker, image::host_arch(), 2);
    image::push(&reg, "team/app", "1", &img).await;
    let work = tempdir();
    let host = reg.host();
    let toml = format!(
        "[registries.\"{host}\"]\ncredentials = [{{ provider = \"ecr\", region = \"us-east-1\", endpoint = \"{}\" }}]\n",
        moto.endpoint()
    );
    std::fs::write(work.path().join("imgpull.toml"), toml).unwrap();
    let name = format!("{host}/team/app:1");
    let env = [
        ("AWS_ACCESS_KEY_ID", "AKIAIMGPULLTEST"),
        ("AWS_SECRET_ACCESS_KEY", "imgpull-test-secret-key"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let out = imgpull_env(
        work.path(),
        &["pull", &name, "-o", "ecr.tar", "-vv"],
        None,
        &env,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(
        !all.contains(cloud::MOTO_ECR_PASSWORD) && !all.contains("imgpull-test-secret-key"),
        "{all}"
    );
    tools::check_archive(&work.path().join("ecr.tar"), work.path(), Some(&name));

    // Without AWS credentials the provider passes, and the 401 says what to do.
    let env = [("AWS_EC2_METADATA_DISABLED", "true")];
    let out = imgpull_env(work.path(), &["pull", &name, "-o", "no.tar"], None, &env).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn gcr_provider_exchanges_a_service_account_key() {
    use crate::support::cloud;
    let endpoint = cloud::start_google_token_endpoint().await;
    let reg =
        Registry::start_as(Variant::Basic, "oauth2accesstoken", cloud::GCR_ACCESS_TOKEN).await;
    let img = image::build("gcr", Format::Oci, image::host_arch(), 1);
    image::push(&reg, "project/app", "1", &img).await;
    let work = tempdir();
    let key = work.path().join("sa.json");
    std::fs::write(
        &key,
        cloud::service_account_json(&format!("http://{}/token", endpoint.addr)),
    )
    .unwrap();
    let host = reg.host();
    let toml = format!("[registries.\"{host}\"]\ncredentials = [{{ provider = \"gcr\" }}]\n");
    std::fs::write(work.path().join("imgpull.toml"), toml).unwrap();
    let name = format!("{host}/project/app:1");
    let key_env = key.to_str().unwrap().to_string();
    let out = imgpull_env(
        work.path(),
        &["pull", &name, "-o", "gcr.tar"],
        None,
        &[("GOOGLE_APPLICATION_CREDENTIALS", &key_env)],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains(cloud::GCR_ACCESS_TOKEN));
    tools::check_archive(&work.path().join("gcr.tar"), work.path(), Some(&name));
}
