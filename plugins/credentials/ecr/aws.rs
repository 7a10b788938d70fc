//! AWS: the standard credential chain and SigV4 request signing.
//!
//! Chain, first that answers: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
//! (+`AWS_SESSION_TOKEN`); the shared credentials file
//! (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`, profile
//! `AWS_PROFILE` or `default`); container credentials
//! (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` / `_FULL_URI` with
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]`, as ECS and EKS Pod Identity
//! set them); the EC2 instance role through IMDSv2 (off when
//! `AWS_EC2_METADATA_DISABLED=true`). Not (yet): web identity (IRSA),
//! `~/.aws/config` roles, SSO and `credential_process`.

use crate::credentials::cloud::{hex, http};
use crate::util::secret::Secret;
use crate::util::time;
use ring::hmac;
use sha2::{Digest as _, Sha256};
use std::path::PathBuf;

/// Resolved AWS credentials.
#[derive(Clone, Debug)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
    /// Where they came from, for messages.
    pub source: String,
}

/// Find credentials; `Ok(None)` when no source has any.
pub async fn credentials(profile: Option<&str>) -> Result<Option<AwsCredentials>, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        return Ok(Some(AwsCredentials {
            access_key_id: id,
            secret_access_key: Secret::new(secret),
            session_token: env("AWS_SESSION_TOKEN").map(Secret::new),
            source: "environment".into(),
        }));
    }
    let profile = profile
        .map(str::to_string)
        .or_else(|| env("AWS_PROFILE"))
        .unwrap_or_else(|| "default".into());
    let file = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".aws/credentials")));
    if let Some(file) = file {
        if let Ok(text) = std::fs::read_to_string(&file) {
            if let Some(c) = from_ini(&text, &profile, &file.display().to_string()) {
                return Ok(Some(c));
            }
        }
    }
    if let Some(c) = container().await? {
        return Ok(Some(c));
    }
    if env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    imds().await
}

/// A profile of the shared credentials file.
pub fn from_ini(text: &str, profile: &str, origin: &str) -> Option<AwsCredentials> {
    let mut in_profile = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') && line.ends_with(']') {
            let name = line[1..line.len() - 1].trim();
            in_profile = name == profile || name == format!("profile {profile}");
            continue;
        }
        if !in_profile || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    Some(AwsCredentials {
        access_key_id: id?,
        secret_access_key: Secret::new(secret?),
        session_token: token.map(Secret::new),
        source: format!("{origin} [{profile}]"),
    })
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoleCredentials {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    token: Option<String>,
}

impl RoleCredentials {
    fn into_credentials(self, source: &str) -> AwsCredentials {
        AwsCredentials {
            access_key_id: self.access_key_id,
            secret_access_key: Secret::new(self.secret_access_key),
            session_token: self.token.map(Secret::new),
            source: source.into(),
        }
    }
}

async fn container() -> Result<Option<AwsCredentials>, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let url = match (
        env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
        env("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
    ) {
        (Some(rel), _) => format!("http://169.254.170.2{rel}"),
        (None, Some(full)) => full,
        (None, None) => return Ok(None),
    };
    // The link-local agent is never reached through a proxy.
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let mut req = client.get(&url);
    let token = match env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
        Some(f) => Some(
            std::fs::read_to_string(&f)
                .map_err(|e| format!("{f}: {e}"))?
                .trim()
                .to_string(),
        ),
        None => env("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
    };
    if let Some(t) = token {
        req = req.header("Authorization", t);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("container credentials at {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!(
            "container credentials at {url}: HTTP {}",
            resp.status()
        ));
    }
    let creds: RoleCredentials = crate::credentials::cloud::json(resp)
        .await
        .map_err(|e| format!("container credentials: {e}"))?;
    Ok(Some(creds.into_credentials("container credentials")))
}

async fn imds() -> Result<Option<AwsCredentials>, String> {
    let base = std::env::var("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "http://169.254.169.254".into());
    let base = base.trim_end_matches('/');
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(1))
        .timeout(std::time::Duration::from_secs(3))
        .no_proxy()
        // The session token header must not follow a redirect anywhere.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    // Not on EC2 (or IMDS off): no answer, no credentials.
    let Ok(token) = client
        .put(format!("{base}/latest/api/token"))
        .header("X-aws-ec2-metadata-token-ttl-seconds", "21600")
        .send()
        .await
    else {
        return Ok(None);
    };
    if !token.status().is_success() {
        return Ok(None);
    }
    let token =
        String::from_utf8_lossy(&crate::credentials::cloud::body(token).await?).into_owned();
    let get = |path: String| {
        client
            .get(format!("{base}{path}"))
            .header("X-aws-ec2-metadata-token", token.clone())
            .send()
    };
    let roles = get("/latest/meta-data/iam/security-credentials/".into())
        .await
        .map_err(|e| e.to_string())?;
    if !roles.status().is_success() {
        return Ok(None);
    }
    let roles =
        String::from_utf8_lossy(&crate::credentials::cloud::body(roles).await?).into_owned();
    let Some(role) = roles.lines().next().filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let creds = get(format!("/latest/meta-data/iam/security-credentials/{role}"))
        .await
        .map_err(|e| e.to_string())?;
    let creds: RoleCredentials = crate::credentials::cloud::json(creds)
        .await
        .map_err(|e| format!("instance role credentials: {e}"))?;
    Ok(Some(creds.into_credentials("EC2 instance role")))
}

/// Sign a JSON 1.1 POST (`X-Amz-Target` API) with SigV4 and send it.
pub async fn post_json(
    creds: &AwsCredentials,
    endpoint: &str,
    region: &str,
    service: &str,
    target: &str,
    body: &str,
) -> Result<reqwest::Response, String> {
    let url = reqwest::Url::parse(endpoint).map_err(|e| format!("endpoint {endpoint:?}: {e}"))?;
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => return Err(format!("endpoint {endpoint:?} has no host")),
    };
    let date = time::amz_date(time::now_secs());
    let headers = signed_headers(creds, &host, &date, region, service, target, body);
    let mut req = http()?.post(url).body(body.to_string());
    for (k, v) in headers {
        if k != "host" {
            req = req.header(k, v);
        }
    }
    req.send()
        .await
        .map_err(|e| format!("{endpoint}: {}", crate::registry::error_chain(&e)))
}

/// The headers of a signed request, `authorization` included.
pub fn signed_headers(
    creds: &AwsCredentials,
    host: &str,
    date: &str,
    region: &str,
    service: &str,
    target: &str,
    body: &str,
) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = vec![
        ("content-type".into(), "application/x-amz-json-1.1".into()),
        ("host".into(), host.into()),
        ("x-amz-date".into(), date.into()),
    ];
    if let Some(t) = &creds.session_token {
        headers.push(("x-amz-security-token".into(), t.expose().into()));
    }
    headers.push(("x-amz-target".into(), target.into()));
    let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let signed = names.join(";");
    let canonical_headers: String = headers
        .iter()
        .map(|(k, v)| format!("{k}:{}\n", v.trim()))
        .collect();
    let payload = hex(&Sha256::digest(body.as_bytes()));
    let canonical = format!("POST\n/\n\n{canonical_headers}\n{signed}\n{payload}");
    let day = &date[..8];
    let scope = format!("{day}/{region}/{service}/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = format!("AWS4{}", creds.secret_access_key.expose()).into_bytes();
    for part in [day, region, service, "aws4_request"] {
        key = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), part.as_bytes())
            .as_ref()
            .to_vec();
    }
    let signature =
        hex(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), to_sign.as_bytes()).as_ref());
    headers.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            creds.access_key_id
        ),
    ));
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigv4_known_answer() {
        // Values computed independently (Python hmac/hashlib) for this request.
        let creds = AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: None,
            source: "test".into(),
        };
        let h = signed_headers(
            &creds,
            "api.ecr.us-east-1.amazonaws.com",
            "20261128T000000Z",
            "us-east-1",
            "ecr",
            "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
            "{}",
        );
        let auth = &h.iter().find(|(k, _)| k == "authorization").unwrap().1;
        assert_eq!(auth, &format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/ecr/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={}", KNOWN_SIGNATURE));
        assert!(!format!("{creds:?}").contains("EXAMPLEKEY"));
    }

    const KNOWN_SIGNATURE: &str =
        "0dc644dae9e2279c9b1bf2cf8dc47d11ab7bacc64cd45cb9ba32c4ff0597b27a";

    #[test]
    fn shared_credentials_file() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n[profile ci]\naws_access_key_id=C\naws_secret_access_key=D\naws_session_token=E\n";
        let c = from_ini(text, "ci", "f").unwrap();
        assert_eq!(c.access_key_id, "C");
        assert_eq!(c.session_token.unwrap().expose(), "E");
        assert_eq!(
            from_ini(text, "default", "f")
                .unwrap()
                .secret_access_key
                .expose(),
            "B"
        );
        assert!(from_ini(text, "nope", "f").is_none());
    }
}
