//! The store's client, from `[caches.object-store]`: `s3://BUCKET[/PREFIX]`
//! (AWS S3 and S3-compatibles, with `endpoint`) or `file:///DIR` (a
//! directory, e.g. a share every runner mounts).

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use std::sync::Arc;
use std::time::Duration;

/// What the options say about the store.
pub struct StoreConfig<'a> {
    pub url: &'a str,
    pub endpoint: Option<&'a str>,
    pub region: Option<&'a str>,
    pub allow_http: bool,
    /// Connect and first-byte bound; also how long a body may stand still.
    pub timeout: Duration,
}

/// Two clients of one store (downloads have no total time limit: a big
/// object on a slow link is bounded by the stall watchdog instead; uploads
/// do), and the key prefix under which its blobs live.
pub struct Opened {
    pub get: Arc<dyn ObjectStore>,
    pub put: Arc<dyn ObjectStore>,
    pub prefix: Key,
}

pub fn open(c: &StoreConfig<'_>) -> Result<Opened, String> {
    let url = reqwest::Url::parse(c.url).map_err(|e| format!("url {:?}: {e}", c.url))?;
    let prefix = Key::from(url.path().trim_matches('/'));
    match url.scheme() {
        "s3" => {
            let base = s3_builder(c)?;
            // A store that does not answer must not hold a pull up: few
            // retries, soon given up (then the registry serves).
            let retry = RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(1),
                    base: 2.0,
                },
                max_retries: 2,
                retry_timeout: c.timeout * 3,
            };
            let client = ClientOptions::new()
                .with_allow_http(c.allow_http)
                .with_connect_timeout(c.timeout);
            let get = base
                .clone()
                .with_retry(retry.clone())
                .with_client_options(client.clone().with_timeout_disabled())
                .build()
                .map_err(|e| e.to_string())?;
            let put = base
                .with_retry(retry)
                .with_client_options(client.with_timeout(Duration::from_secs(600)))
                .build()
                .map_err(|e| e.to_string())?;
            Ok(Opened {
                get: Arc::new(get),
                put: Arc::new(put),
                prefix,
            })
        }
        "file" => {
            let dir = url
                .to_file_path()
                .map_err(|()| format!("url {:?} names no local directory", c.url))?;
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| e.to_string())?;
            let fs: Arc<dyn ObjectStore> = Arc::new(fs);
            Ok(Opened {
                get: fs.clone(),
                put: fs,
                prefix: Key::default(),
            })
        }
        other => Err(format!(
            "url scheme {other:?} is not supported (s3://BUCKET/PREFIX or file:///DIR)"
        )),
    }
}

/// S3 from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `AWS_REGION`, container credentials, web identity,
/// the instance role), else the shared credentials file's profile
/// (`AWS_PROFILE` or `default`), as the `ecr` provider reads it.
fn s3_builder(c: &StoreConfig<'_>) -> Result<AmazonS3Builder, String> {
    let mut b = AmazonS3Builder::from_env().with_url(c.url);
    if let Some(e) = c.endpoint {
        b = b.with_endpoint(e);
    }
    if let Some(r) = c.region {
        b = b.with_region(r);
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if env("AWS_ACCESS_KEY_ID").is_none() {
        let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
        let file = env("AWS_SHARED_CREDENTIALS_FILE")
            .map(std::path::PathBuf::from)
            .or_else(|| env("HOME").map(|h| std::path::PathBuf::from(h).join(".aws/credentials")));
        let found = file.and_then(|f| {
            let text = std::fs::read_to_string(&f).ok()?;
            crate::plugins::credentials::ecr::aws::from_ini(
                &text,
                &profile,
                &f.display().to_string(),
            )
        });
        if let Some(cred) = found {
            b = b
                .with_access_key_id(cred.access_key_id)
                .with_secret_access_key(cred.secret_access_key.expose());
            if let Some(t) = cred.session_token {
                b = b.with_token(t.expose());
            }
        }
    }
    Ok(b)
}
