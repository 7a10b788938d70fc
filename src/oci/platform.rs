//! Platforms: `os[(os.version)]/arch[/variant]`, normalized and matched the
//! way containerd does.
//!
//! - [`Platform::parse`] folds aliases (`aarch64` -> `arm64`, `armhf` ->
//!   `arm/v7`, `x86_64` -> `amd64`, …) and is case-insensitive.
//! - [`Matcher`] ranks index entries for a wanted platform: the exact
//!   (normalized) match first, then compatible *older* variants
//!   (`arm/v7` takes `arm/v6`, then `arm/v5`; `amd64/v3` takes `v2`, then
//!   `v1`), never a newer one.

mod matcher;

pub use matcher::Matcher;

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        default,
        rename = "os.version",
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid platform {0:?}: expected os/arch[/variant], e.g. linux/arm64 or linux/arm/v7")]
pub struct PlatformParseError(pub String);

impl Platform {
    pub fn new(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
            variant: variant.map(str::to_string),
            os_version: None,
        }
    }

    /// The platform of this machine, as docker picks by default.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "powerpc64" => "ppc64",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            "mips64" if cfg!(target_endian = "little") => "mips64le",
            "loongarch64" => "loong64",
            other => other,
        };
        // 32-bit ARM: the variant this binary was built for (v7 by default).
        let variant = match arch {
            "arm" if cfg!(target_feature = "v7") => Some("v7"),
            "arm" if cfg!(target_feature = "v6") => Some("v6"),
            _ => None,
        };
        Platform::new("linux", arch, variant).normalized()
    }

    /// Parse `os[(os.version)]/arch[/variant]`, aliases normalized.
    pub fn parse(s: &str) -> Result<Platform, PlatformParseError> {
        let err = || PlatformParseError(s.to_string());
        let trimmed = s.trim();
        let parts: Vec<&str> = trimmed.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) || !(2..=3).contains(&parts.len()) {
            return Err(err());
        }
        let (os, os_version) = match parts[0].split_once('(') {
            Some((os, rest)) => {
                let v = rest
                    .strip_suffix(')')
                    .filter(|v| !v.is_empty())
                    .ok_or_else(err)?;
                (os, Some(v.to_string()))
            }
            None => (parts[0], None),
        };
        let ok = |p: &str| {
            p.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
        };
        if !ok(os) || !parts[1..].iter().all(|p| ok(p)) {
            return Err(err());
        }
        let mut p = Platform::new(
            &os.to_ascii_lowercase(),
            &parts[1].to_ascii_lowercase(),
            parts.get(2).map(|v| v.to_ascii_lowercase()).as_deref(),
        );
        p.os_version = os_version;
        Ok(p.normalized())
    }

    /// Aliases folded as containerd does: `x86_64` -> `amd64` (`v1` is no
    /// variant), `aarch64`/`arm64/v8` -> `arm64`, `armhf` -> `arm/v7`,
    /// `armel` -> `arm/v6`, `arm` -> `arm/v7`, `i386`/`i686` -> `386`.
    pub fn normalized(&self) -> Platform {
        let arch_lower = self.architecture.to_ascii_lowercase();
        let variant_lower = self.variant.as_deref().map(str::to_ascii_lowercase);
        let variant = variant_lower.as_deref().filter(|v| !v.is_empty());
        let vee = |v: &str| {
            if v.starts_with('v') {
                v.to_string()
            } else {
                format!("v{v}")
            }
        };
        let (arch, variant): (&str, Option<String>) = match (arch_lower.as_str(), variant) {
            ("x86_64" | "x86-64" | "amd64", v) => ("amd64", v.map(vee).filter(|v| v != "v1")),
            ("aarch64" | "arm64", v) => (
                "arm64",
                v.map(vee).filter(|v| !matches!(v.as_str(), "v8" | "v8.0")),
            ),
            ("armhf", _) => ("arm", Some("v7".into())),
            ("armel", _) => ("arm", Some("v6".into())),
            ("arm", None) => ("arm", Some("v7".into())),
            ("arm", Some(v)) => ("arm", Some(vee(v))),
            ("i386" | "i686" | "386", _) => ("386", None),
            (a, v) => (a, v.map(str::to_string)),
        };
        let os = self.os.to_ascii_lowercase();
        Platform {
            os: if os == "macos" { "darwin".into() } else { os },
            architecture: arch.to_string(),
            variant,
            os_version: self.os_version.clone(),
        }
    }

    /// Filename-safe form: `linux_arm_v7`, `windows_10.0.20348_amd64`.
    pub fn slug(&self) -> String {
        self.to_string().replace(['/', '('], "_").replace(')', "")
    }
}

/// `os[(os.version)]/arch[/variant]`, the form `--platform` accepts.
impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.os)?;
        if let Some(v) = &self.os_version {
            write!(f, "({v})")?;
        }
        write!(f, "/{}", self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Which platforms a pull wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Every image the index offers.
    All,
    /// These, in order (at least one).
    List(Vec<Platform>),
}

impl Selection {
    /// Parse `--platform` values: each a comma list, or `all`.
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<Option<Selection>, PlatformParseError> {
        let mut list: Vec<Platform> = Vec::new();
        let mut all = false;
        for v in values {
            for item in v
                .as_ref()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                if item.eq_ignore_ascii_case("all") {
                    all = true;
                } else {
                    let p = Platform::parse(item)?;
                    if !list.contains(&p) {
                        list.push(p);
                    }
                }
            }
        }
        Ok(match (all, list.is_empty()) {
            (true, _) => Some(Selection::All),
            (false, true) => None,
            (false, false) => Some(Selection::List(list)),
        })
    }

    /// For default output names: `linux_arm64`, `linux_amd64_linux_arm64`, `all`.
    pub fn slug(&self) -> String {
        match self {
            Selection::All => "all".into(),
            Selection::List(l) => l.iter().map(Platform::slug).collect::<Vec<_>>().join("_"),
        }
    }
}

#[cfg(test)]
mod tests;
