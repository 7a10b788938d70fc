//! `docker-config`: credentials where `docker login` and `podman login`
//! left them.
//!
//! Files, first that has the registry wins: `$REGISTRY_AUTH_FILE`,
//! `$DOCKER_CONFIG/config.json` (else `~/.docker/config.json`),
//! `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.config/containers/auth.json`
//! (or an explicit `path`). In each: `credHelpers[host]`, then
//! `credsStore`, through the docker credential-helper protocol
//! (`docker-credential-NAME get`, server URL on stdin, JSON on stdout), then
//! `auths[host]` (`auth` = base64 `user:password`, or `username` +
//! `password`, or `identitytoken`, an OAuth2 refresh token). Docker Hub is
//! stored as `https://index.docker.io/v1/`; `docker.io`, `index.docker.io`
//! and `registry-1.docker.io` all find it.

use crate::catalog::{Build, Kind, Plugin, PluginConfig, PluginError};
use crate::credentials::{Credential, CredentialError, CredentialProvider};
use crate::util::secret::Secret;
use async_trait::async_trait;
use base64::Engine as _;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const NAME: &str = "docker-config";
const HUB_KEY: &str = "https://index.docker.io/v1/";
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

pub struct DockerConfig {
    /// Explicit file, instead of the standard list.
    path: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct File {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// What a credential helper prints.
#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// A `{ provider = "docker-config", … }` entry.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    path: Option<PathBuf>,
}

fn build(cfg: &PluginConfig) -> Result<Box<dyn CredentialProvider>, PluginError> {
    let path = crate::catalog::options::<Options>(Kind::Credentials, NAME, cfg)?.path;
    Ok(Box::new(DockerConfig { path }))
}

inventory::submit! {
    Plugin {
        name: NAME,
        summary: "docker/podman login files: auths, credHelpers, credsStore, identity tokens",
        build: Build::Credentials(build),
    }
}

/// The standard files, in the order they are asked.
pub fn default_files() -> Vec<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let home = env("HOME");
    let mut files = Vec::new();
    files.extend(env("REGISTRY_AUTH_FILE"));
    match env("DOCKER_CONFIG") {
        Some(d) => files.push(d.join("config.json")),
        None => files.extend(home.as_ref().map(|h| h.join(".docker/config.json"))),
    }
    files.extend(env("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")));
    files.extend(home.map(|h| h.join(".config/containers/auth.json")));
    files
}

/// The keys a registry may be stored under.
fn keys_for(registry: &str) -> Vec<String> {
    if matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        vec![
            HUB_KEY.into(),
            "docker.io".into(),
            "index.docker.io".into(),
            "registry-1.docker.io".into(),
        ]
    } else {
        vec![registry.to_string()]
    }
}

/// `https://host:5000/v2/` -> `host:5000`, as docker normalizes keys.
fn normalize_key(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

fn lookup<'a, T>(map: &'a BTreeMap<String, T>, registry: &str) -> Option<(&'a String, &'a T)> {
    let keys = keys_for(registry);
    map.iter().find(|(k, _)| k.as_str() == keys[0]).or_else(|| {
        map.iter().find(|(k, _)| {
            keys.iter()
                .any(|want| normalize_key(k) == normalize_key(want))
        })
    })
}

impl DockerConfig {
    fn files(&self) -> Vec<PathBuf> {
        match &self.path {
            Some(p) => vec![p.clone()],
            None => default_files(),
        }
    }

    /// The credential the file at `path` holds for `registry`, if any.
    async fn read_file(
        &self,
        path: &Path,
        registry: &str,
    ) -> Result<Option<Credential>, CredentialError> {
        let Some(file) = self.load(path)? else {
            return Ok(None);
        };
        let server = if keys_for(registry)[0] == HUB_KEY {
            HUB_KEY.to_string()
        } else {
            registry.to_string()
        };
        if let Some((_, helper)) = lookup(&file.cred_helpers, registry) {
            return run_helper(helper, &server)
                .await
                .map_err(|m| self.invalid(m));
        }
        if let Some(store) = file.creds_store.as_deref().filter(|s| !s.is_empty()) {
            if let Some(c) = run_helper(store, &server)
                .await
                .map_err(|m| self.invalid(m))?
            {
                return Ok(Some(c));
            }
        }
        let Some((key, entry)) = lookup(&file.auths, registry) else {
            return Ok(None);
        };
        self.entry_credential(path, key, entry)
    }

    /// An error in what this provider read.
    fn invalid(&self, message: String) -> CredentialError {
        CredentialError::Invalid {
            provider: self.source(),
            message,
        }
    }

    /// The file at `path`, parsed (`None`: there is none).
    fn load(&self, path: &Path) -> Result<Option<File>, CredentialError> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CredentialError::Io {
                    provider: self.source(),
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        serde_json::from_slice(&text)
            .map(Some)
            // serde's message may quote a value (a password): only say where.
            .map_err(|e| {
                self.invalid(format!(
                    "{}: not a valid config file (line {}, column {})",
                    path.display(),
                    e.line(),
                    e.column()
                ))
            })
    }

