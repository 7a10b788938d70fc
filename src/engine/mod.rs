//! The engine: configuration, the plugin catalog, and the shared setup of
//! every operation (registry adapter, credentials, client, cache).

pub mod import;
pub mod inspect;
pub mod naming;
pub mod pull;
pub mod push;
pub mod reuse;
pub mod sources;

use crate::cache::CacheBackend;
use crate::catalog::{Catalog, PluginConfig};
use crate::config::Config;
use crate::credentials::{resolve_chain, CredentialProvider};
use crate::error::Error;
use crate::oci::reference::Reference;
use crate::progress::Reporter;
use crate::registry::endpoints::Endpoints;
use crate::registry::quirks::RegistryQuirks;
use crate::registry::{ClientOptions, RegistryClient, RegistryError};
use std::path::Path;
use std::sync::Arc;

pub struct Engine {
    pub(crate) config: Config,
    pub(crate) catalog: Catalog,
    pub(crate) reporter: Arc<dyn Reporter>,
    /// Deferred providers that had nothing for a registry (`source|host`):
    /// not asked again by this engine.
    had_nothing: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl Engine {
    pub fn new(config: Config, reporter: Arc<dyn Reporter>) -> Result<Engine, Error> {
        crate::util::fs::set_sync_output(config.sync_output);
        crate::layer::set_limit(config.layer_limit());
        // Cloud API clients trust the global CA too (read errors are
        // reported when a registry client needs the file).
        if let Some(pem) = config.ca_file.as_ref().and_then(|f| std::fs::read(f).ok()) {
            crate::credentials::cloud::trust(vec![pem]);
        }
        Ok(Engine {
            config,
            catalog: Catalog::builtin()?,
            reporter,
            had_nothing: Default::default(),
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
            &reg_cfg.quirks,
        )?)
    }

    /// The endpoints of `reference`'s registry: its mirrors (each skipped
    /// if it cannot be reached), then the origin unless `mirror_only`.
    pub(crate) async fn connect(
        &self,
        reference: &Reference,
        quirks: &dyn RegistryQuirks,
        cli: Option<&dyn CredentialProvider>,
    ) -> Result<Endpoints, Error> {
        let reg_cfg = self.config.registry(&reference.registry);
        let mut endpoints = Endpoints::new(&reference.registry, reg_cfg.mirror_tags);
        for mirror in &reg_cfg.mirrors {
            match self.mirror(reference, mirror, reg_cfg.mirror_ns).await? {
                Ok(c) => endpoints.push(c, crate::registry::shown_url(mirror), true),
                Err(e) => self.reporter.warn(&format!(
                    "mirror {} skipped: {e}",
                    crate::registry::shown_url(mirror)
                )),
            }
        }
        if !reg_cfg.mirror_only || reg_cfg.mirrors.is_empty() {
            let label = format!("{} (origin)", reference.registry);
            let opts = self
                .origin_options(reference, quirks, cli, &reg_cfg)
                .await?;
            // Behind a live mirror the origin is connected when a request
            // reaches it: a pull the mirror serves sends it nothing.
            if endpoints.is_empty() {
                endpoints.push(RegistryClient::connect(opts).await?, label, false);
            } else {
                endpoints.push_later(opts, label, false);
            }
        }
        if endpoints.is_empty() {
            return Err(Error::Registry(RegistryError::BadResponse {
                registry: reference.registry.clone(),
                detail: "every mirror failed and mirror_only is set".into(),
            }));
        }
        Ok(endpoints)
    }

    /// A client for `mirror` of `reference`'s registry with the mirror's
    /// own credentials; the inner `Err` is a mirror that cannot be reached
    /// (skipped), the outer one a mirror that is not a URL.
    async fn mirror(
        &self,
        reference: &Reference,
        mirror: &str,
        ns: bool,
    ) -> Result<Result<RegistryClient, RegistryError>, Error> {
        let shown = || crate::registry::shown_url(mirror);
        let url = reqwest::Url::parse(mirror)
            .map_err(|e| Error::Usage(format!("mirror {:?} is not a URL: {e}", shown())))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => return Err(Error::Usage(format!("mirror {:?} has no host", shown()))),
        };
        let mirror_cfg = self.config.registry(&host);
        let generic = self
            .catalog
            .quirks(&host, Some("generic"), &PluginConfig::new())?;
        let chain = self.credential_chain(reference, &mirror_cfg, generic.as_ref())?;
        let found = resolve_chain(&chain, &host).await?.0;
        let mut opts = self.client_options(&host, &host, &mirror_cfg, found, None)?;
        // An http:// mirror is plain HTTP by the user's choice.
        opts.insecure |= url.scheme() == "http";
        opts.ns = ns.then(|| reference.registry.clone());
        Ok(RegistryClient::connect(opts).await)
    }

