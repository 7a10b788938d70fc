//! One pull, start to finish: config -> reference -> quirks -> credentials
//! -> client -> resolve -> fetch -> export -> report.

use crate::cache::CacheBackend;
use crate::catalog::{Catalog, PluginConfig};
use crate::client::{ClientOptions, RegistryClient, RegistryError};
use crate::config::Config;
use crate::credentials::{resolve_chain, CredentialProvider};
use crate::digest::Digest;
use crate::error::Error;
use crate::export::ExportImage;
use crate::fetch::fetch_all;
use crate::platform::Platform;
use crate::progress::Reporter;
use crate::quirks::{Failure, RegistryQuirks};
use crate::reference::Reference;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What to pull and where to put it.
#[derive(Default)]
pub struct PullOptions {
    pub reference: Option<Reference>,
    /// `--platform`; the config's or the host's when `None`.
    pub platform: Option<Platform>,
    /// `--tag`: the name to write instead of the pulled one.
    pub tag: Option<Reference>,
    /// `-o`; a name built from the reference when `None`.
    pub output: Option<PathBuf>,
    /// Use a temporary cache, removed afterwards.
    pub no_cache: bool,
    /// Credentials from the command line, asked before the config's.
    pub cli_credentials: Option<Box<dyn CredentialProvider>>,
}

/// What a finished pull reports.
#[derive(Clone, Debug)]
pub struct PullReport {
    pub reference: Reference,
    pub manifest_digest: Digest,
    pub platform: Option<Platform>,
    pub layers: usize,
    pub cache_hits: usize,
    pub bytes_reused: u64,
    pub bytes_downloaded: u64,
    pub output: PathBuf,
    pub cache: String,
}

impl PullReport {
    /// The seed's line: `Cache hits: X/Y layers (P%), Data saved: N MB`.
    pub fn cache_line(&self) -> String {
        let pct = if self.layers == 0 {
            100.0
        } else {
            self.cache_hits as f64 * 100.0 / self.layers as f64
        };
        format!(
            "Cache hits: {}/{} layers ({pct:.1}%), Data saved: {:.1} MB",
            self.cache_hits,
            self.layers,
            self.bytes_reused as f64 / 1_048_576.0
        )
    }
}

pub struct Engine {
    config: Config,
    catalog: Catalog,
    reporter: Arc<dyn Reporter>,
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

    pub async fn pull(&self, opts: PullOptions) -> Result<PullReport, Error> {
        let reference = opts
            .reference
            .clone()
            .ok_or_else(|| Error::Usage("no image given".into()))?;
        let reg_cfg = self.config.registry(&reference.registry);
        let quirks = self.catalog.quirks(
            &reference.registry,
            reg_cfg.kind.as_deref(),
            &PluginConfig::new(),
        )?;
        let result = self.pull_with(&reference, &opts, quirks.as_ref()).await;
        result.map_err(|e| add_hint(e, quirks.as_ref(), &reference))
    }

