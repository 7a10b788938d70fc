//! `static`: a username with a password (inline, from an env var or a
//! file), or a bearer token; fed by the config file or by the command line.
//!
//! ```toml
//! credentials = [{ provider = "static", username = "dev", password_env = "HARBOR_PASSWORD" }]
//! ```

use crate::catalog::{Build, Kind, Plugin, PluginConfig, PluginError};
use crate::credentials::{Credential, CredentialError, CredentialProvider};
use crate::util::secret::Secret;
use async_trait::async_trait;
use std::path::PathBuf;

/// Where the secret half comes from; read when asked, not when configured,
/// so an unused registry's missing env var is no error.
#[derive(Debug, Clone)]
pub enum SecretSource {
    Inline(Secret),
    Env(String),
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct StaticProvider {
    /// For messages: `--username/--password` or `config file`.
    origin: String,
    username: Option<String>,
    secret: SecretSource,
    /// A bearer token rather than a password.
    is_token: bool,
}

impl StaticProvider {
    pub fn password(origin: &str, username: &str, secret: SecretSource) -> StaticProvider {
        StaticProvider {
            origin: origin.to_string(),
            username: Some(username.to_string()),
            secret,
            is_token: false,
        }
    }

    fn read_secret(&self) -> Result<Secret, CredentialError> {
        let provider = self.source();
        match &self.secret {
            SecretSource::Inline(s) => Ok(s.clone()),
            SecretSource::Env(var) => {
                std::env::var(var)
                    .map(Secret::new)
                    .map_err(|_| CredentialError::MissingEnv {
                        provider,
                        var: var.clone(),
                    })
            }
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map(|s| Secret::new(s.trim_end_matches(['\r', '\n'])))
                .map_err(|source| CredentialError::Io {
                    provider,
                    path: path.clone(),
                    source,
                }),
        }
    }
}

/// A `{ provider = "static", … }` entry: a username and exactly one
/// source of the secret.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    username: Option<String>,
    password: Option<String>,
    password_env: Option<String>,
    password_file: Option<String>,
    token: Option<String>,
    token_env: Option<String>,
}

fn build(cfg: &PluginConfig) -> Result<Box<dyn CredentialProvider>, PluginError> {
    let invalid = |m: String| PluginError::invalid(Kind::Credentials, "static", m);
    let o: Options = crate::catalog::options(Kind::Credentials, "static", cfg)?;
    let mut sources = Vec::new();
    if let Some(p) = o.password {
        sources.push((false, SecretSource::Inline(Secret::new(p))));
    }
    if let Some(v) = o.password_env {
        sources.push((false, SecretSource::Env(v)));
    }
    if let Some(f) = o.password_file {
        sources.push((false, SecretSource::File(f.into())));
    }
    if let Some(t) = o.token {
        sources.push((true, SecretSource::Inline(Secret::new(t))));
    }
    if let Some(v) = o.token_env {
        sources.push((true, SecretSource::Env(v)));
    }
    if sources.len() != 1 {
        return Err(invalid(
            "give exactly one of password, password_env, password_file, token, token_env".into(),
        ));
    }
    let (is_token, secret) = sources.pop().expect("one source");
    let username = o.username;
    if !is_token && username.is_none() {
        return Err(invalid("a password needs a `username`".into()));
    }
    Ok(Box::new(StaticProvider {
        origin: "config file".to_string(),
        username,
        secret,
        is_token,
    }))
}

inventory::submit! {
    Plugin {
        name: "static",
        summary: "username + password/password_env/password_file, or token/token_env",
        build: Build::Credentials(build),
    }
}

#[async_trait]
impl CredentialProvider for StaticProvider {
    fn source(&self) -> String {
        format!("static ({})", self.origin)
    }

    async fn credentials(&self, _registry: &str) -> Result<Option<Credential>, CredentialError> {
        let secret = self.read_secret()?;
        Ok(Some(match (&self.username, self.is_token) {
            (Some(u), false) => Credential::Basic {
                username: u.clone(),
                password: secret,
            },
            _ => Credential::Bearer(secret),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(s: &str) -> PluginConfig {
        toml::from_str(s).unwrap()
    }

    #[tokio::test]
    async fn reads_env_when_asked() {
        let p = build(&table(
            "username='u'\npassword_env='IMGPULL_TEST_NO_SUCH_VAR'",
        ))
        .unwrap();
        let e = p.credentials("r").await.unwrap_err();
        assert!(e.to_string().contains("IMGPULL_TEST_NO_SUCH_VAR"));
        assert!(build(&table("username='u'")).is_err());
        assert!(build(&table("username='u'\npassword='a'\ntoken='b'")).is_err());
        assert!(build(&table("password='a'")).is_err());
        assert!(build(&table("username='u'\npasword='a'")).is_err());
    }

    #[tokio::test]
    async fn debug_never_shows_the_password() {
        let p = build(&table("username='u'\npassword='hunter2'")).unwrap();
        let c = p.credentials("r").await.unwrap().unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
