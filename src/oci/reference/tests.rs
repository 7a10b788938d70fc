use super::*;

const H: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// input -> (registry, repository, tag, digest present)
#[test]
fn normalizes_like_docker() {
    let d = format!("sha256:{H}");
    let cases: Vec<(String, &str, &str, Option<&str>, bool)> = vec![
        (
            "nginx".into(),
            "docker.io",
            "library/nginx",
            Some("latest"),
            false,
        ),
        (
            "nginx:1.25".into(),
            "docker.io",
            "library/nginx",
            Some("1.25"),
            false,
        ),
        (
            "library/nginx".into(),
            "docker.io",
            "library/nginx",
            Some("latest"),
            false,
        ),
        (
            "docker.io/nginx".into(),
            "docker.io",
            "library/nginx",
            Some("latest"),
            false,
        ),
        (
            "docker.io/library/nginx:alpine".into(),
            "docker.io",
            "library/nginx",
            Some("alpine"),
            false,
        ),
        (
            "index.docker.io/nginx".into(),
            "docker.io",
            "library/nginx",
            Some("latest"),
            false,
        ),
        (
            "user/app".into(),
            "docker.io",
            "user/app",
            Some("latest"),
            false,
        ),
        (
            "user/app:v1.0".into(),
            "docker.io",
            "user/app",
            Some("v1.0"),
            false,
        ),
        ("a/b/c".into(), "docker.io", "a/b/c", Some("latest"), false),
        (
            "ghcr.io/org/app".into(),
            "ghcr.io",
            "org/app",
            Some("latest"),
            false,
        ),
        (
            "ghcr.io/app".into(),
            "ghcr.io",
            "app",
            Some("latest"),
            false,
        ),
        (
            "quay.io/org/app:tag_1".into(),
            "quay.io",
            "org/app",
            Some("tag_1"),
            false,
        ),
        (
            "localhost/app".into(),
            "localhost",
            "app",
            Some("latest"),
            false,
        ),
        (
            "localhost:5000/app:1".into(),
            "localhost:5000",
            "app",
            Some("1"),
            false,
        ),
        (
            "127.0.0.1:5000/ns/app:1".into(),
            "127.0.0.1:5000",
            "ns/app",
            Some("1"),
            false,
        ),
        (
            "myhost:5000/app".into(),
            "myhost:5000",
            "app",
            Some("latest"),
            false,
        ),
        (
            "[::1]:5000/app:x".into(),
            "[::1]:5000",
            "app",
            Some("x"),
            false,
        ),
        ("[::1]/app".into(), "[::1]", "app", Some("latest"), false),
        (
            "Example.com/app".into(),
            "Example.com",
            "app",
            Some("latest"),
            false,
        ),
        (
            "registry.example.com:443/a/b/c:v".into(),
            "registry.example.com:443",
            "a/b/c",
            Some("v"),
            false,
        ),
        (
            "my-registry.local/app".into(),
            "my-registry.local",
            "app",
            Some("latest"),
            false,
        ),
        ("a.b/c__d".into(), "a.b", "c__d", Some("latest"), false),
        (
            "app-name/with--dashes".into(),
            "docker.io",
            "app-name/with--dashes",
            Some("latest"),
            false,
        ),
        ("a.b/c.d_e".into(), "a.b", "c.d_e", Some("latest"), false),
        (
            format!("nginx@{d}"),
            "docker.io",
            "library/nginx",
            None,
            true,
        ),
        (
            format!("nginx:1@{d}"),
            "docker.io",
            "library/nginx",
            Some("1"),
            true,
        ),
        (format!("h:5000/a@{d}"), "h:5000", "a", None, true),
        (
            "app:_underscore".into(),
            "docker.io",
            "library/app",
            Some("_underscore"),
            false,
        ),
        (
            "app:LATEST".into(),
            "docker.io",
            "library/app",
            Some("LATEST"),
            false,
        ),
    ];
    for (input, reg, repo, tag, has_digest) in cases {
        let r: Reference = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(r.registry, reg, "{input}");
        assert_eq!(r.repository, repo, "{input}");
        assert_eq!(r.tag.as_deref(), tag, "{input}");
        assert_eq!(r.digest.is_some(), has_digest, "{input}");
    }
}

#[test]
fn rejects_what_docker_rejects() {
    let cases = [
        "",
        "Nginx",
        "library/Nginx",
        "host.io/Org/app",
        "nginx:",
        "nginx:-tag",
        "nginx:.tag",
        "nginx:tag!",
        "-app",
        "app-",
        "a//b",
        "a/",
        "/a",
        "a..b",
        "a___b",
        "a.-b",
        "nginx@sha256:abc",
        "nginx@md5:d41d8cd98f00b204e9800998ecf8427e",
        "host:port/app",
        "host:/app",
        "-host.io/app",
        "[::1/app",
        "[zz]:5/app",
        "a b",
        "app:tag:tag",
    ];
    for input in cases {
        assert!(input.parse::<Reference>().is_err(), "{input:?} accepted");
    }
    let max_tag = format!("app:{}", "a".repeat(128));
    assert!(max_tag.parse::<Reference>().is_ok());
    let long_tag = format!("app:{}", "a".repeat(129));
    assert!(long_tag.parse::<Reference>().is_err());
    let long_name = "a/".repeat(130) + "a";
    assert_eq!(long_name.parse::<Reference>(), Err(ReferenceError::TooLong));
}

#[test]
fn uppercase_is_named() {
    let e = "library/Nginx".parse::<Reference>().unwrap_err();
    assert!(matches!(e, ReferenceError::Uppercase(_)));
    assert!(e.to_string().contains("must be lowercase"));
}

#[test]
fn familiar_names_match_docker_save() {
    let cases = [
        ("nginx", Some("nginx:latest")),
        ("docker.io/library/nginx:1", Some("nginx:1")),
        ("user/app:2", Some("user/app:2")),
        ("library/a/b", Some("library/a/b:latest")),
        ("127.0.0.1:5000/ns/app:1", Some("127.0.0.1:5000/ns/app:1")),
        ("quay.io/org/app", Some("quay.io/org/app:latest")),
    ];
    for (input, want) in cases {
        let r: Reference = input.parse().unwrap();
        assert_eq!(r.familiar_tagged().as_deref(), want, "{input}");
    }
    let pinned: Reference = format!("nginx@sha256:{H}").parse().unwrap();
    assert_eq!(pinned.familiar_tagged(), None);
    assert_eq!(pinned.manifest_ref(), format!("sha256:{H}"));
    assert_eq!(
        pinned.to_string(),
        format!("docker.io/library/nginx@sha256:{H}")
    );
}
