//! The plugin catalog: every plugin registers a [`Plugin`] with
//! `inventory::submit!`; [`Catalog::builtin`] reads them once into a sorted
//! map. Order of use comes from configuration, never from registration.

use crate::cache::CacheBackend;
use crate::credentials::CredentialProvider;
use crate::export::Exporter;
use crate::registry::quirks::RegistryQuirks;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A plugin's own TOML table (its section of the config, or `{}`).
pub type PluginConfig = toml::Table;

/// The four kinds of plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Credentials,
    Registry,
    Cache,
    Exporter,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Credentials => "credentials",
            Kind::Registry => "registries",
            Kind::Cache => "caches",
            Kind::Exporter => "exporters",
        })
    }
}

/// How to build a plugin of each kind from its TOML table.
#[derive(Clone, Copy)]
pub enum Build {
    Credentials(fn(&PluginConfig) -> Result<Box<dyn CredentialProvider>, PluginError>),
    Registry {
        /// Whether this adapter claims a registry name without `kind` in
        /// config (`docker.io` for dockerhub). The `generic` one claims none
        /// and is the fallback.
        claims: fn(&str) -> bool,
        build: fn(&PluginConfig) -> Result<Arc<dyn RegistryQuirks>, PluginError>,
    },
    Cache(fn(&PluginConfig) -> Result<Arc<dyn CacheBackend>, PluginError>),
    Exporter(fn(&PluginConfig) -> Result<Arc<dyn Exporter>, PluginError>),
}

/// One registration: plain data and a constructor.
pub struct Plugin {
    pub name: &'static str,
    pub summary: &'static str,
    pub build: Build,
}

impl Plugin {
    pub fn kind(&self) -> Kind {
        match self.build {
            Build::Credentials(_) => Kind::Credentials,
            Build::Registry { .. } => Kind::Registry,
            Build::Cache(_) => Kind::Cache,
            Build::Exporter(_) => Kind::Exporter,
        }
    }
}

inventory::collect!(Plugin);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PluginError {
    #[error("unknown {kind} plugin {name:?}; known: {}", known.join(", "))]
    Unknown {
        kind: Kind,
        name: String,
        known: Vec<String>,
    },
    #[error("two {kind} plugins are named {name:?}")]
    Duplicate { kind: Kind, name: String },
    #[error("{kind} plugin {name:?}: {message}")]
    Invalid {
        kind: Kind,
        name: String,
        message: String,
    },
}

/// For plugins that take no options: refuse any key (besides `provider`).
pub fn no_options(kind: Kind, name: &str, cfg: &PluginConfig) -> Result<(), PluginError> {
    match cfg.keys().find(|k| *k != "provider") {
        Some(k) => Err(PluginError::invalid(
            kind,
            name,
            format!("unknown key `{k}` (it takes none)"),
        )),
        None => Ok(()),
    }
}

impl PluginError {
    pub fn invalid(kind: Kind, name: &str, message: impl Into<String>) -> PluginError {
        PluginError::Invalid {
            kind,
            name: name.to_string(),
            message: message.into(),
        }
    }
}

/// Every registered plugin, by kind then name.
pub struct Catalog {
    plugins: BTreeMap<(Kind, &'static str), &'static Plugin>,
}

impl Catalog {
    /// The plugins linked into this binary.
    pub fn builtin() -> Result<Catalog, PluginError> {
        Catalog::from_plugins(inventory::iter::<Plugin>)
    }

    pub fn from_plugins(
        plugins: impl IntoIterator<Item = &'static Plugin>,
    ) -> Result<Catalog, PluginError> {
        let mut map = BTreeMap::new();
        for p in plugins {
            if map.insert((p.kind(), p.name), p).is_some() {
                return Err(PluginError::Duplicate {
                    kind: p.kind(),
                    name: p.name.to_string(),
                });
            }
        }
        Ok(Catalog { plugins: map })
    }

    /// All plugins, sorted by kind then name.
    pub fn iter(&self) -> impl Iterator<Item = &'static Plugin> + '_ {
        self.plugins.values().copied()
    }

    pub fn get(&self, kind: Kind, name: &str) -> Result<&'static Plugin, PluginError> {
        self.plugins
            .iter()
            .find(|((k, n), _)| *k == kind && *n == name)
            .map(|(_, p)| *p)
            .ok_or_else(|| PluginError::Unknown {
                kind,
                name: name.to_string(),
                known: self.names(kind),
            })
    }

    pub fn names(&self, kind: Kind) -> Vec<String> {
        self.plugins
            .keys()
            .filter(|(k, _)| *k == kind)
            .map(|(_, n)| n.to_string())
            .collect()
    }

    pub fn credentials(
        &self,
        name: &str,
        cfg: &PluginConfig,
    ) -> Result<Box<dyn CredentialProvider>, PluginError> {
        match self.get(Kind::Credentials, name)?.build {
            Build::Credentials(f) => f(cfg),
            _ => unreachable!("kind checked by get"),
        }
    }

    pub fn cache(
        &self,
        name: &str,
        cfg: &PluginConfig,
    ) -> Result<Arc<dyn CacheBackend>, PluginError> {
        match self.get(Kind::Cache, name)?.build {
            Build::Cache(f) => f(cfg),
            _ => unreachable!("kind checked by get"),
        }
    }

    pub fn exporter(
        &self,
        name: &str,
        cfg: &PluginConfig,
    ) -> Result<Arc<dyn Exporter>, PluginError> {
        match self.get(Kind::Exporter, name)?.build {
            Build::Exporter(f) => f(cfg),
            _ => unreachable!("kind checked by get"),
        }
    }

    /// The registry adapter for `registry`: the one named by `kind` when
    /// given, else the first (by name) that claims it, else `generic`.
    pub fn quirks(
        &self,
        registry: &str,
        kind: Option<&str>,
        cfg: &PluginConfig,
    ) -> Result<Arc<dyn RegistryQuirks>, PluginError> {
        let plugin = match kind {
            Some(k) => self.get(Kind::Registry, k)?,
            None => match self.iter().find(|p| match p.build {
                Build::Registry { claims, .. } => claims(registry),
                _ => false,
            }) {
                Some(p) => p,
                None => self.get(Kind::Registry, "generic")?,
            },
        };
        match plugin.build {
            Build::Registry { build, .. } => build(cfg),
            _ => unreachable!("kind checked by get"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(_: &PluginConfig) -> Result<Arc<dyn CacheBackend>, PluginError> {
        Err(PluginError::invalid(Kind::Cache, "x", "fake"))
    }
    static A: Plugin = Plugin {
        name: "a",
        summary: "",
        build: Build::Cache(fake),
    };
    static A2: Plugin = Plugin {
        name: "a",
        summary: "",
        build: Build::Cache(fake),
    };

    #[test]
    fn duplicates_are_rejected() {
        let e = Catalog::from_plugins([&A, &A2]).err().unwrap();
        assert_eq!(
            e,
            PluginError::Duplicate {
                kind: Kind::Cache,
                name: "a".into()
            }
        );
    }

    #[test]
    fn unknown_names_list_known_ones() {
        let c = Catalog::builtin().unwrap();
        let e = c.exporter("tarball", &PluginConfig::new()).err().unwrap();
        let msg = e.to_string();
        assert!(
            msg.contains("unknown exporters plugin \"tarball\""),
            "{msg}"
        );
        assert!(msg.contains("docker-archive"), "{msg}");
    }
}
