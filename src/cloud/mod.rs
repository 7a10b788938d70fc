//! What the cloud credential providers share: AWS SigV4 and the AWS
//! credential chain ([`aws`]), Google service-account token exchange
//! ([`google`]), and UTC timestamps ([`time`]). No SDKs: a few signed
//! HTTPS requests are all a registry login needs.

pub mod aws;
pub mod google;
pub mod time;

/// An HTTP client for cloud APIs: short timeouts, no redirects.
pub fn http() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("imgpull/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(60))
        // Credentials are POSTed: never re-sent to wherever a redirect points.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
