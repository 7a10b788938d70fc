//! Bearer tokens from a challenge's realm: a GET with optional Basic
//! credentials, or — for an identity (refresh) token from `docker login`
//! — an OAuth2 `refresh_token` POST, as docker does.

use super::redirect::{Bound, Downgrade, Origin, Request};
use super::{is_loopback, RegistryClient, RegistryError, Tries};
use crate::credentials::Credential;
use crate::registry::challenge::{Token, TokenResponse};
use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::Method;
use std::time::Instant;

pub(super) fn basic(user: &str, pass: &str) -> String {
    let raw = format!("{user}:{pass}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

use super::redirect::Payload;

impl RegistryClient {
    /// A token for `scope` from `realm`, asked with `credential` (`None`:
    /// anonymously).
    pub(super) async fn fetch_token(
        &self,
        repository: &str,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        credential: Option<&Credential>,
    ) -> Result<Token, RegistryError> {
        let mut url = self.realm_url(realm, credential)?;
        let (body, auth) = self.token_ask(&mut url, service, scope, credential)?;
        let resp = self.token_answer(&url, body, &auth).await?;
        if !resp.status().is_success() {
            // Its message says why ("incorrect username or password"),
            // scrubbed of anything of ours it may quote.
            let what = format!("token for {scope}");
            return Err(self
                .status_error(resp, repository, &what, credential.is_some())
                .await);
        }
        let body = self.read_capped(resp, super::TOKEN_MAX).await?;
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| self.bad(format!("token server answered invalid JSON: {e}")))?;
        Token::from_response(parsed, Instant::now())
            .ok_or_else(|| self.bad("token server answered without a token".to_string()))
    }

    /// The token server's answer that makes no sense, as an error.
    fn bad(&self, detail: String) -> RegistryError {
        RegistryError::BadResponse {
            registry: self.registry.clone(),
            detail,
        }
    }

    /// `realm` as a URL: HTTP(S) only, and plain HTTP with credentials only
    /// for an `insecure` registry or a loopback realm.
    fn realm_url(
        &self,
        realm: &str,
        credential: Option<&Credential>,
    ) -> Result<reqwest::Url, RegistryError> {
        let url = reqwest::Url::parse(realm)
            .map_err(|e| self.bad(format!("token realm {realm:?} is not a URL: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(self.bad(format!("token realm {realm:?} is not HTTP(S)")));
        }
        if credential.is_some() && url.scheme() == "http" {
            let realm_host = url.host_str().unwrap_or("");
            if !self.insecure && !is_loopback(realm_host) {
                return Err(self.bad(format!(
                    "token realm {realm} is plain HTTP; refusing to send credentials \
                     (mark the registry `insecure` if this is intended)"
                )));
            }
        }
        Ok(url)
    }

    /// How the token is asked for with `credential`: an identity token in a
    /// POST form (a body holding a refresh token is never redirected);
    /// otherwise a GET with `service` and `scope` added to `url`, and Basic
    /// credentials bound to the realm's own origin.
    fn token_ask(
        &self,
        url: &mut reqwest::Url,
        service: Option<&str>,
        scope: &str,
        credential: Option<&Credential>,
    ) -> Result<(Option<Payload>, Vec<Bound>), RegistryError> {
        if let Some(Credential::IdentityToken(refresh)) = credential {
            let text = refresh_form(refresh.expose(), service, scope);
            let form = Payload::bytes("application/x-www-form-urlencoded", text.into());
            return Ok((Some(form), Vec::new()));
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            // Several scopes (a push that mounts from another repository)
            // are several `scope` parameters.
            for s in scope.split(' ').filter(|s| !s.is_empty()) {
                q.append_pair("scope", s);
            }
        }
        let mut auth = Vec::new();
        if let Some(Credential::Basic { username, password }) = credential {
            auth.push(self.basic_bound(url, username, password.expose())?);
        }
        Ok((None, auth))
    }

    /// Basic credentials for the realm at `url`: the password goes to the
    /// realm's own origin, and to nothing a redirect from it names.
    fn basic_bound(
        &self,
        url: &reqwest::Url,
        username: &str,
        password: &str,
    ) -> Result<Bound, RegistryError> {
        let value = HeaderValue::from_str(&basic(username, password)).map_err(|_| {
            self.bad("the username or password holds characters a header cannot carry".into())
        })?;
        Ok(Bound {
            origin: Origin::of(url),
            value,
        })
    }

    /// The token server's answer to `url` (a POST when there is a `body`).
    /// Token requests are idempotent: retried like every other request, on
    /// failures that may heal and on retryable statuses, within their own
    /// budget; the last try's answer is returned whatever its status.
    async fn token_answer(
        &self,
        url: &reqwest::Url,
        body: Option<Payload>,
        auth: &[Bound],
    ) -> Result<reqwest::Response, RegistryError> {
        let tries = Tries::new(self.retry.attempts);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = tries.take() == 0;
            let req = Request {
                http: &self.http,
                method: if body.is_some() {
                    Method::POST
                } else {
                    Method::GET
                },
                url: url.clone(),
                headers: HeaderMap::new(),
                auth,
                body: body.clone(),
                downgrade: Downgrade::Refuse,
                deadline: Some(self.pace.window),
                on_hop: None,
            };
            match req.send().await {
                Ok(r) if last || !super::retry::retryable_status(r.status().as_u16()) => {
                    return Ok(r)
                }
                // The same waits as for the registry's own answers:
                // Retry-After (up to its cap), seconds after a bare 429.
                Ok(r) => {
                    if !self
                        .wait_to_retry(&r, "the token request", attempt, &tries)
                        .await
                    {
                        return Ok(r);
                    }
                    continue;
                }
                Err(e) => {
                    let err = super::follow_error(&self.registry, e);
                    if last || !err.is_transient() {
                        return Err(err);
                    }
                }
            }
            tokio::time::sleep(self.retry.backoff(attempt)).await;
        }
    }
}

/// The OAuth2 `refresh_token` grant for `scope`, form-encoded.
fn refresh_form(refresh: &str, service: Option<&str>, scope: &str) -> String {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh),
        ("client_id", "imgpull"),
        ("scope", scope),
    ];
    if let Some(s) = service {
        form.push(("service", s));
    }
    form.iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `application/x-www-form-urlencoded` value encoding.
fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
