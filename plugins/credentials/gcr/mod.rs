//! `gcr`: Google Container Registry and Artifact Registry. An OAuth2
//! access token, answered as user `oauth2accesstoken`, from (first that
//! has one): the `key_file` option, application default credentials
//! (`GOOGLE_APPLICATION_CREDENTIALS`, or gcloud's ADC file) — a
//! service-account key or an `authorized_user` file — or
//! `gcloud auth print-access-token` when gcloud is installed.
//!
//! ```toml
//! credentials = [{ provider = "gcr", key_file = "/secrets/sa.json" }]
//! ```

pub mod google;

use crate::catalog::{Build, Kind, Plugin, PluginConfig, PluginError};
use crate::credentials::{Credential, CredentialError, CredentialProvider};
use async_trait::async_trait;
use std::path::PathBuf;

const NAME: &str = "gcr";
const USER: &str = "oauth2accesstoken";

pub struct Gcr {
    key_file: Option<PathBuf>,
}

/// A `{ provider = "gcr", … }` entry.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    key_file: Option<PathBuf>,
}

fn build(cfg: &PluginConfig) -> Result<Box<dyn CredentialProvider>, PluginError> {
    let key_file = crate::catalog::options::<Options>(Kind::Credentials, NAME, cfg)?.key_file;
    Ok(Box::new(Gcr { key_file }))
}

inventory::submit! {
    Plugin {
        name: NAME,
        summary: "GCR / Artifact Registry: service-account key, ADC or gcloud access token",
        build: Build::Credentials(build),
    }
}

#[async_trait]
impl CredentialProvider for Gcr {
    fn source(&self) -> String {
        match &self.key_file {
            Some(p) => format!("{NAME} ({})", p.display()),
            None => format!("{NAME} (application default credentials / gcloud)"),
        }
    }

    fn deferred(&self) -> bool {
        true
    }

    async fn credentials(&self, _registry: &str) -> Result<Option<Credential>, CredentialError> {
        let invalid = |message: String| CredentialError::Invalid {
            provider: self.source(),
            message,
        };
        let file = self.key_file.clone().or_else(google::adc_file);
        let token = match file {
            Some(f) => Some(google::token_from_file(&f).await.map_err(invalid)?),
            None => google::token_from_gcloud().await.map_err(invalid)?,
        };
        Ok(token.map(|password| Credential::Basic {
            username: USER.into(),
            password,
        }))
    }
}
