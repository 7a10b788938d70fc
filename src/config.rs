//! Configuration, layered with figment:
//! built-in defaults < `/etc/imgpull/config.toml` < `$XDG_CONFIG_HOME/imgpull/config.toml`
//! (or `~/.config/…`) < `./imgpull.toml` < `--config FILE` < `IMGPULL_*` env
//! (top-level keys only) < command-line flags that were given.
//!
//! Registry hostnames hold dots, which figment key paths cannot address, so
//! `registries` is loaded as whole tables and never overridden from env.

use crate::util::units::{Size, Span};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Top-level keys that `IMGPULL_<KEY>` may override.
const ENV_KEYS: [&str; 14] = [
    "max_layer_uncompressed",
    "timeout",
    "max_concurrent_downloads",
    "retries",
    "stall_timeout",
    "min_speed",
    "chunk_size",
    "max_chunks",
    "limit_rate",
    "sync_output",
    "cache",
    "export",
    "ca_file",
    "platform",
];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Layers downloaded at once (the seed's default: 3).
    pub max_concurrent_downloads: usize,
    /// Tries per request on connect errors, resets, timeouts and
    /// 408/429/5xx (exponential backoff with jitter; 1 = no retry).
    pub retries: u32,
    /// A body that sends no byte for this long (`30s`, `2m`) counts as a
    /// failed attempt: the download resumes with Range. Also bounds a wait
    /// for response headers.
    #[serde(default = "default_stall_timeout")]
    pub stall_timeout: Span,
    /// A body slower than this (bytes per second, averaged over a
    /// `stall_timeout` window) counts as a failed attempt too; `0` turns
    /// the rule off. Lowered automatically under `limit_rate`.
    #[serde(default = "default_min_speed")]
    pub min_speed: Size,
    /// Blobs bigger than this are fetched as parallel ranges of this size.
    #[serde(default = "default_chunk_size")]
    pub chunk_size: Size,
    /// Ranges of one blob fetched at once (1: never split a blob).
    #[serde(default = "default_max_chunks")]
    pub max_chunks: usize,
    /// A cap on the total download rate, bytes per second (`10M`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_rate: Option<Size>,
    /// The most bytes one layer may uncompress to in outputs that
    /// uncompress (rootfs, uncompressed and legacy docker-archives): a size,
    /// `auto` (100x the compressed size, at least 1 GiB) or `none`.
    #[serde(default)]
    pub max_layer_uncompressed: crate::layer::Limit,
    /// Give up on a whole command after this long; none when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Span>,
    /// fsync a tar output (and its directory) when it is renamed into
    /// place, so it survives a power cut too. Off (as in `docker save` and
    /// skopeo): a failed or interrupted pull leaves no complete-looking file
    /// either way, and on a slow disk the fsync can double a pull. The
    /// cache, and blobs copied into an OCI layout, are always synced.
    #[serde(default)]
    pub sync_output: bool,
    /// Cache backend plugin name.
    pub cache: String,
    /// Exporter plugin name.
    pub export: String,
    /// Extra CA bundle (PEM) trusted for every registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Default platform (`os/arch[/variant]`); the host's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Per-backend tables: `[caches.local] dir = "…"`.
    #[serde(default)]
    pub caches: BTreeMap<String, toml::Table>,
    /// Per-exporter tables.
    #[serde(default)]
    pub exporters: BTreeMap<String, toml::Table>,
    /// Per-registry settings, keyed by registry name as in image references.
    #[serde(default)]
    pub registries: BTreeMap<String, RegistryConfig>,
    /// Things to tell the person about the files read (not a key).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Registry adapter plugin; chosen by host when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Allow plain HTTP and unverified TLS.
    #[serde(default)]
    pub insecure: bool,
    /// Extra CA bundle (PEM) for this registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Mirrors (`https://host[:port]`, `http://…` for a plain-HTTP one),
    /// asked in order before the origin.
    #[serde(default)]
    pub mirrors: Vec<String>,
    /// Never contact the origin (protect a Docker Hub quota).
    #[serde(default)]
    pub mirror_only: bool,
    /// Ask mirrors for tags too (`false`: only for content by digest).
    #[serde(default = "yes")]
    pub mirror_tags: bool,
    /// Add `?ns=REGISTRY` to mirror requests (containerd style).
    #[serde(default)]
    pub mirror_ns: bool,
    /// Credential providers asked in order: `{ provider = "static", … }`.
    #[serde(default)]
    pub credentials: Vec<toml::Table>,
    /// The registry adapter's own options (`[registries."HOST".quirks]`);
    /// the built-in adapters take none.
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    pub quirks: toml::Table,
}

