//! Default output names, built from what was pulled.

use crate::oci::platform::Selection;
use crate::oci::reference::{Reference, DOCKER_HUB};

/// `library_nginx_latest.tar`; non-Hub registries keep their host
/// (`127.0.0.1_5000_ns_app_1.tar`); a `--platform` choice is appended so
/// two platforms never overwrite each other
/// (`library_nginx_latest_linux_arm64.tar`).
pub fn default_output_name(
    reference: &Reference,
    platforms: Option<&Selection>,
    extension: Option<&str>,
) -> String {
    let mut name = if reference.registry == DOCKER_HUB {
        reference.repository.clone()
    } else {
        reference.name()
    };
    match (&reference.tag, &reference.digest) {
        (Some(t), _) => name.push_str(&format!("_{t}")),
        (None, Some(d)) => name.push_str(&format!("_{}_{}", d.algorithm_name(), d.hex())),
        (None, None) => {}
    }
    if let Some(sel) = platforms {
        name.push('_');
        name.push_str(&sel.slug());
    }
    let mut name: String = name
        .chars()
        .map(|c| {
            if matches!(c, '/' | ':' | '[' | ']') {
                '_'
            } else {
                c
            }
        })
        .collect();
    if let Some(ext) = extension {
        name.push('.');
        name.push_str(ext);
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names() {
        let arm = Selection::parse(&["linux/arm64"]).unwrap();
        let two = Selection::parse(&["linux/amd64,linux/arm/v7"]).unwrap();
        let all = Selection::parse(&["all"]).unwrap();
        let cases = [
            ("nginx", None, "library_nginx_latest.tar"),
            ("user/app:1", None, "user_app_1.tar"),
            (
                "127.0.0.1:5000/ns/app:1",
                None,
                "127.0.0.1_5000_ns_app_1.tar",
            ),
            ("[::1]:5000/app:1", None, "___1__5000_app_1.tar"),
            (
                "nginx",
                arm.as_ref(),
                "library_nginx_latest_linux_arm64.tar",
            ),
            (
                "nginx:1",
                two.as_ref(),
                "library_nginx_1_linux_amd64_linux_arm_v7.tar",
            ),
            ("nginx", all.as_ref(), "library_nginx_latest_all.tar"),
        ];
        for (input, sel, want) in cases {
            let r: Reference = input.parse().unwrap();
            assert_eq!(default_output_name(&r, sel, Some("tar")), want);
        }
        let r: Reference = "nginx".parse().unwrap();
        assert_eq!(default_output_name(&r, None, None), "library_nginx_latest");
    }
}
