//! `gcr`: Google Container Registry (`gcr.io`, `*.gcr.io`) and Artifact
//! Registry (`REGION-docker.pkg.dev`). Credentials from the `gcr` provider
//! by default.

use crate::catalog::{Build, Plugin};
use crate::registry::quirks::{Failure, RegistryQuirks};

#[derive(Default)]
pub struct Gcr;

pub fn claims(host: &str) -> bool {
    let host = host.split(':').next().unwrap_or(host);
    host == "gcr.io" || host.ends_with(".gcr.io") || host.ends_with("-docker.pkg.dev")
}

impl RegistryQuirks for Gcr {
    fn name(&self) -> &'static str {
        "gcr"
    }

    fn credential_provider(&self) -> Option<&'static str> {
        Some("gcr")
    }

    fn hint(&self, f: &Failure<'_>) -> Option<String> {
        match f.status {
            401 | 403 => Some(
                "Google registries take an OAuth2 access token: set GOOGLE_APPLICATION_CREDENTIALS to a \
                 service-account key, run `gcloud auth application-default login`, or give the `gcr` \
                 provider a key_file; the account needs Artifact Registry Reader (or Storage Object Viewer for gcr.io)"
                    .into(),
            ),
            404 => Some("gcr.io is served by Artifact Registry now; check the project id in the path (gcr.io/PROJECT/IMAGE)".into()),
            _ => None,
        }
    }
}

inventory::submit! {
    Plugin {
        name: "gcr",
        summary: "GCR and Artifact Registry (gcr.io, *.gcr.io, *-docker.pkg.dev): gcr credentials by default",
        build: Build::Registry { claims, build: crate::catalog::without_options::<Gcr> },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hosts() {
        for h in [
            "gcr.io",
            "eu.gcr.io",
            "us.gcr.io",
            "europe-west1-docker.pkg.dev",
            "us-docker.pkg.dev",
        ] {
            assert!(super::claims(h), "{h}");
        }
        for h in ["notgcr.io", "docker.pkg.dev", "gcr.io.evil.com", "ghcr.io"] {
            assert!(!super::claims(h), "{h}");
        }
    }
}
