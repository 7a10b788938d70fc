//! `harbor`: Harbor runs on any host, so it is chosen with
//! `kind = "harbor"`; what it adds is knowing its robot accounts.

use crate::catalog::{Build, Plugin};
use crate::registry::quirks::{Failure, RegistryQuirks};

#[derive(Default)]
pub struct Harbor;

impl RegistryQuirks for Harbor {
    fn name(&self) -> &'static str {
        "harbor"
    }

    fn hint(&self, f: &Failure<'_>) -> Option<String> {
        match f.status {
            401 => Some(
                "Harbor robot accounts are named `robot$NAME` (Harbor 2: `robot$PROJECT+NAME`); quote the `$` \
                 in a shell ('robot$ci'), and use the robot's secret as the password"
                    .into(),
            ),
            404 => Some(format!(
                "Harbor paths start with the project: HOST/PROJECT/REPOSITORY (`{}` was asked for)",
                f.repository
            )),
            _ => None,
        }
    }
}

inventory::submit! {
    Plugin {
        name: "harbor",
        summary: "Harbor (choose with kind = \"harbor\"): robot-account hints",
        build: Build::Registry { claims: |_| false, build: crate::catalog::without_options::<Harbor> },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_no_host_and_explains_robots() {
        assert!(Harbor
            .hint(&Failure {
                status: 401,
                repository: "p/r",
                anonymous: false
            })
            .unwrap()
            .contains("robot$"));
        assert_eq!(Harbor.api_host("harbor.example.com"), "harbor.example.com");
    }
}