    /// The credential an `auths` entry holds: its identity token, else its
    /// `auth`, else its `username` and `password`.
    fn entry_credential(
        &self,
        path: &Path,
        key: &str,
        entry: &AuthEntry,
    ) -> Result<Option<Credential>, CredentialError> {
        if let Some(t) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credential::IdentityToken(Secret::new(t))));
        }
        if let Some(a) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            return self.decode_auth(path, key, a).map(Some);
        }
        match (&entry.username, &entry.password) {
            (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credential::Basic {
                username: u.clone(),
                password: Secret::new(p.clone()),
            })),
            _ => Ok(None),
        }
    }

    /// An `auth` value (`auths[key]` in the file at `path`): base64 of
    /// `user:password`.
    fn decode_auth(
        &self,
        path: &Path,
        key: &str,
        auth: &str,
    ) -> Result<Credential, CredentialError> {
        let not = |what: &str| {
            self.invalid(format!(
                "{}: auths.{key:?}.auth is not {what}",
                path.display()
            ))
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| not("base64"))?;
        let text = String::from_utf8(raw).map_err(|_| not("UTF-8"))?;
        let (u, p) = text.split_once(':').ok_or_else(|| not("user:password"))?;
        Ok(Credential::Basic {
            username: u.to_string(),
            password: Secret::new(p),
        })
    }
}

/// `docker-credential-NAME get` with the server URL on stdin.
async fn run_helper(name: &str, server: &str) -> Result<Option<Credential>, String> {
    use tokio::io::AsyncWriteExt;
    if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        return Err(format!("credential helper name {name:?} is not valid"));
    }
    let program = format!("docker-credential-{name}");
    let mut child = tokio::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes()).await;
    }
    let out = tokio::time::timeout(HELPER_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| {
            format!(
                "{program} did not answer within {}s",
                HELPER_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        if msg.to_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        // Its output may hold a secret (a helper's error can quote what it
        // read): none of it is shown. The person can run it by hand.
        return Err(format!(
            "{program} failed ({}); its output is not shown (it may hold secrets): \
             run `echo {server} | {program} get` to see it",
            out.status
        ));
    }
    let answer: HelperAnswer = serde_json::from_slice(&out.stdout)
        .map_err(|_| format!("{program} printed something that is not its JSON answer"))?;
    if answer.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if answer.username == "<token>" {
        Credential::IdentityToken(Secret::new(answer.secret))
    } else {
        Credential::Basic {
            username: answer.username,
            password: Secret::new(answer.secret),
        }
    }))
}

#[async_trait]
impl CredentialProvider for DockerConfig {
    fn source(&self) -> String {
        match &self.path {
            Some(p) => format!("{NAME} ({})", p.display()),
            None => format!("{NAME} (docker/podman login files)"),
        }
    }

    async fn credentials(&self, registry: &str) -> Result<Option<Credential>, CredentialError> {
        for f in self.files() {
            if let Some(c) = self.read_file(&f, registry).await? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(json: &str) -> (tempfile::TempDir, DockerConfig) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, json).unwrap();
        (dir, DockerConfig { path: Some(path) })
    }

    fn basic(c: Option<Credential>) -> Option<(String, String)> {
        match c? {
            Credential::Basic { username, password } => {
                Some((username, password.expose().to_string()))
            }
            _ => None,
        }
    }

    #[tokio::test]
    async fn auths_entries() {
        let b64 = base64::engine::general_purpose::STANDARD.encode("hub:hubpass");
        let json = format!(
            r#"{{"auths": {{
                "https://index.docker.io/v1/": {{"auth": "{b64}"}},
                "https://reg.example:5000/v2/": {{"username": "u", "password": "p"}},
                "ghcr.io": {{"identitytoken": "refresh"}},
                "empty.example": {{}}
            }}}}"#
        );
        let (_d, p) = provider(&json);
        for hub in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
            assert_eq!(
                basic(p.credentials(hub).await.unwrap()),
                Some(("hub".into(), "hubpass".into())),
                "{hub}"
            );
        }
        assert_eq!(
            basic(p.credentials("reg.example:5000").await.unwrap()),
            Some(("u".into(), "p".into()))
        );
        assert!(matches!(
            p.credentials("ghcr.io").await.unwrap(),
            Some(Credential::IdentityToken(_))
        ));
        assert!(p.credentials("empty.example").await.unwrap().is_none());
        assert!(p.credentials("other.example").await.unwrap().is_none());
        assert!(
            p.credentials("reg.example").await.unwrap().is_none(),
            "the port is part of the key"
        );
    }

    #[tokio::test]
    async fn bad_files_are_errors_that_show_no_secret() {
        let (_d, p) = provider(r#"{"auths": {"h": {"auth": "not base64 hunter2!"}}}"#);
        let e = p.credentials("h").await.unwrap_err().to_string();
        assert!(e.contains("not base64") && !e.contains("hunter2"), "{e}");
        let (_d, p) = provider("{");
        assert!(p.credentials("h").await.is_err());
        let missing = DockerConfig {
            path: Some("/nonexistent/config.json".into()),
        };
        assert!(missing.credentials("h").await.unwrap().is_none());
    }
}