    /// A client for the origin registry: command-line credentials first,
    /// the config's chain only without them (its cloud helpers deferred).
    async fn origin(
        &self,
        reference: &Reference,
        quirks: &dyn RegistryQuirks,
        cli: Option<&dyn CredentialProvider>,
        reg_cfg: &crate::config::RegistryConfig,
    ) -> Result<RegistryClient, Error> {
        let opts = self.origin_options(reference, quirks, cli, reg_cfg).await?;
        Ok(RegistryClient::connect(opts).await?)
    }

    /// How to reach `reference`'s registry itself: its credentials (the
    /// command line's, else the chain's; costly providers deferred).
    async fn origin_options(
        &self,
        reference: &Reference,
        quirks: &dyn RegistryQuirks,
        cli: Option<&dyn CredentialProvider>,
        reg_cfg: &crate::config::RegistryConfig,
    ) -> Result<ClientOptions, Error> {
        let found = match cli {
            Some(p) => p.credentials(&reference.registry).await?.map(|credential| {
                crate::credentials::Found {
                    credential,
                    source: p.source(),
                }
            }),
            None => None,
        };
        let (found, deferred) = match found {
            Some(f) => (Some(f), None),
            None => {
                let chain = self.credential_chain(reference, reg_cfg, quirks)?;
                // The default chain's cloud helper waits for a refusal;
                // a list the user wrote is asked as written.
                let default_chain = reg_cfg.credentials.is_empty();
                let (now, later): (Vec<_>, Vec<_>) = chain
                    .into_iter()
                    .partition(|p| !(default_chain && p.deferred()));
                let found = resolve_chain(&now, &reference.registry).await?.0;
                let deferred = (found.is_none() && !later.is_empty())
                    .then(|| self.deferred(later, &reference.registry));
                (found, deferred)
            }
        };
        let api_host = quirks.api_host(&reference.registry);
        self.client_options(&reference.registry, &api_host, reg_cfg, found, deferred)
    }

    /// Providers asked only when the registry refuses an anonymous request;
    /// one that has nothing for `registry` is not asked again.
    fn deferred(
        &self,
        chain: Vec<Box<dyn CredentialProvider>>,
        registry: &str,
    ) -> crate::registry::Deferred {
        let chain = Arc::new(chain);
        let registry = registry.to_string();
        let memo = self.had_nothing.clone();
        crate::registry::Deferred::new(move || {
            let (chain, registry, memo) = (chain.clone(), registry.clone(), memo.clone());
            Box::pin(async move {
                let key = |p: &dyn CredentialProvider| format!("{}|{registry}", p.source());
                let fresh: Vec<&Box<dyn CredentialProvider>> = {
                    let m = memo.lock().unwrap_or_else(|e| e.into_inner());
                    chain
                        .iter()
                        .filter(|p| !m.contains(&key(p.as_ref())))
                        .collect()
                };
                for p in fresh {
                    match p.credentials(&registry).await? {
                        Some(credential) => {
                            return Ok(Some(crate::credentials::Found {
                                credential,
                                source: p.source(),
                            }))
                        }
                        None => {
                            memo.lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(key(p.as_ref()));
                        }
                    }
                }
                Ok(None)
            })
        })
    }

