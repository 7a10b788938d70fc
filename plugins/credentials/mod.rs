//! Credential providers (`CredentialProvider`).

pub mod docker_config;
pub mod static_creds;
