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

/// The options of a plugin that takes none.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

/// The `build` of a registry adapter that takes no options: any key in its
/// table (`[registries."HOST".quirks]`) is refused, naming the adapter.
pub fn without_options<Q: RegistryQuirks + Default + 'static>(
    cfg: &PluginConfig,
) -> Result<Arc<dyn RegistryQuirks>, PluginError> {
    let quirks = Q::default();
    options::<NoOptions>(Kind::Registry, quirks.name(), cfg)?;
    Ok(Arc::new(quirks))
}

/// `cfg` read into the plugin's options `T`, a struct declared
/// `#[serde(deny_unknown_fields)]` whose fields are typed from the start
/// (sizes and durations as [`crate::util::units`] types). `provider` names
/// the plugin of a credentials entry and is not an option. An unknown key
/// or a value of the wrong type is an error naming the plugin and the key,
/// never the value (a table may hold a password).
pub fn options<T: serde::de::DeserializeOwned>(
    kind: Kind,
    name: &str,
    cfg: &PluginConfig,
) -> Result<T, PluginError> {
    let mut table = cfg.clone();
    table.remove("provider");
    figment::Figment::from(figment::providers::Serialized::defaults(table))
        .extract::<T>()
        .map_err(|e| PluginError::invalid(kind, name, crate::config::describe(e)))
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

    /// Every plugin table in the example config is accepted by its plugin.
    #[test]
    fn example_plugin_tables_build() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/imgpull.example.toml");
        let cfg = crate::config::Config::from_file(&path).unwrap();
        let catalog = Catalog::builtin().unwrap();
        for (name, table) in &cfg.caches {
            if cfg!(not(feature = "object-store")) && name == "object-store" {
                continue; // built without it
            }
            catalog.cache(name, table).unwrap();
        }
        for (name, table) in &cfg.exporters {
            catalog.exporter(name, table).unwrap();
        }
        for (host, reg) in &cfg.registries {
            catalog
                .quirks(host, reg.kind.as_deref(), &reg.quirks)
                .unwrap();
            for entry in &reg.credentials {
                let provider = entry["provider"].as_str().unwrap();
                catalog.credentials(provider, entry).unwrap();
            }
        }
    }

    /// Every plugin, of every kind, refuses a key it does not know, naming
    /// itself and the key; a value of the wrong type names the key and
    /// never shows the value.
    #[test]
    fn unknown_keys_name_the_plugin_and_the_key() {
        let c = Catalog::builtin().unwrap();
        let table = |s: &str| s.parse::<PluginConfig>().unwrap();
        let bad = table("no_such_key = \"x\"");
        for p in c.iter() {
            let e = match p.build {
                Build::Credentials(f) => f(&bad).err().map(|e| e.to_string()),
                Build::Registry { build, .. } => build(&bad).err().map(|e| e.to_string()),
                Build::Cache(f) => f(&bad).err().map(|e| e.to_string()),
                Build::Exporter(f) => f(&bad).err().map(|e| e.to_string()),
            };
            let e = e.unwrap_or_else(|| panic!("{} accepted an unknown key", p.name));
            assert!(e.contains(&format!("{:?}", p.name)), "{e}");
            assert!(e.contains("`no_such_key`"), "{e}");
        }
        let e = c
            .credentials("static", &table("username = \"u\"\npassword = 123456789"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("`password`") && !e.contains("123456789"), "{e}");
        let e = c
            .cache("local", &table("partial_max_age = \"soon\""))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("`partial_max_age`") && e.contains("7d"), "{e}");
        let e = c
            .exporter("docker-archive", &table("layer_format = \"zip\""))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("compressed, uncompressed"), "{e}");
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
