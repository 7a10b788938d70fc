//! `ecr`: Amazon ECR, `ACCOUNT.dkr.ecr[-fips].REGION.amazonaws.com[.cn]`.
//! Credentials come from the `ecr` provider by default.

use crate::catalog::{Build, Plugin};
use crate::registry::quirks::{Failure, RegistryQuirks};

#[derive(Default)]
pub struct Ecr;

/// (account, region) of an ECR registry host.
pub fn parse_host(host: &str) -> Option<(String, String)> {
    let host = host.split(':').next()?;
    let rest = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
    let (account, rest) = rest.split_once('.')?;
    let region = rest
        .strip_prefix("dkr.ecr.")
        .or_else(|| rest.strip_prefix("dkr.ecr-fips."))?;
    let account_ok = account.len() == 12 && account.bytes().all(|c| c.is_ascii_digit());
    let region_ok = !region.is_empty()
        && region
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    (account_ok && region_ok).then(|| (account.to_string(), region.to_string()))
}

impl RegistryQuirks for Ecr {
    fn name(&self) -> &'static str {
        "ecr"
    }

    fn credential_provider(&self) -> Option<&'static str> {
        Some("ecr")
    }

    fn hint(&self, f: &Failure<'_>) -> Option<String> {
        match f.status {
            401 if f.anonymous => Some(
                "ECR needs AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY \
                 (or run on an instance/task with a role) so the `ecr` provider can call GetAuthorizationToken"
                    .into(),
            ),
            401 => Some(
                "ECR tokens expire after 12 hours and are per account and region; the `ecr` provider renews \
                 them — check that the AWS identity may call ecr:GetAuthorizationToken and pull from this repository"
                    .into(),
            ),
            404 => Some("ECR repositories must exist before images are pushed; check the repository name and region".into()),
            _ => None,
        }
    }
}

inventory::submit! {
    Plugin {
        name: "ecr",
        summary: "Amazon ECR (*.dkr.ecr.*.amazonaws.com): ecr credentials by default",
        build: Build::Registry { claims: |h| parse_host(h).is_some(), build: crate::catalog::without_options::<Ecr> },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            parse_host("123456789012.dkr.ecr.us-east-1.amazonaws.com"),
            Some(("123456789012".into(), "us-east-1".into()))
        );
        assert_eq!(
            parse_host("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com"),
            Some(("123456789012".into(), "us-gov-west-1".into()))
        );
        assert_eq!(
            parse_host("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"),
            Some(("123456789012".into(), "cn-north-1".into()))
        );
        for bad in [
            "12345.dkr.ecr.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.example.com",
            "public.ecr.aws",
            "amazonaws.com",
        ] {
            assert_eq!(parse_host(bad), None, "{bad}");
        }
    }
}