    async fn pull_with(
        &self,
        reference: &Reference,
        opts: &PullOptions,
        quirks: &dyn RegistryQuirks,
    ) -> Result<PullReport, Error> {
        let exporter = self.catalog.exporter(
            &self.config.export,
            self.config
                .exporters
                .get(&self.config.export)
                .unwrap_or(&PluginConfig::new()),
        )?;
        let output = match &opts.output {
            Some(p) => p.clone(),
            None => PathBuf::from(default_output_name(reference, exporter.extension())),
        };
        let platform = match (&opts.platform, &self.config.platform) {
            (Some(p), _) => p.clone(),
            (None, Some(s)) => Platform::parse(s)?,
            (None, None) => Platform::host(),
        };
        let client = self
            .connect(reference, quirks, opts.cli_credentials.as_deref())
            .await?;
        let resolved = crate::resolve::resolve(&client, reference, &platform).await?;
        self.reporter.info(&format!(
            "resolved {reference} to {}{}",
            resolved.fetched.digest,
            resolved
                .platform
                .as_ref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default()
        ));

        // The temporary store for --no-cache lives beside the output so
        // later exporters can hardlink from it.
        let (cache, _tmp_guard) = self.open_cache(opts.no_cache, &output)?;
        let mut blobs = vec![resolved.manifest.config.clone()];
        blobs.extend(resolved.manifest.layers.iter().cloned());
        let outcomes = fetch_all(
            &client,
            &reference.repository,
            cache.as_ref(),
            &blobs,
            self.config.max_concurrent_downloads,
            self.reporter.as_ref(),
        )
        .await?;
        let layers = &outcomes[1..];

        let tag = match &opts.tag {
            Some(t) => Some(t.clone()),
            None if reference.digest.is_none() => Some(reference.clone()),
            None => None,
        };
        let image = ExportImage {
            reference: reference.clone(),
            tag,
            manifest_bytes: resolved.fetched.bytes.clone(),
            manifest_digest: resolved.fetched.digest.clone(),
            manifest_media_type: media_type_of(&resolved),
            manifest: resolved.manifest.clone(),
            platform: resolved.platform.clone(),
        };
        exporter.export(&[image], cache.as_ref(), &output).await?;

        Ok(PullReport {
            reference: reference.clone(),
            manifest_digest: resolved.fetched.digest.clone(),
            platform: resolved.platform.clone(),
            layers: layers.len(),
            cache_hits: layers.iter().filter(|o| o.cached).count(),
            bytes_reused: layers.iter().filter(|o| o.cached).map(|o| o.size).sum(),
            bytes_downloaded: outcomes.iter().filter(|o| !o.cached).map(|o| o.size).sum(),
            output,
            cache: cache.describe(),
        })
    }

    async fn connect(
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
                let chain = self.credential_chain(reference, &reg_cfg)?;
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
        };
        Ok(RegistryClient::connect(opts).await?)
    }

    fn credential_chain(
        &self,
        reference: &Reference,
        reg_cfg: &crate::config::RegistryConfig,
    ) -> Result<Vec<Box<dyn CredentialProvider>>, Error> {
        let mut chain = Vec::new();
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

    fn open_cache(
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

fn media_type_of(r: &crate::resolve::Resolved) -> String {
    let declared = r.fetched.media_type.split(';').next().unwrap_or("").trim();
    if !declared.is_empty() && declared != "application/json" {
        return declared.to_string();
    }
    r.manifest
        .media_type
        .clone()
        .unwrap_or_else(|| crate::manifest::media::OCI_MANIFEST.to_string())
}

/// `library_nginx_latest.tar`; non-Hub registries keep their host:
/// `127.0.0.1_5000_ns_app_1.tar`.
pub fn default_output_name(reference: &Reference, extension: Option<&str>) -> String {
    let mut name = if reference.registry == crate::reference::DOCKER_HUB {
        reference.repository.clone()
    } else {
        reference.name()
    };
    match (&reference.tag, &reference.digest) {
        (Some(t), _) => name.push_str(&format!("_{t}")),
        (None, Some(d)) => name.push_str(&format!("_{}_{}", d.algorithm_name(), d.hex())),
        (None, None) => {}
    }
    let mut name: String = name
        .chars()
        .map(|c| {
            if matches!(c, '/' | ':' | '[' | ']') {
                '_'
            } else {
                c
            }
        })
        .collect();
    if let Some(ext) = extension {
        name.push('.');
        name.push_str(ext);
    }
    name
}

fn add_hint(e: Error, quirks: &dyn RegistryQuirks, reference: &Reference) -> Error {
    let (status, anonymous) = match &e {
        Error::Registry(RegistryError::Unauthorized {
            credential_source, ..
        }) => (401, credential_source.is_none()),
        Error::Registry(RegistryError::NotFound { .. }) => (404, true),
        Error::Registry(RegistryError::RateLimited { .. }) => (429, true),
        _ => return e,
    };
    let failure = Failure {
        status,
        repository: &reference.repository,
        anonymous,
    };
    match quirks.hint(&failure) {
        Some(hint) => Error::Hinted {
            source: Box::new(e),
            hint,
        },
        None => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names() {
        let cases = [
            ("nginx", "library_nginx_latest.tar"),
            ("user/app:1", "user_app_1.tar"),
            ("127.0.0.1:5000/ns/app:1", "127.0.0.1_5000_ns_app_1.tar"),
            ("[::1]:5000/app:1", "___1__5000_app_1.tar"),
        ];
        for (input, want) in cases {
            let r: Reference = input.parse().unwrap();
            assert_eq!(default_output_name(&r, Some("tar")), want);
        }
    }
}
