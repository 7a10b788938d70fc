//! `generic`: any OCI distribution registry; the fallback adapter.

use crate::catalog::{Build, Plugin};
use crate::registry::quirks::RegistryQuirks;

#[derive(Default)]
pub struct Generic;

impl RegistryQuirks for Generic {
    fn name(&self) -> &'static str {
        "generic"
    }
}

inventory::submit! {
    Plugin {
        name: "generic",
        summary: "any OCI distribution registry (fallback)",
        build: Build::Registry { claims: |_| false, build: crate::catalog::without_options::<Generic> },
    }
}
