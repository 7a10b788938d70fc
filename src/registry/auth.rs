//! What a registry client authenticates with, and to whom it is sent:
//!
//! - the registry's own credentials (Basic, or Bearer tokens fetched with
//!   them from the realm its challenge names), sent to its origin only;
//! - anonymous tokens for a registry a redirect led to (a front door that
//!   sends every `/v2/` request elsewhere), fetched from that registry's
//!   own challenge without our credentials and sent to that origin only;
//! - deferred providers (cloud helpers that run a program or call an API),
//!   asked only once an anonymous request is refused, and only once.

use super::redirect::{Bound, Origin};
use super::{RegistryClient, RegistryError};
use crate::credentials::{Credential, CredentialError, Found};
use crate::registry::challenge::Challenge;
use reqwest::header::HeaderValue;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

type Asked = Pin<Box<dyn Future<Output = Result<Option<Found>, CredentialError>> + Send>>;

/// Providers asked later: each call is a future of what they have (`None`:
/// nothing).
#[derive(Clone)]
pub struct Deferred(Arc<dyn Fn() -> Asked + Send + Sync>);

impl Deferred {
    pub fn new(f: impl Fn() -> Asked + Send + Sync + 'static) -> Deferred {
        Deferred(Arc::new(f))
    }
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Deferred")
    }
}

impl RegistryClient {
    /// The credentials in use now.
    pub(super) fn found(&self) -> Option<Found> {
        self.credentials
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn remember_secret(&self, s: Vec<String>) {
        self.secrets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(s);
    }

    /// `text` with every secret this client holds (and their encodings on
    /// the wire) replaced by `<redacted>`.
    pub(super) fn scrub(&self, text: &str) -> String {
        let secrets = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        crate::util::secret::scrub(text, &secrets)
    }

    /// The `Authorization` of each origin for a request in `scope`: the
    /// registry's (fetching a token if needed), and the anonymous tokens of
    /// the registries redirects led to.
    pub(super) async fn bounds(
        &self,
        repository: &str,
        scope: &str,
        refresh: bool,
    ) -> Result<Vec<Bound>, RegistryError> {
        let mut out = Vec::new();
        if let Some(a) = self.authorization(repository, scope, refresh).await? {
            if let Ok(value) = HeaderValue::from_str(&a) {
                out.push(Bound {
                    origin: self.origin.clone(),
                    value,
                });
            }
        }
        let st = self.state.lock().await;
        let now = Instant::now();
        for ((origin, s), t) in &st.foreign {
            let (Some(o), true) = (Origin::parse(origin), s == scope && t.is_fresh(now)) else {
                continue;
            };
            if let Ok(value) = HeaderValue::from_str(&format!("Bearer {}", t.value.expose())) {
                out.push(Bound { origin: o, value });
            }
        }
        Ok(out)
    }

    /// The registry's `Authorization` value for `scope`, fetching a token
    /// if needed.
    async fn authorization(
        &self,
        repository: &str,
        scope: &str,
        refresh: bool,
    ) -> Result<Option<String>, RegistryError> {
        let mut st = self.state.lock().await;
        let found = self.found();
        let cred = found.as_ref().map(|f| &f.credential);
        let (realm, service) = match (&st.challenge, cred) {
            (None, _) => return Ok(None),
            (Some(_), Some(Credential::Bearer(t))) => {
                return Ok(Some(format!("Bearer {}", t.expose())))
            }
            (Some(Challenge::Basic), Some(Credential::Basic { username, password })) => {
                return Ok(Some(super::token::basic(username, password.expose())))
            }
            (Some(Challenge::Basic), None | Some(Credential::IdentityToken(_))) => return Ok(None),
            (Some(Challenge::Bearer { realm, service, .. }), _) => (realm.clone(), service.clone()),
        };
        let now = Instant::now();
        if !refresh {
            if let Some(t) = st.tokens.get(scope).filter(|t| t.is_fresh(now)) {
                return Ok(Some(format!("Bearer {}", t.value.expose())));
            }
        }
        let token = self
            .fetch_token(repository, &realm, service.as_deref(), scope, cred)
            .await?;
        self.remember_secret(vec![token.value.expose().to_string()]);
        let header = format!("Bearer {}", token.value.expose());
        st.tokens.insert(scope.to_string(), token);
        Ok(Some(header))
    }

    /// The registry itself sent a (new) challenge: use it, drop the token.
    pub(super) async fn new_challenge(&self, c: Challenge, scope: &str) {
        let mut st = self.state.lock().await;
        st.challenge = Some(c);
        st.tokens.remove(scope);
    }

    /// A registry a redirect led to asked for a token: fetch one from its
    /// realm, anonymously, for its origin only.
    pub(super) async fn foreign_token(
        &self,
        repository: &str,
        at: &reqwest::Url,
        challenge: Challenge,
        scope: &str,
    ) -> Result<(), RegistryError> {
        let Challenge::Bearer {
            realm,
            service,
            scope: named,
        } = challenge
        else {
            return Ok(());
        };
        // The target names its own scope: a front door may have rewritten
        // the path (registry.k8s.io serves `images/X` from another name).
        let asked = named.as_deref().unwrap_or(scope);
        let token = self
            .fetch_token(repository, &realm, service.as_deref(), asked, None)
            .await?;
        self.remember_secret(vec![token.value.expose().to_string()]);
        let origin = at.origin().ascii_serialization();
        self.notes.say(&format!(
            "{}: redirected to {origin}, which asked for a token; got one anonymously, for it alone",
            self.registry
        ));
        let mut st = self.state.lock().await;
        st.foreign.insert((origin, scope.to_string()), token);
        Ok(())
    }

    /// Ask the deferred providers, the first time an anonymous request is
    /// refused (one task asks; the others wait for its answer); `true` when
    /// the request is worth sending again: credentials arrived (now, or
    /// since this request, sent without them, went out).
    pub(super) async fn ask_deferred(
        &self,
        repository: &str,
        had: bool,
    ) -> Result<bool, RegistryError> {
        let Some(deferred) = &self.deferred else {
            return Ok(false);
        };
        let _one_at_a_time = self.deferred_lock.lock().await;
        if self.found().is_some() {
            return Ok(!had);
        }
        {
            let mut st = self.state.lock().await;
            if std::mem::replace(&mut st.deferred_asked, true) {
                return Ok(false);
            }
        }
        let found = (deferred.0)()
            .await
            .map_err(|e| RegistryError::Unauthorized {
                registry: self.registry.clone(),
                repository: repository.to_string(),
                credential_source: None,
                detail: e.to_string(),
            })?;
        let Some(found) = found else {
            return Ok(false);
        };
        self.notes.say(&format!(
            "{}: anonymous access refused; using credentials from {}",
            self.registry, found.source
        ));
        self.remember_secret(found.credential.secrets());
        *self.credentials.write().unwrap_or_else(|e| e.into_inner()) = Some(found);
        self.state.lock().await.tokens.clear();
        Ok(true)
    }
}
