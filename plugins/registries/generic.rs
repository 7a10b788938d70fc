//! `generic`: any OCI distribution registry; the fallback adapter.

use crate::catalog::{Build, Plugin, PluginConfig, PluginError};
use crate::registry::quirks::RegistryQuirks;
use std::sync::Arc;

pub struct Generic;

impl RegistryQuirks for Generic {
    fn name(&self) -> &'static str {
        "generic"
    }
}

fn build(cfg: &PluginConfig) -> Result<Arc<dyn RegistryQuirks>, PluginError> {
    crate::catalog::options::<crate::catalog::NoOptions>(
        crate::catalog::Kind::Registry,
        "generic",
        cfg,
    )?;
    Ok(Arc::new(Generic))
}

inventory::submit! {
    Plugin {
        name: "generic",
        summary: "any OCI distribution registry (fallback)",
        build: Build::Registry { claims: |_| false, build },
    }
}
