//! Credential providers (`CredentialProvider`).

pub mod docker_config;
pub mod ecr;
pub mod gcr;
pub mod static_creds;
