//! The engine: configuration, the plugin catalog, and the shared setup of
//! every operation (registry adapter, credentials, client, cache).

use crate::cache::CacheBackend;
use crate::catalog::{Catalog, PluginConfig};
use crate::client::{ClientOptions, RegistryClient};
use crate::config::Config;
use crate::credentials::{resolve_chain, CredentialProvider};
use crate::error::Error;
use crate::progress::Reporter;
use crate::quirks::RegistryQuirks;
use crate::reference::Reference;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct Engine {
    pub(crate) config: Config,
    pub(crate) catalog: Catalog,
    pub(crate) reporter: Arc<dyn Reporter>,
}

impl Engine {
    pub fn new(config: Config, reporter: Arc<dyn Reporter>) -> Result<Engine, Error> {
        Ok(Engine {
            config,
            catalog: Catalog::builtin()?,
            reporter,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The adapter for `reference`'s registry (config `kind`, else by host).
    pub(crate) fn quirks(&self, reference: &Reference) -> Result<Arc<dyn RegistryQuirks>, Error> {
        let reg_cfg = self.config.registry(&reference.registry);
        Ok(self.catalog.quirks(
            &reference.registry,
            reg_cfg.kind.as_deref(),
            &PluginConfig::new(),
        )?)
    }

    pub(crate) async fn connect(
        &self,
        reference: &Reference,
        quirks: &dyn RegistryQuirks,
        cli: Option<&dyn CredentialProvider>,
    ) -> Result<RegistryClient, Error> {
        let reg_cfg = self.config.registry(&reference.registry);
        // Command-line credentials first; the config's chain only without them.
        let found = match cli {
            Some(p) => p.credentials(&reference.registry).await?.map(|credential| {
                crate::credentials::Found {
                    credential,
                    source: p.source(),
                }
            }),
            None => None,
        };
        let found = match found {
            Some(f) => Some(f),
            None => {
                let chain = self.credential_chain(reference, &reg_cfg, quirks)?;
                resolve_chain(&chain, &reference.registry).await?.0
            }
        };
        let mut ca_pem = Vec::new();
        for f in [&self.config.ca_file, &reg_cfg.ca_file]
            .into_iter()
            .flatten()
        {
            ca_pem.push(std::fs::read(f).map_err(|e| Error::io(f, e))?);
        }
        let opts = ClientOptions {
            registry: reference.registry.clone(),
            api_host: quirks.api_host(&reference.registry),
            insecure: reg_cfg.insecure,
            ca_pem,
            credentials: found,
            retry: crate::client::RetryPolicy {
                attempts: self.config.retries.max(1),
                ..Default::default()
            },
        };
        Ok(RegistryClient::connect(opts).await?)
    }

    /// The registry's configured providers, or the default chain: the
    /// docker/podman login files, then the adapter's cloud provider.
    pub(crate) fn credential_chain(
        &self,
        reference: &Reference,
        reg_cfg: &crate::config::RegistryConfig,
        quirks: &dyn RegistryQuirks,
    ) -> Result<Vec<Box<dyn CredentialProvider>>, Error> {
        let mut chain = Vec::new();
        if reg_cfg.credentials.is_empty() {
            let empty = PluginConfig::new();
            chain.push(self.catalog.credentials("docker-config", &empty)?);
            if let Some(cloud) = quirks.credential_provider() {
                chain.push(self.catalog.credentials(cloud, &empty)?);
            }
            return Ok(chain);
        }
        for entry in &reg_cfg.credentials {
            let name = entry
                .get("provider")
                .and_then(|v| v.as_str())
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "registries.\"{}\".credentials: every entry needs `provider = \"NAME\"`",
                        reference.registry
                    ))
                })?;
            chain.push(self.catalog.credentials(name, entry)?);
        }
        Ok(chain)
    }

    pub(crate) fn open_cache(
        &self,
        no_cache: bool,
        output: &Path,
    ) -> Result<(Arc<dyn CacheBackend>, Option<tempfile::TempDir>), Error> {
        if no_cache {
            let parent = match output.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let tmp = tempfile::Builder::new()
                .prefix(".imgpull-nocache-")
                .tempdir_in(&parent)
                .map_err(|e| Error::io(&parent, e))?;
            let cache: Arc<dyn CacheBackend> =
                Arc::new(crate::plugins::caches::local::LocalCache::new(tmp.path()));
            return Ok((cache, Some(tmp)));
        }
        let name = &self.config.cache;
        let cfg = self.config.caches.get(name).cloned().unwrap_or_default();
        Ok((self.catalog.cache(name, &cfg)?, None))
    }
}
