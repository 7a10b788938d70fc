//! `dockerhub`: Docker Hub (`docker.io`), whose API lives at
//! `registry-1.docker.io` and which rate-limits anonymous pulls.

use crate::catalog::{Build, Plugin};
use crate::registry::quirks::{Failure, RegistryQuirks};

#[derive(Default)]
pub struct DockerHub;

const API_HOST: &str = "registry-1.docker.io";

fn claims(registry: &str) -> bool {
    matches!(registry, "docker.io" | "index.docker.io" | API_HOST)
}

impl RegistryQuirks for DockerHub {
    fn name(&self) -> &'static str {
        "dockerhub"
    }

    fn api_host(&self, registry: &str) -> String {
        if claims(registry) {
            API_HOST.to_string()
        } else {
            registry.to_string()
        }
    }

    fn reports_rate_limit(&self) -> bool {
        true
    }

    fn hint(&self, f: &Failure<'_>) -> Option<String> {
        match f.status {
            429 if f.anonymous => Some(
                "Docker Hub limits anonymous pulls per IP; log in (docker login, or \
                 credentials in imgpull.toml) for a higher limit, or use a mirror"
                    .into(),
            ),
            429 => Some(
                "Docker Hub's pull limit for this account is reached; wait or use a mirror".into(),
            ),
            401 | 404 if !f.repository.contains('/') || f.repository.starts_with("library/") => {
                None
            }
            401 | 404 => Some(format!(
                "Docker Hub answers 401 for repositories that do not exist as well as for \
                 private ones: check the name `{}` and your credentials",
                f.repository
            )),
            _ => None,
        }
    }
}

inventory::submit! {
    Plugin {
        name: "dockerhub",
        summary: "Docker Hub: docker.io -> registry-1.docker.io, rate-limit hints",
        build: Build::Registry { claims, build: crate::catalog::without_options::<DockerHub> },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_docker_io() {
        assert_eq!(DockerHub.api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(
            DockerHub.api_host("index.docker.io"),
            "registry-1.docker.io"
        );
        assert!(!claims("ghcr.io"));
    }
}
