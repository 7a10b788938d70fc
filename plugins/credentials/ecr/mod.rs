//! `ecr`: Amazon ECR. Calls `GetAuthorizationToken` (SigV4-signed, with
//! credentials from the standard AWS chain: env, profile, container, instance
//! role) and answers `AWS` + the token's password, kept until it expires
//! (12 hours).
//!
//! ```toml
//! credentials = [{ provider = "ecr", region = "us-east-1", profile = "ci" }]
//! ```
//! Keys, all optional: `region` and `registry_id` (else taken from the
//! host `ACCOUNT.dkr.ecr.REGION.amazonaws.com`), `profile`, `endpoint`
//! (else `$AWS_ENDPOINT_URL_ECR`, `$AWS_ENDPOINT_URL`, or the regional API).

pub mod aws;

use crate::catalog::{Build, Kind, Plugin, PluginConfig, PluginError};
use crate::credentials::{Credential, CredentialError, CredentialProvider};
use crate::plugins::registries::ecr::parse_host;
use crate::util::secret::Secret;
use crate::util::time;
use async_trait::async_trait;
use base64::Engine as _;
use std::collections::HashMap;
use std::sync::Mutex;

const NAME: &str = "ecr";
const TARGET: &str = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken";

pub struct Ecr {
    region: Option<String>,
    registry_id: Option<String>,
    profile: Option<String>,
    endpoint: Option<String>,
}

/// Tokens by registry, with their expiry (seconds since the epoch), shared
/// by every provider in the process (one is built per connection).
fn tokens() -> &'static Mutex<HashMap<String, (Credential, u64)>> {
    static TOKENS: std::sync::OnceLock<Mutex<HashMap<String, (Credential, u64)>>> =
        std::sync::OnceLock::new();
    TOKENS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A `{ provider = "ecr", … }` entry.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    region: Option<String>,
    registry_id: Option<String>,
    profile: Option<String>,
    endpoint: Option<String>,
}

fn build(cfg: &PluginConfig) -> Result<Box<dyn CredentialProvider>, PluginError> {
    let o: Options = crate::catalog::options(Kind::Credentials, NAME, cfg)?;
    let p = Ecr {
        region: o.region,
        registry_id: o.registry_id,
        profile: o.profile,
        endpoint: o.endpoint,
    };
    Ok(Box::new(p))
}

inventory::submit! {
    Plugin {
        name: NAME,
        summary: "Amazon ECR: GetAuthorizationToken via the AWS credential chain",
        build: Build::Credentials(build),
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    authorization_data: Vec<AuthData>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthData {
    authorization_token: String,
    #[serde(default)]
    expires_at: Option<f64>,
}

impl Ecr {
    fn endpoint(&self, region: &str, registry: &str) -> String {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let suffix = if registry.ends_with(".amazonaws.com.cn") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        self.endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL_ECR"))
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|| format!("https://api.ecr.{region}.{suffix}"))
    }

    fn invalid(&self, message: String) -> CredentialError {
        CredentialError::Invalid {
            provider: self.source(),
            message,
        }
    }
}

#[async_trait]
impl CredentialProvider for Ecr {
    fn source(&self) -> String {
        format!("{NAME} (AWS GetAuthorizationToken)")
    }

    fn deferred(&self) -> bool {
        true
    }

    async fn credentials(&self, registry: &str) -> Result<Option<Credential>, CredentialError> {
        let from_host = parse_host(registry);
        let region = self
            .region
            .clone()
            .or_else(|| from_host.as_ref().map(|h| h.1.clone()));
        let Some(region) = region else {
            return Ok(None);
        };
        let account = self.registry_id.clone().or_else(|| from_host.map(|h| h.0));
        let now = time::now_secs();
        if let Some((c, until)) = tokens().lock().expect("token cache lock").get(registry) {
            if *until > now {
                return Ok(Some(c.clone()));
            }
        }
        let Some(creds) = aws::credentials(self.profile.as_deref())
            .await
            .map_err(|m| self.invalid(m))?
        else {
            return Ok(None);
        };
        let body = match &account {
            Some(a) => serde_json::json!({"registryIds": [a]}).to_string(),
            None => "{}".to_string(),
        };
        let endpoint = self.endpoint(&region, registry);
        let resp = aws::post_json(&creds, &endpoint, &region, "ecr", TARGET, &body)
            .await
            .map_err(|m| self.invalid(m))?;
        let status = resp.status();
        let text = crate::credentials::cloud::body(resp)
            .await
            .map_err(|e| self.invalid(e.to_string()))?;
        if !status.is_success() {
            let detail = crate::registry::summarize_body(status.as_u16(), &text);
            return Err(self.invalid(format!(
                "GetAuthorizationToken at {endpoint} failed (HTTP {status}, AWS credentials from {}): {detail}",
                creds.source
            )));
        }
        let answer: Answer = serde_json::from_slice(&text).map_err(|_| {
            self.invalid("GetAuthorizationToken answered something unexpected".into())
        })?;
        let data = answer
            .authorization_data
            .into_iter()
            .next()
            .ok_or_else(|| self.invalid("GetAuthorizationToken returned no token".into()))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(data.authorization_token.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| self.invalid("the ECR token is not base64 user:password".into()))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| self.invalid("the ECR token is not user:password".into()))?;
        let credential = Credential::Basic {
            username: user.to_string(),
            password: Secret::new(password),
        };
        // Reuse until five minutes before it expires (a token already past
        // its time is used once, never kept).
        let until = data
            .expires_at
            .map(|e| e as u64)
            .unwrap_or(now + 3600)
            .saturating_sub(300);
        if until > now {
            tokens()
                .lock()
                .expect("token cache lock")
                .insert(registry.to_string(), (credential.clone(), until));
        }
        Ok(Some(credential))
    }
}
