//! Credential providers (`CredentialProvider`).

pub mod static_creds;
