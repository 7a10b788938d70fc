//! Where registry credentials come from: the [`CredentialProvider`] trait
//! and the chain that asks providers in order.

pub mod cloud;

use crate::util::secret::Secret;
use async_trait::async_trait;

/// What a provider hands back for a registry.
#[derive(Clone, Debug)]
pub enum Credential {
    /// Username and password (or an access token used as a password). Sent
    /// as HTTP Basic to a registry that asks for Basic, and to the token
    /// server of one that asks for Bearer.
    Basic { username: String, password: Secret },
    /// A registry bearer token, sent as-is.
    Bearer(Secret),
    /// An OAuth2 refresh token (docker's `identitytoken`), exchanged at the
    /// registry's token endpoint for access tokens.
    IdentityToken(Secret),
}

impl Credential {
    /// Every form in which this credential's secrets travel (the secret
    /// itself, URL-encoded, and the Basic header value), for scrubbing
    /// what a server echoes back.
    pub fn secrets(&self) -> Vec<String> {
        match self {
            Credential::Basic { username, password } => {
                let raw = format!("{username}:{}", password.expose());
                let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, raw);
                let mut v = vec![password.expose().to_string(), b64];
                v.extend(crate::util::secret::encodings(password.expose()));
                v
            }
            Credential::Bearer(t) | Credential::IdentityToken(t) => {
                let mut v = vec![t.expose().to_string()];
                v.extend(crate::util::secret::encodings(t.expose()));
                v
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    #[error("credential provider {provider}: environment variable {var} is not set")]
    MissingEnv { provider: String, var: String },
    #[error("credential provider {provider}: cannot read {path}: {source}")]
    Io {
        provider: String,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("credential provider {provider}: {message}")]
    Invalid { provider: String, message: String },
}

/// A source of credentials for registry hosts.
///
/// Contract: `credentials` returns `Ok(Some(_))` when this provider has
/// credentials for `registry` (the name as users write it: `docker.io`,
/// `127.0.0.1:5000`), `Ok(None)` to pass the question to the next provider
/// in the chain, and `Err` only for a real failure (a configured secret
/// that cannot be read). It must never log or print a secret.
#[async_trait]
pub trait CredentialProvider: Send + Sync {
    /// Where the credentials come from, named in error messages
    /// (`static (--username)`, `docker-config (~/.docker/config.json)`).
    fn source(&self) -> String;

    /// Costly to ask (runs a program, calls a cloud API): when no cheaper
    /// provider answered, it is asked only once the registry has refused an
    /// anonymous request — a public image never waits for it.
    fn deferred(&self) -> bool {
        false
    }

    async fn credentials(&self, registry: &str) -> Result<Option<Credential>, CredentialError>;
}

/// Credentials found by a chain, with the source that answered.
#[derive(Clone, Debug)]
pub struct Found {
    pub credential: Credential,
    pub source: String,
}

/// Ask each provider in order; the first `Some` wins. Returns the sources
/// asked, for error messages, whether or not one answered.
pub async fn resolve_chain(
    chain: &[Box<dyn CredentialProvider>],
    registry: &str,
) -> Result<(Option<Found>, Vec<String>), CredentialError> {
    let mut asked = Vec::new();
    for p in chain {
        asked.push(p.source());
        if let Some(credential) = p.credentials(registry).await? {
            return Ok((
                Some(Found {
                    credential,
                    source: p.source(),
                }),
                asked,
            ));
        }
    }
    Ok((None, asked))
}