    fn client_options(
        &self,
        registry: &str,
        api_host: &str,
        reg_cfg: &crate::config::RegistryConfig,
        credentials: Option<crate::credentials::Found>,
        deferred: Option<crate::registry::Deferred>,
    ) -> Result<ClientOptions, Error> {
        let mut ca_pem = Vec::new();
        for f in [&self.config.ca_file, &reg_cfg.ca_file]
            .into_iter()
            .flatten()
        {
            ca_pem.push(std::fs::read(f).map_err(|e| Error::io(f, e))?);
        }
        Ok(ClientOptions {
            registry: registry.to_string(),
            api_host: api_host.to_string(),
            insecure: reg_cfg.insecure,
            ca_pem,
            credentials,
            deferred,
            retry: crate::registry::RetryPolicy {
                attempts: self.config.retries.max(1),
                ..Default::default()
            },
            stall_timeout: self.config.stall_timeout(),
            min_speed: self.config.min_speed(),
            ns: None,
            notes: crate::registry::Notes::new(self.reporter.clone()),
        })
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

    /// The configured exporter.
    pub(crate) fn exporter(&self) -> Result<Arc<dyn crate::export::Exporter>, Error> {
        self.exporter_named(&self.config.export)
    }

    /// The exporter that pushes (`imgpull push`).
    pub(crate) fn pusher(&self) -> Result<Arc<dyn crate::export::Exporter>, Error> {
        self.exporter_named("registry")
    }

    /// Exporter `name` with its table. Pushes share the download
    /// concurrency unless `max_concurrent_uploads` says otherwise.
    fn exporter_named(&self, name: &str) -> Result<Arc<dyn crate::export::Exporter>, Error> {
        let mut cfg = self.config.exporters.get(name).cloned().unwrap_or_default();
        if name == "registry" && !cfg.contains_key("max_concurrent_uploads") {
            let n = self.config.max_concurrent_downloads as i64;
            cfg.insert("max_concurrent_uploads".into(), toml::Value::Integer(n));
        }
        Ok(self.catalog.exporter(name, &cfg)?)
    }

    pub(crate) fn open_cache(
        &self,
        no_cache: bool,
        output: &Path,
    ) -> Result<(Arc<dyn CacheBackend>, Option<crate::export::temp::Dir>), Error> {
        if no_cache {
            // A throwaway local cache beside the output, not synced: it
            // goes when the command ends. (A directory whose path is not
            // UTF-8 cannot be a TOML string: then one in the temp dir.)
            const PREFIX: &str = ".imgpull-nocache-";
            let mut tmp = crate::export::temp::Dir::beside(output, Some(PREFIX))?;
            if tmp.path().to_str().is_none() {
                tmp = crate::export::temp::Dir::new_in(&std::env::temp_dir(), PREFIX)?;
            }
            let dir = tmp.path().to_str().ok_or_else(|| {
                Error::Usage("--no-cache needs a temporary directory with a UTF-8 path".into())
            })?;
            let mut cfg = PluginConfig::new();
            cfg.insert("dir".into(), toml::Value::String(dir.to_string()));
            cfg.insert("durable".into(), toml::Value::Boolean(false));
            return Ok((self.catalog.cache("local", &cfg)?, Some(tmp)));
        }
        let name = &self.config.cache;
        let mut cfg = self.config.caches.get(name).cloned().unwrap_or_default();
        if name == "object-store" && !cfg.contains_key("local") {
            // Its local tier is the `local` cache, as configured (and
            // as `--cache-dir` sets it).
            let local = self.config.caches.get("local").cloned().unwrap_or_default();
            cfg.insert("local".into(), toml::Value::Table(local));
        }
        let cache = self.catalog.cache(name, &cfg)?;
        for n in cache.notices() {
            self.reporter.warn(&n);
        }
        Ok((cache, None))
    }
}

/// The engine's registry access for exporters: the origin of a reference's
/// registry, connected as a pull connects to it.
pub struct Registries<'a> {
    pub engine: &'a Engine,
    /// `--username`/`--password-stdin`, asked first as for pulls.
    pub cli: Option<&'a dyn CredentialProvider>,
}

#[async_trait::async_trait]
impl crate::export::Registries for Registries<'_> {
    async fn client(
        &self,
        reference: &Reference,
    ) -> Result<RegistryClient, crate::export::ExportError> {
        use crate::export::ExportError;
        let failed = |e: Error| match e {
            Error::Registry(r) => ExportError::Registry(r),
            other => ExportError::Invalid(other.to_string()),
        };
        let quirks = self.engine.quirks(reference).map_err(failed)?;
        let reg_cfg = self.engine.config.registry(&reference.registry);
        self.engine
            .origin(reference, quirks.as_ref(), self.cli, &reg_cfg)
            .await
            .map_err(failed)
    }
}
