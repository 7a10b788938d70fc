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
        let bad = |detail: String| RegistryError::BadResponse {
            registry: self.registry.clone(),
            detail,
        };
        let mut url = reqwest::Url::parse(realm)
            .map_err(|e| bad(format!("token realm {realm:?} is not a URL: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(bad(format!("token realm {realm:?} is not HTTP(S)")));
        }
        if credential.is_some() && url.scheme() == "http" {
            let realm_host = url.host_str().unwrap_or("");
            if !self.insecure && !is_loopback(realm_host) {
                return Err(bad(format!(
                    "token realm {realm} is plain HTTP; refusing to send credentials \
                     (mark the registry `insecure` if this is intended)"
                )));
            }
        }
        let mut body = None;
        let mut auth = Vec::new();
        match credential {
            Some(Credential::IdentityToken(refresh)) => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.expose()),
                    ("client_id", "imgpull"),
                    ("scope", scope),
                ];
                if let Some(s) = service {
                    form.push(("service", s));
                }
                let text = form
                    .iter()
                    .map(|(k, v)| format!("{k}={}", urlencode(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                // A body holding a refresh token is never redirected.
                body = Some(("application/x-www-form-urlencoded", text));
            }
            other => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    q.append_pair("scope", scope);
                }
                if let Some(Credential::Basic { username, password }) = other {
                    let value = HeaderValue::from_str(&basic(username, password.expose()))
                        .map_err(|_| {
                            bad(
                                "the username or password holds characters a header cannot carry"
                                    .into(),
                            )
                        })?;
                    // The password goes to the realm's own origin, and to
                    // nothing a redirect from it names.
                    auth.push(Bound {
                        origin: Origin::of(&url),
                        value,
                    });
                }
            }
        };
        let what = format!("token for {scope}");
        // Token requests are idempotent: retried like every other request.
        let tries = Tries::new(self.retry.attempts);
        let mut attempt = 0;
        let resp = loop {
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
                auth: auth.as_slice(),
                body: body.clone(),
                downgrade: Downgrade::Refuse,
                deadline: Some(self.pace.window),
                on_hop: None,
            };
            match req.send().await {
                Ok(r) if last || !super::retry::retryable_status(r.status().as_u16()) => break r,
                Ok(_) => {}
                Err(e) => {
                    let err = super::follow_error(&self.registry, e);
                    let transient = err.is_transient();
                    if last || !transient {
                        return Err(err);
                    }
                }
            }
            tokio::time::sleep(self.retry.backoff(attempt)).await;
        };
        if !resp.status().is_success() {
            // Its message says why ("incorrect username or password"),
            // scrubbed of anything of ours it may quote.
            return Err(self
                .status_error(resp, repository, &what, credential.is_some())
                .await);
        }
        let body = self.read_capped(resp, super::TOKEN_MAX).await?;
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| bad(format!("token server answered invalid JSON: {e}")))?;
        Token::from_response(parsed, Instant::now())
            .ok_or_else(|| bad("token server answered without a token".to_string()))
    }
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
