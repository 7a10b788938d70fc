//! `acr`: Alibaba Cloud Container Registry — personal edition
//! `registry[-vpc|-intl|-intl-vpc].REGION.aliyuncs.com` and enterprise
//! instances `NAME-registry[-vpc].REGION.cr.aliyuncs.com`.

use crate::catalog::{Build, Plugin};
use crate::registry::quirks::{Failure, RegistryQuirks};

#[derive(Default)]
pub struct Acr;

pub fn claims(host: &str) -> bool {
    let host = host.split(':').next().unwrap_or(host);
    let Some(rest) = host.strip_suffix(".aliyuncs.com") else {
        return false;
    };
    let labels: Vec<&str> = rest.split('.').collect();
    match labels.as_slice() {
        // registry.cn-hangzhou, registry-vpc.cn-shanghai, registry-intl.ap-southeast-1
        [first, region] => first.starts_with("registry") && !region.is_empty(),
        // NAME-registry.cn-hangzhou.cr, NAME-registry-vpc.cn-hangzhou.cr
        [instance, region, "cr"] => instance.contains("-registry") && !region.is_empty(),
        _ => false,
    }
}

impl RegistryQuirks for Acr {
    fn name(&self) -> &'static str {
        "acr"
    }

    fn hint(&self, f: &Failure<'_>) -> Option<String> {
        match f.status {
            401 => Some(
                "阿里云容器镜像服务 / Alibaba ACR: the username is your full Alibaba Cloud account name \
                 (or RAM user@account), the password is the registry password set in the ACR console — \
                 not the account login password; `-vpc` hosts only work from inside the VPC"
                    .into(),
            ),
            404 => Some("ACR paths are HOST/NAMESPACE/REPOSITORY; check the namespace and the region in the host".into()),
            _ => None,
        }
    }
}

inventory::submit! {
    Plugin {
        name: "acr",
        summary: "Alibaba Cloud ACR (registry.*.aliyuncs.com, *.cr.aliyuncs.com): login hints",
        build: Build::Registry { claims, build: crate::catalog::without_options::<Acr> },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hosts() {
        for h in [
            "registry.cn-hangzhou.aliyuncs.com",
            "registry-vpc.cn-shanghai.aliyuncs.com",
            "registry-intl.ap-southeast-1.aliyuncs.com",
            "myco-registry.cn-hangzhou.cr.aliyuncs.com",
            "myco-registry-vpc.cn-beijing.cr.aliyuncs.com",
        ] {
            assert!(super::claims(h), "{h}");
        }
        for h in [
            "aliyuncs.com",
            "oss.cn-hangzhou.aliyuncs.com",
            "registry.cn-hangzhou.aliyuncs.com.evil.io",
            "docker.io",
        ] {
            assert!(!super::claims(h), "{h}");
        }
    }
}
