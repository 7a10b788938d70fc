//! What the cloud credential providers share: an HTTP client for cloud
//! APIs (short timeouts, no redirects, the global `ca_file` trusted) and
//! bounded answers. The clouds' own protocols live with the plugins that
//! speak them: AWS SigV4 and its credential chain in
//! `plugins/credentials/ecr/aws.rs`, Google's token exchange in
//! `plugins/credentials/gcr/google.rs`. No SDKs: a few signed HTTPS
//! requests are all a registry login needs.

/// Extra CA certificates (PEM) every cloud API client trusts: the global
/// `ca_file` (a corporate TLS proxy's CA reaches cloud APIs as it reaches
/// registries). Proxies come from the environment, as for registries.
static EXTRA_ROOTS: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

/// Trust `pems` in cloud API clients too (set from the configuration).
pub fn trust(pems: Vec<Vec<u8>>) {
    *EXTRA_ROOTS.lock().unwrap_or_else(|e| e.into_inner()) = pems;
}

/// Why a cloud API could not be asked, or its answer not read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CloudError {
    /// The global `ca_file` holds no certificate reqwest can use.
    #[error("ca_file: {0}")]
    Ca(reqwest::Error),
    #[error("{0}")]
    Client(reqwest::Error),
    /// The answer broke off.
    #[error("{0}")]
    Body(reqwest::Error),
    #[error("the answer is over {ANSWER_MAX} bytes")]
    TooBig,
    #[error("{0}")]
    Json(serde_json::Error),
}

/// The providers report cloud failures as their own messages.
impl From<CloudError> for String {
    fn from(e: CloudError) -> String {
        e.to_string()
    }
}

/// An HTTP client for cloud APIs: short timeouts, no redirects.
pub fn http() -> Result<reqwest::Client, CloudError> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("imgpull/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(60))
        // Credentials are POSTed: never re-sent to wherever a redirect points.
        .redirect(reqwest::redirect::Policy::none());
    for pem in EXTRA_ROOTS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        for c in reqwest::Certificate::from_pem_bundle(pem).map_err(CloudError::Ca)? {
            b = b.add_root_certificate(c);
        }
    }
    b.build().map_err(CloudError::Client)
}

/// The most bytes a cloud API answer is read to.
pub const ANSWER_MAX: usize = 1 << 20;

/// A cloud API answer's body, at most [`ANSWER_MAX`] bytes.
pub async fn body(resp: reqwest::Response) -> Result<Vec<u8>, CloudError> {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(CloudError::Body)?;
        if out.len() + chunk.len() > ANSWER_MAX {
            return Err(CloudError::TooBig);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A cloud API answer parsed as JSON (at most [`ANSWER_MAX`] bytes).
pub async fn json<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
) -> Result<T, CloudError> {
    serde_json::from_slice(&body(resp).await?).map_err(CloudError::Json)
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
