//! Errors of the registry client, carrying the registry and repository
//! they concern, and the OCI error envelope the registry sent.

use crate::oci::digest::Digest;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    #[error("{registry}: unauthorized to access {repository}{}: {detail}", credential_note(.credential_source))]
    Unauthorized {
        registry: String,
        repository: String,
        /// Which credential source answered, `None` when pulling anonymously.
        credential_source: Option<String>,
        detail: String,
    },
    #[error("{registry}: access to {repository} denied (403): {detail}")]
    Denied {
        registry: String,
        repository: String,
        /// No credentials were sent (the repository may be private).
        anonymous: bool,
        detail: String,
    },
    #[error("{registry}: not found: {what}: {detail}")]
    NotFound {
        registry: String,
        what: String,
        detail: String,
    },
    #[error("{registry}: rate limited (429){}: {detail}", retry_note(.retry_after))]
    RateLimited {
        registry: String,
        retry_after: Option<String>,
        detail: String,
    },
    #[error("{registry}: {url} answered HTTP {status}: {detail}")]
    Status {
        registry: String,
        url: String,
        status: u16,
        detail: String,
    },
    #[error("{registry}: cannot connect to {url}: {detail}")]
    Connect {
        registry: String,
        url: String,
        detail: String,
    },
    #[error("{registry}: TLS failure talking to {url}: {detail}")]
    Tls {
        registry: String,
        url: String,
        detail: String,
    },
    #[error("{registry}: network error on {url}: {detail}")]
    Network {
        registry: String,
        url: String,
        detail: String,
    },
    #[error("{registry}: integrity error: {what} should have digest {expected} but has {found}")]
    DigestMismatch {
        registry: String,
        what: String,
        expected: String,
        found: Digest,
    },
    #[error("{registry}: integrity error: {url} announced {found} bytes of {digest}, but {expected} were expected")]
    LengthMismatch {
        registry: String,
        url: String,
        digest: Digest,
        expected: u64,
        found: u64,
    },
    #[error("{registry}: bad response: {detail}")]
    BadResponse { registry: String, detail: String },
    /// An answer over one of imgpull's limits (README "Limits").
    #[error("{registry}: {url} sent more than {max} bytes ({what} limit); refused")]
    TooLarge {
        registry: String,
        url: String,
        what: &'static str,
        max: usize,
    },
}

fn credential_note(source: &Option<String>) -> String {
    match source {
        Some(s) => format!(" with credentials from {s}"),
        None => " (no credentials were found; pulled anonymously)".to_string(),
    }
}

fn retry_note(after: &Option<String>) -> String {
    match after {
        Some(a) => format!(", retry after {a}"),
        None => String::new(),
    }
}

impl RegistryError {
    /// A failure that may heal on another try: the connection, not the
    /// answer (refusals, TLS and integrity failures do not).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RegistryError::Connect { .. } | RegistryError::Network { .. }
        )
    }

    pub fn registry(&self) -> &str {
        match self {
            RegistryError::Unauthorized { registry, .. }
            | RegistryError::Denied { registry, .. }
            | RegistryError::NotFound { registry, .. }
            | RegistryError::RateLimited { registry, .. }
            | RegistryError::Status { registry, .. }
            | RegistryError::Connect { registry, .. }
            | RegistryError::Tls { registry, .. }
            | RegistryError::Network { registry, .. }
            | RegistryError::DigestMismatch { registry, .. }
            | RegistryError::LengthMismatch { registry, .. }
            | RegistryError::BadResponse { registry, .. }
            | RegistryError::TooLarge { registry, .. } => registry,
        }
    }
}

/// The OCI distribution error envelope: `{"errors":[{code,message,detail}]}`.
#[derive(serde::Deserialize)]
struct Envelope {
    errors: Vec<EnvelopeError>,
}

#[derive(serde::Deserialize)]
struct EnvelopeError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The other shapes token servers answer with: Docker Hub's
/// `{"details": "incorrect username or password"}`, OAuth2's
/// `{"error": …, "error_description": …}`, `{"message": …}`.
#[derive(serde::Deserialize)]
struct Flat {
    details: Option<String>,
    error: Option<serde_json::Value>,
    error_description: Option<String>,
    message: Option<String>,
}

impl Flat {
    fn text(self) -> Option<String> {
        let error = self.error.and_then(|e| match e {
            serde_json::Value::String(s) => Some(s),
            _ => None,
        });
        let parts: Vec<String> = [self.details, error, self.error_description, self.message]
            .into_iter()
            .flatten()
            .filter(|s| !s.trim().is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join(": "))
    }
}

/// A one-line summary of an error body: the envelope's codes and messages
/// (or a token server's `details`/`error`), else the start of the text,
/// else the HTTP reason.
pub fn summarize_body(status: u16, body: &[u8]) -> String {
    if let Some(t) = serde_json::from_slice::<Flat>(body)
        .ok()
        .and_then(Flat::text)
    {
        return t.chars().filter(|c| !c.is_control()).take(300).collect();
    }
    if let Ok(env) = serde_json::from_slice::<Envelope>(body) {
        let parts: Vec<String> = env
            .errors
            .iter()
            .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
                (false, false) => format!("{} ({})", e.code, e.message),
                (false, true) => e.code.clone(),
                _ => e.message.clone(),
            })
            .filter(|s| !s.is_empty())
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    if text.trim().is_empty() {
        reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("no detail")
            .to_lowercase()
    } else {
        text.trim().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarizes_envelopes() {
        let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#;
        assert_eq!(
            summarize_body(401, body),
            "UNAUTHORIZED (authentication required)"
        );
        assert_eq!(summarize_body(404, b""), "not found");
        assert_eq!(
            summarize_body(401, br#"{"details":"incorrect username or password"}"#),
            "incorrect username or password"
        );
        assert_eq!(
            summarize_body(
                400,
                br#"{"error":"invalid_grant","error_description":"expired"}"#
            ),
            "invalid_grant: expired"
        );
        assert_eq!(summarize_body(500, b"boom\x1b[31m"), "boom[31m");
    }
}
