//! `quay`: Quay.io (and `kind = "quay"` for self-hosted Quay).

use crate::catalog::{Build, Plugin};
use crate::registry::quirks::{Failure, RegistryQuirks};

#[derive(Default)]
pub struct Quay;

fn claims(host: &str) -> bool {
    host == "quay.io"
}

impl RegistryQuirks for Quay {
    fn name(&self) -> &'static str {
        "quay"
    }

    fn hint(&self, f: &Failure<'_>) -> Option<String> {
        match f.status {
            401 | 403 => Some(
                "Quay robot accounts are named `ORG+ROBOT`; private repositories need the robot (or user) \
                 to have read permission; Quay answers 401 for repositories that do not exist too"
                    .into(),
            ),
            _ => None,
        }
    }
}

inventory::submit! {
    Plugin {
        name: "quay",
        summary: "Quay (quay.io): robot-account hints",
        build: Build::Registry { claims, build: crate::catalog::without_options::<Quay> },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hosts() {
        assert!(super::claims("quay.io"));
        assert!(!super::claims("quay.io.example.com"));
        assert!(!super::claims("myquay.io"));
    }
}