fn yes() -> bool {
    true
}

impl Default for RegistryConfig {
    fn default() -> RegistryConfig {
        RegistryConfig {
            kind: None,
            insecure: false,
            ca_file: None,
            mirrors: Vec::new(),
            mirror_only: false,
            mirror_tags: true,
            mirror_ns: false,
            credentials: Vec::new(),
            quirks: toml::Table::new(),
        }
    }
}

/// Credentials entries print with every value but `provider` and
/// `username` redacted: they may hold inline passwords and tokens.
impl std::fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let creds: Vec<BTreeMap<&str, String>> = self
            .credentials
            .iter()
            .map(|t| {
                t.iter()
                    .map(|(k, v)| {
                        let shown = match k.as_str() {
                            "provider" | "username" => v.to_string(),
                            _ => "<redacted>".to_string(),
                        };
                        (k.as_str(), shown)
                    })
                    .collect()
            })
            .collect();
        f.debug_struct("RegistryConfig")
            .field("kind", &self.kind)
            .field("insecure", &self.insecure)
            .field("ca_file", &self.ca_file)
            .field("mirrors", &self.mirrors)
            .field("mirror_only", &self.mirror_only)
            .field("credentials", &creds)
            .field("quirks", &self.quirks.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn default_stall_timeout() -> Span {
    Span(std::time::Duration::from_secs(60))
}

fn default_min_speed() -> Size {
    Size(1024)
}

fn default_chunk_size() -> Size {
    Size(64 << 20)
}

fn default_max_chunks() -> usize {
    4
}

impl Config {
    /// The minimum body speed in bytes per second (0: none), lowered
    /// below what `limit_rate` leaves each stream (a capped pull is slow on
    /// purpose).
    pub fn min_speed(&self) -> u64 {
        let floor = self.min_speed.0;
        match self.limit_rate.map(|l| l.0) {
            Some(limit) => {
                let streams = (self.max_concurrent_downloads * self.max_chunks).max(1) as u64;
                floor.min(limit / streams / 2)
            }
            None => floor,
        }
    }

    /// `max_layer_uncompressed`.
    pub fn layer_limit(&self) -> crate::layer::Limit {
        self.max_layer_uncompressed
    }

    /// `timeout`: none when unset.
    pub fn timeout(&self) -> Option<std::time::Duration> {
        self.timeout.map(|t| t.0)
    }

    /// `stall_timeout`.
    pub fn stall_timeout(&self) -> std::time::Duration {
        self.stall_timeout.0
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_concurrent_downloads: 3,
            retries: 5,
            stall_timeout: default_stall_timeout(),
            min_speed: default_min_speed(),
            max_layer_uncompressed: crate::layer::Limit::Auto,
            timeout: None,
            chunk_size: default_chunk_size(),
            max_chunks: default_max_chunks(),
            limit_rate: None,
            sync_output: false,
            cache: "local".into(),
            export: "docker-archive".into(),
            ca_file: None,
            platform: None,
            caches: BTreeMap::new(),
            exporters: BTreeMap::new(),
            registries: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    Missing(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Values from command-line flags; only those given are `Some`.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_downloads: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunk_size: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_chunks: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_rate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_output: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_layer_uncompressed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// `--devices`: applied to `exporters.rootfs.devices`.
    #[serde(skip)]
    pub devices: bool,
    /// `--cache-dir`: not a top-level key; applied to `caches.local.dir`.
    #[serde(skip)]
    pub cache_dir: Option<PathBuf>,
    /// `--layer-format`: applied to `exporters.docker-archive.layer_format`.
    #[serde(skip)]
    pub layer_format: Option<String>,
    /// `--legacy`: applied to `exporters.docker-archive.legacy`.
    #[serde(skip)]
    pub legacy: bool,
    /// `--upload-chunk-size`: applied to `exporters.registry.chunk_size`.
    #[serde(skip)]
    pub upload_chunk_size: Option<String>,
    /// `--max-concurrent-uploads`: `exporters.registry.max_concurrent_uploads`.
    #[serde(skip)]
    pub max_concurrent_uploads: Option<usize>,
}

/// The config files read, lowest priority first (those that exist).
pub fn default_files() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("/etc/imgpull/config.toml")];
    let user_dir = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(d) = user_dir {
        files.push(d.join("imgpull").join("config.toml"));
    }
    files.push(PathBuf::from("imgpull.toml"));
    files
}

impl Config {
    /// Load every layer. `explicit` (`--config`) must exist.
    pub fn load(explicit: Option<&Path>, flags: &Overrides) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        let mut read = Vec::new();
        for f in default_files() {
            if f.is_file() {
                check_toml(&f)?;
                fig = fig.merge(Toml::file(&f));
                read.push(f);
            }
        }
        if let Some(f) = explicit {
            if !f.is_file() {
                return Err(ConfigError::Missing(f.to_path_buf()));
            }
            check_toml(f)?;
            fig = fig.merge(Toml::file(f));
            read.push(f.to_path_buf());
        }
        fig = fig.merge(Env::prefixed("IMGPULL_").only(&ENV_KEYS));
        fig = fig.merge(Serialized::defaults(flags));
        if let Some(dir) = &flags.cache_dir {
            fig = fig.merge(Serialized::default("caches.local.dir", dir));
        }
        if let Some(f) = &flags.layer_format {
            fig = fig.merge(Serialized::default(
                "exporters.docker-archive.layer_format",
                f,
            ));
        }
        if flags.legacy {
            fig = fig.merge(Serialized::default("exporters.docker-archive.legacy", true));
        }
        if let Some(c) = &flags.upload_chunk_size {
            fig = fig.merge(Serialized::default("exporters.registry.chunk_size", c));
        }
        if let Some(n) = flags.max_concurrent_uploads {
            fig = fig.merge(Serialized::default(
                "exporters.registry.max_concurrent_uploads",
                n,
            ));
        }
        if flags.devices {
            fig = fig.merge(Serialized::default("exporters.rootfs.devices", true));
        }
        let mut cfg = Config::extract(fig)?;
        cfg.warnings = read
            .iter()
            .filter_map(|f| exposed_secret_warning(f))
            .collect();
        Ok(cfg)
    }

    /// Parse one TOML file on top of the defaults (for tests and `--config`
    /// validation).
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        if !path.is_file() {
            return Err(ConfigError::Missing(path.to_path_buf()));
        }
        check_toml(path)?;
        Config::extract(
            Figment::from(Serialized::defaults(Config::default())).merge(Toml::file(path)),
        )
    }

    fn extract(fig: Figment) -> Result<Config, ConfigError> {
        let mut cfg: Config = fig
            .extract()
            .map_err(|e| ConfigError::Invalid(describe(e)))?;
        if cfg.stall_timeout.0.is_zero() {
            return Err(ConfigError::Invalid(
                "stall_timeout must be above zero".into(),
            ));
        }
        for (key, value, min, least) in [
            ("chunk_size", Some(cfg.chunk_size), 1 << 20, "1MiB"),
            ("limit_rate", cfg.limit_rate, 1024, "1KiB"),
        ] {
            if let Some(Size(n)) = value.filter(|v| v.0 < min) {
                return Err(ConfigError::Invalid(format!(
                    "{key} = {n} bytes: at least {least}"
                )));
            }
        }
        if !(1..=16).contains(&cfg.max_chunks) {
            return Err(ConfigError::Invalid(format!(
                "max_chunks = {}: between 1 and 16",
                cfg.max_chunks
            )));
        }
        // Paths written in a config file are relative to that file.
        if let Ok(v) = fig.find_value("ca_file") {
            cfg.ca_file = relative_to_source(&fig, &v).or(cfg.ca_file);
        }
        if let Ok(figment::value::Value::Dict(_, regs)) = fig.find_value("registries") {
            for (host, reg) in cfg.registries.iter_mut() {
                let v = regs
                    .get(host)
                    .and_then(|r| r.as_dict())
                    .and_then(|d| d.get("ca_file"));
                if let Some(p) = v.and_then(|v| relative_to_source(&fig, v)) {
                    reg.ca_file = Some(p);
                }
            }
        }
        if !(1..=64).contains(&cfg.max_concurrent_downloads) {
            return Err(ConfigError::Invalid(format!(
                "max_concurrent_downloads must be 1 to 64, got {}",
                cfg.max_concurrent_downloads
            )));
        }
        Ok(cfg)
    }

    /// The settings for `registry`, or the defaults.
    pub fn registry(&self, registry: &str) -> RegistryConfig {
        self.registries.get(registry).cloned().unwrap_or_default()
    }
}

