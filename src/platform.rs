//! Platforms (`os/arch[/variant]`) and the host's default.

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
#[error("invalid platform {0:?}: expected os/arch[/variant], e.g. linux/arm64")]
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
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        let variant = match arch {
            "arm" => Some("v7"),
            _ => None,
        };
        Platform::new("linux", arch, variant)
    }

    /// Parse `os/arch[/variant]` with the common aliases normalized.
    pub fn parse(s: &str) -> Result<Platform, PlatformParseError> {
        let lower = s.trim().to_ascii_lowercase();
        let parts: Vec<&str> = lower.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) || !(2..=3).contains(&parts.len()) {
            return Err(PlatformParseError(s.to_string()));
        }
        let p = Platform::new(parts[0], parts[1], parts.get(2).copied());
        Ok(p.normalized())
    }

    /// Aliases folded the way containerd does (`aarch64` -> `arm64`,
    /// `arm64/v8` -> `arm64`, `arm` -> `arm/v7`, `x86_64` -> `amd64`).
    pub fn normalized(&self) -> Platform {
        let (arch, variant): (&str, Option<&str>) =
            match (self.architecture.as_str(), self.variant.as_deref()) {
                ("x86_64" | "x86-64", v) => ("amd64", v),
                ("aarch64", v) | ("arm64", v) => ("arm64", v.filter(|v| *v != "v8")),
                ("armhf", _) => ("arm", Some("v7")),
                ("armel", _) => ("arm", Some("v6")),
                ("arm", None) => ("arm", Some("v7")),
                ("i386" | "i686", v) => ("386", v),
                (a, v) => (a, v),
            };
        Platform {
            os: self.os.to_ascii_lowercase(),
            architecture: arch.to_string(),
            variant: variant.map(str::to_string),
            os_version: self.os_version.clone(),
        }
    }

    /// Whether an index entry with this platform satisfies `wanted`:
    /// same os and arch, and the same variant when `wanted` names one.
    pub fn satisfies(&self, wanted: &Platform) -> bool {
        let have = self.normalized();
        let want = wanted.normalized();
        have.os == want.os
            && have.architecture == want.architecture
            && (want.variant.is_none() || have.variant == want.variant)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalizes() {
        let cases = [
            ("linux/amd64", "linux/amd64"),
            ("linux/x86_64", "linux/amd64"),
            ("Linux/AARCH64", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/arm/v6", "linux/arm/v6"),
            ("linux/i386", "linux/386"),
        ];
        for (input, want) in cases {
            assert_eq!(Platform::parse(input).unwrap().to_string(), want, "{input}");
        }
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", ""] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matching() {
        let arm64 = Platform::new("linux", "arm64", Some("v8"));
        assert!(arm64.satisfies(&Platform::parse("linux/arm64").unwrap()));
        let v6 = Platform::new("linux", "arm", Some("v6"));
        assert!(!v6.satisfies(&Platform::parse("linux/arm/v7").unwrap()));
        assert!(!Platform::new("unknown", "unknown", None).satisfies(&Platform::host()));
    }
}
