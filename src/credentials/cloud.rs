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

/// An HTTP client for cloud APIs: short timeouts, no redirects.
pub fn http() -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("imgpull/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(60))
        // Credentials are POSTed: never re-sent to wherever a redirect points.
        .redirect(reqwest::redirect::Policy::none());
    for pem in EXTRA_ROOTS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        for c in reqwest::Certificate::from_pem_bundle(pem).map_err(|e| format!("ca_file: {e}"))? {
            b = b.add_root_certificate(c);
        }
    }
    b.build().map_err(|e| e.to_string())
}

/// The most bytes a cloud API answer is read to.
pub const ANSWER_MAX: usize = 1 << 20;

/// A cloud API answer's body, at most [`ANSWER_MAX`] bytes.
pub async fn body(resp: reqwest::Response) -> Result<Vec<u8>, String> {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        if out.len() + chunk.len() > ANSWER_MAX {
            return Err(format!("the answer is over {ANSWER_MAX} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A cloud API answer parsed as JSON (at most [`ANSWER_MAX`] bytes).
pub async fn json<T: serde::de::DeserializeOwned>(resp: reqwest::Response) -> Result<T, String> {
    serde_json::from_slice(&body(resp).await?).map_err(|e| e.to_string())
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
