//! Google: access tokens from application default credentials — a
//! service-account key (signed JWT exchanged at its `token_uri`) or an
//! `authorized_user` file (refresh token) — or from `gcloud`.

use crate::credentials::cloud::http;
use crate::util::secret::Secret;
use crate::util::time;
use base64::Engine as _;
use serde::Deserialize;
use std::path::{Path, PathBuf};

const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type", default)]
    kind: String,
    // service_account
    #[serde(default)]
    client_email: Option<String>,
    #[serde(default)]
    private_key: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
    // authorized_user
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

/// The application-default-credentials file: `GOOGLE_APPLICATION_CREDENTIALS`,
/// else gcloud's `application_default_credentials.json`.
pub fn adc_file() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = env("GOOGLE_APPLICATION_CREDENTIALS") {
        return Some(p);
    }
    let config =
        env("CLOUDSDK_CONFIG").or_else(|| env("HOME").map(|h| h.join(".config/gcloud")))?;
    Some(config.join("application_default_credentials.json")).filter(|p| p.is_file())
}

/// An access token from a key file.
pub async fn token_from_file(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let key: KeyFile = serde_json::from_slice(&text)
        .map_err(|_| format!("{}: not a Google credentials JSON file", path.display()))?;
    let token_uri = key
        .token_uri
        .clone()
        .unwrap_or_else(|| DEFAULT_TOKEN_URI.into());
    let form: Vec<(&str, String)> = match key.kind.as_str() {
        "service_account" => {
            let email = key
                .client_email
                .as_deref()
                .ok_or("service account key without client_email")?;
            let pem = key
                .private_key
                .as_deref()
                .ok_or("service account key without private_key")?;
            let assertion = sign_jwt(email, &token_uri, pem)?;
            vec![
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
                ),
                ("assertion", assertion),
            ]
        }
        "authorized_user" => vec![
            ("grant_type", "refresh_token".into()),
            ("client_id", key.client_id.clone().unwrap_or_default()),
            (
                "client_secret",
                key.client_secret.clone().unwrap_or_default(),
            ),
            (
                "refresh_token",
                key.refresh_token.clone().unwrap_or_default(),
            ),
        ],
        other => {
            return Err(format!(
                "{}: unsupported credentials type {other:?}",
                path.display()
            ))
        }
    };
    let resp = http()?
        .post(&token_uri)
        .form(&form)
        .send()
        .await
        .map_err(|e| format!("{token_uri}: {}", crate::registry::error_chain(&e)))?;
    if !resp.status().is_success() {
        return Err(format!(
            "{token_uri} refused the token exchange (HTTP {})",
            resp.status()
        ));
    }
    let answer: TokenAnswer = crate::credentials::cloud::json(resp)
        .await
        .map_err(|_| format!("{token_uri}: no access_token in the answer"))?;
    Ok(Secret::new(answer.access_token))
}

/// An RS256 JWT asserting `email` for the cloud-platform scope.
fn sign_jwt(email: &str, audience: &str, pem: &str) -> Result<String, String> {
    let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(der.trim())
        .map_err(|_| "private_key is not PEM")?;
    let key = ring::signature::RsaKeyPair::from_pkcs8(&der)
        .map_err(|_| "private_key is not a PKCS#8 RSA key")?;
    let now = time::now_secs();
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let header = b64(&serde_json::json!({"alg": "RS256", "typ": "JWT"}));
    let claims = b64(&serde_json::json!({
        "iss": email, "scope": SCOPE, "aud": audience, "iat": now, "exp": now + 3600,
    }));
    let input = format!("{header}.{claims}");
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .map_err(|_| "signing the JWT failed")?;
    Ok(format!(
        "{input}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig)
    ))
}

/// `gcloud auth print-access-token`, when gcloud is installed.
pub async fn token_from_gcloud() -> Result<Option<Secret>, String> {
    let run = tokio::process::Command::new("gcloud")
        .args(["auth", "print-access-token"])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    // As every credential helper: an answer within 30 s, or none.
    let out = match tokio::time::timeout(std::time::Duration::from_secs(30), run).await {
        Err(_) => return Err("gcloud auth print-access-token did not answer within 30 s".into()),
        Ok(Ok(o)) => o,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Ok(Err(e)) => return Err(format!("gcloud: {e}")),
    };
    if !out.status.success() {
        // Not logged in: no credentials here (public images still pull).
        return Ok(None);
    }
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok((!token.is_empty()).then(|| Secret::new(token)))
}