/// Refuse a file that is not TOML, saying where, but never quoting it: the
/// line may hold a password.
fn check_toml(path: &Path) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?;
    let Err(e) = text.parse::<toml::Table>() else {
        return Ok(());
    };
    let at = e.span().map(|s| s.start).unwrap_or(0).min(text.len());
    let line = text[..at].matches('\n').count() + 1;
    let column = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    Err(ConfigError::Invalid(format!(
        "{}: not valid TOML at line {line}, column {column}: {}",
        path.display(),
        e.message()
    )))
}

/// A figment error as text that names the key and the file but no value
/// (a value in a config file may be a secret).
pub(crate) fn describe(e: figment::Error) -> String {
    use figment::error::{Actual, Kind};
    fn kind_of(a: &Actual) -> &str {
        match a {
            Actual::Bool(_) => "a boolean",
            Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
            Actual::Float(_) => "a float",
            Actual::Char(_) | Actual::Str(_) => "a string",
            Actual::Bytes(_) => "bytes",
            Actual::Seq => "an array",
            Actual::Map => "a table",
            // What our own types say they could not read (never the value).
            Actual::Other(what) => what.as_str(),
            _ => "a value of another kind",
        }
    }
    e.into_iter()
        .map(|e| {
            let what = match &e.kind {
                Kind::InvalidType(a, expected) | Kind::InvalidValue(a, expected) => {
                    format!("found {}, expected {expected}", kind_of(a))
                }
                Kind::InvalidLength(n, expected) => format!("{n} items, expected {expected}"),
                Kind::UnknownVariant(_, known) => {
                    format!("not one of the known values ({})", known.join(", "))
                }
                Kind::UnknownField(name, known) => {
                    format!("unknown key `{name}` (known: {})", known.join(", "))
                }
                Kind::MissingField(name) => format!("missing key `{name}`"),
                Kind::DuplicateField(name) => format!("key `{name}` given twice"),
                Kind::Message(_) => "invalid value".to_string(),
                other => describe_other(other).to_string(),
            };
            let key = e.path.join(".");
            let source = e
                .metadata
                .as_ref()
                .and_then(|m| m.source.as_ref())
                .map(|s| format!(" (in {s})"))
                .unwrap_or_default();
            match key.is_empty() {
                true => format!("{what}{source}"),
                false => format!("`{key}`: {what}{source}"),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn describe_other(kind: &figment::error::Kind) -> &'static str {
    use figment::error::Kind;
    match kind {
        Kind::ISizeOutOfRange(_) | Kind::USizeOutOfRange(_) => "a number out of range",
        Kind::Unsupported(_) | Kind::UnsupportedKey(..) => "a value of a kind not supported here",
        _ => "invalid",
    }
}

/// A warning when `path` holds an inline `password` or `token` and others
/// than its owner may read it.
pub fn exposed_secret_warning(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode();
        if mode & 0o044 == 0 {
            return None;
        }
        let table: toml::Table = std::fs::read_to_string(path).ok()?.parse().ok()?;
        let inline = table
            .get("registries")?
            .as_table()?
            .values()
            .filter_map(|r| r.get("credentials")?.as_array())
            .flatten()
            .any(|c| c.get("password").is_some() || c.get("token").is_some());
        inline.then(|| {
            format!(
                "{} holds a plain password or token and is readable by others (mode {:o}); \
                 chmod 600 it, or use password_env / password_file",
                path.display(),
                mode & 0o777
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// A string path value, joined to the directory of the file it came from
/// (`None` when it is absolute or did not come from a file).
fn relative_to_source(fig: &Figment, v: &figment::value::Value) -> Option<PathBuf> {
    let path = PathBuf::from(v.as_str()?);
    if path.is_absolute() {
        return None;
    }
    let meta = fig.get_metadata(v.tag())?;
    match &meta.source {
        Some(figment::Source::File(file)) => Some(file.parent()?.join(path)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/imgpull.example.toml");
        let cfg = Config::from_file(&path).unwrap();
        assert_eq!(cfg.max_concurrent_downloads, 3);
        assert!(!cfg.sync_output);
        assert!(cfg.registries.contains_key("harbor.example.com"));
        assert!(cfg.caches.contains_key("local"));
    }

    /// Sizes and durations are read once into their types, as strings or
    /// numbers; a value that is not one names the key, never the value.
    #[test]
    fn sizes_and_durations_are_typed_when_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "chunk_size = \"8MiB\"\nstall_timeout = 30\ntimeout = \"2m\"\nlimit_rate = \"10M\"\n\
             max_layer_uncompressed = \"none\"\nmin_speed = 0\n",
        )
        .unwrap();
        let cfg = Config::from_file(&p).unwrap();
        assert_eq!(cfg.chunk_size, Size(8 << 20));
        assert_eq!(cfg.stall_timeout(), std::time::Duration::from_secs(30));
        assert_eq!(cfg.timeout(), Some(std::time::Duration::from_secs(120)));
        assert_eq!(cfg.limit_rate, Some(Size(10_000_000)));
        assert_eq!(cfg.layer_limit(), crate::layer::Limit::Unlimited);
        assert_eq!(cfg.min_speed(), 0);
        for (text, key) in [
            ("chunk_size = \"lots-of-it\"\n", "`chunk_size`"),
            ("stall_timeout = \"soon-ish\"\n", "`stall_timeout`"),
            (
                "max_layer_uncompressed = \"huge-ish\"\n",
                "`max_layer_uncompressed`",
            ),
            ("limit_rate = \"10\"\n", "limit_rate"),
            ("stall_timeout = 0\n", "stall_timeout"),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = Config::from_file(&p).unwrap_err().to_string();
            assert!(
                e.contains(key) && !e.contains("-ish") && !e.contains("lots"),
                "{e}"
            );
        }
        // The defaults survive a round trip through figment.
        let d = Config::default();
        assert_eq!(d.chunk_size, Size(64 << 20));
        assert_eq!(d.layer_limit(), crate::layer::Limit::Auto);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "max_concurent_downloads = 3\n").unwrap();
        let e = Config::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("max_concurent_downloads"), "{e}");
        std::fs::write(
            &p,
            "[registries.\"a.b:5000\"]\ninsecure = true\nkind = \"generic\"\n",
        )
        .unwrap();
        let cfg = Config::from_file(&p).unwrap();
        assert!(cfg.registry("a.b:5000").insecure);
        std::fs::write(&p, "sync_output = true\n").unwrap();
        assert!(Config::from_file(&p).unwrap().sync_output);
        std::fs::write(&p, "max_concurrent_downloads = 0\n").unwrap();
        assert!(Config::from_file(&p).is_err());
        std::fs::write(
            &p,
            "ca_file = \"ca.pem\"\n[registries.\"h:1\"]\nca_file = \"/abs.pem\"\n",
        )
        .unwrap();
        let cfg = Config::from_file(&p).unwrap();
        assert_eq!(
            cfg.ca_file,
            Some(dir.path().join("ca.pem")),
            "relative to the file"
        );
        assert_eq!(cfg.registry("h:1").ca_file, Some(PathBuf::from("/abs.pem")));
    }

    #[test]
    fn errors_never_quote_values() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        // A type error on a value, and a line that does not parse.
        std::fs::write(&p, "retries = \"alice:s3cret\"\n").unwrap();
        let e = Config::from_file(&p).unwrap_err().to_string();
        assert!(
            !e.contains("s3cret") && e.contains("retries") && e.contains("a string"),
            "{e}"
        );
        std::fs::write(
            &p,
            "[registries.\"h\"]\ncredentials = [{ provider = \"static\", password = \"s3cret }]\n",
        )
        .unwrap();
        let e = Config::from_file(&p).unwrap_err().to_string();
        assert!(!e.contains("s3cret") && e.contains("line 2"), "{e}");
        std::fs::write(&p, "[registries.\"h\"]\nkind = 7\ncredentials = [{ provider = \"static\", password = \"s3cret\" }]\n").unwrap();
        let e = Config::from_file(&p).unwrap_err().to_string();
        assert!(!e.contains("s3cret") && e.contains("kind"), "{e}");
    }

    #[test]
    fn debug_redacts_inline_secrets() {
        let cfg: Config = toml::from_str(
            "max_concurrent_downloads = 3\nretries = 5\ncache = \"local\"\nexport = \"docker-archive\"\n[registries.\"h\"]\ncredentials = [{ provider = \"static\", username = \"u\", password = \"hunter2\" }]\n",
        )
        .unwrap();
        let shown = format!("{cfg:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("<redacted>") && shown.contains("static"),
            "{shown}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn readable_inline_passwords_are_warned_about() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        let mode = |m| std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
        std::fs::write(&p, "[registries.\"h\"]\ncredentials = [{ provider = \"static\", username = \"u\", password = \"hunter2\" }]\n").unwrap();
        mode(0o644);
        let w = exposed_secret_warning(&p).unwrap();
        assert!(w.contains("chmod 600") && !w.contains("hunter2"), "{w}");
        mode(0o640);
        assert!(exposed_secret_warning(&p).is_some());
        mode(0o600);
        assert!(exposed_secret_warning(&p).is_none());
        std::fs::write(&p, "[registries.\"h\"]\ncredentials = [{ provider = \"static\", username = \"u\", password_env = \"X\" }]\n").unwrap();
        mode(0o644);
        assert!(exposed_secret_warning(&p).is_none());
    }
}
