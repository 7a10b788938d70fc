use super::*;

#[test]
fn parses_and_normalizes() {
    let cases = [
        ("linux/amd64", "linux/amd64"),
        ("linux/x86_64", "linux/amd64"),
        ("linux/x86-64", "linux/amd64"),
        ("linux/amd64/v1", "linux/amd64"),
        ("linux/amd64/v3", "linux/amd64/v3"),
        ("Linux/AARCH64", "linux/arm64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/arm64/8", "linux/arm64"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/armhf", "linux/arm/v7"),
        ("linux/armel", "linux/arm/v6"),
        ("linux/arm/6", "linux/arm/v6"),
        ("linux/arm/v5", "linux/arm/v5"),
        ("linux/i386", "linux/386"),
        ("linux/i686", "linux/386"),
        ("linux/ppc64le", "linux/ppc64le"),
        ("LINUX/S390X", "linux/s390x"),
        ("windows/amd64", "windows/amd64"),
        ("macos/arm64", "darwin/arm64"),
    ];
    for (input, want) in cases {
        assert_eq!(Platform::parse(input).unwrap().to_string(), want, "{input}");
    }
    let w = Platform::parse("windows(10.0.17763)/amd64").unwrap();
    assert_eq!(w.os_version.as_deref(), Some("10.0.17763"));
    for bad in [
        "linux",
        "linux/",
        "/amd64",
        "a/b/c/d",
        "",
        "linux/amd 64",
        "windows(/amd64",
        "windows()/amd64",
    ] {
        assert!(Platform::parse(bad).is_err(), "{bad:?}");
    }
}

fn p(s: &str) -> Platform {
    // Entries as registries write them (not normalized).
    let parts: Vec<&str> = s.split('/').collect();
    Platform::new(parts[0], parts[1], parts.get(2).copied())
}

/// wanted, candidates in index order, expected pick (index) or None.
#[test]
fn matching_with_ordered_fallback() {
    let cases: &[(&str, &[&str], Option<usize>)] = &[
        ("linux/arm64", &["linux/amd64", "linux/arm64/v8"], Some(1)),
        ("linux/arm64/v8", &["linux/amd64", "linux/arm64"], Some(1)),
        (
            "linux/aarch64",
            &["linux/arm64/v8", "linux/arm/v7"],
            Some(0),
        ),
        ("linux/arm", &["linux/arm/v6", "linux/arm/v7"], Some(1)),
        ("linux/armhf", &["linux/arm64", "linux/arm/v7"], Some(1)),
        ("linux/arm/v7", &["linux/arm/v6", "linux/arm/v5"], Some(0)),
        ("linux/arm/v7", &["linux/arm/v5", "linux/arm/v6"], Some(1)),
        ("linux/arm/v7", &["linux/arm/v5"], Some(0)),
        ("linux/arm/v6", &["linux/arm/v7"], None),
        ("linux/arm/v5", &["linux/arm/v6", "linux/arm/v7"], None),
        ("linux/arm/v8", &["linux/arm/v7", "linux/arm64"], Some(0)),
        ("linux/amd64", &["linux/amd64/v2", "linux/amd64"], Some(1)),
        ("linux/amd64", &["linux/amd64/v3"], None),
        (
            "linux/amd64/v3",
            &["linux/amd64", "linux/amd64/v2"],
            Some(1),
        ),
        ("linux/amd64/v3", &["linux/amd64/v1"], Some(0)),
        (
            "linux/amd64/v2",
            &["linux/amd64/v3", "linux/amd64/v4"],
            None,
        ),
        ("linux/amd64", &["linux/386"], Some(0)),
        ("linux/amd64", &["linux/386", "linux/amd64"], Some(1)),
        ("linux/amd64/v2", &["linux/386", "linux/amd64/v3"], Some(0)),
        ("linux/386", &["linux/amd64"], None),
        ("linux/arm64", &["linux/arm/v7", "linux/arm/v6"], Some(0)),
        ("linux/arm64", &["linux/arm/v5", "linux/arm64"], Some(1)),
        (
            "linux/arm64/v8.2",
            &["linux/arm64/v8.1", "linux/arm64/v8.3"],
            Some(0),
        ),
        (
            "linux/arm64/v8.2",
            &["linux/arm64", "linux/arm64/v8.1"],
            Some(1),
        ),
        (
            "linux/arm64/v9",
            &["linux/arm64/v8.6", "linux/arm64/v8.5"],
            Some(1),
        ),
        ("linux/arm64", &["linux/arm64/v8.1"], None),
        ("linux/arm/v7", &["linux/arm64"], None),
        ("linux/amd64", &["linux/AMD64"], Some(0)),
        ("linux/arm/v7", &["linux/ARM/V7"], Some(0)),
        ("linux/x86_64", &["linux/arm64", "linux/x86_64"], Some(1)),
        ("linux/386", &["linux/i386"], Some(0)),
        ("linux/ppc64le", &["linux/ppc64le", "linux/s390x"], Some(0)),
        (
            "linux/mips64",
            &["linux/amd64", "linux/arm64/v8", "linux/s390x"],
            None,
        ),
        ("linux/arm64", &["windows/arm64", "linux/arm64"], Some(1)),
        ("linux/arm64/v9", &["linux/arm64/v8"], Some(0)),
        ("linux/amd64", &["linux/amd64", "linux/amd64"], Some(0)),
    ];
    for (wanted, cands, want) in cases {
        let m = Matcher::new(&Platform::parse(wanted).unwrap());
        let plats: Vec<Platform> = cands.iter().map(|c| p(c)).collect();
        let got = m.best(plats.iter().enumerate().map(|(i, p)| (p, i)));
        assert_eq!(got, *want, "{wanted} among {cands:?}");
    }
}

#[test]
fn windows_matches_on_os_version() {
    let mut ltsc2019 = p("windows/amd64");
    ltsc2019.os_version = Some("10.0.17763.5329".into());
    let mut ltsc2022 = p("windows/amd64");
    ltsc2022.os_version = Some("10.0.20348.2227".into());
    let cands = [(&ltsc2019, 0), (&ltsc2022, 1)];
    let m = Matcher::new(&Platform::parse("windows(10.0.20348)/amd64").unwrap());
    assert_eq!(m.best(cands), Some(1));
    let m = Matcher::new(&Platform::parse("windows/amd64").unwrap());
    assert_eq!(m.best(cands), Some(0));
    let m = Matcher::new(&Platform::parse("windows(10.0.1)/amd64").unwrap());
    assert_eq!(m.best(cands), None);
    let m = Matcher::new(&Platform::parse("windows(10.0.17763.9999)/amd64").unwrap());
    assert_eq!(m.best(cands), Some(0), "the revision may differ");
    assert_eq!(ltsc2022.to_string(), "windows(10.0.20348.2227)/amd64");
    assert_eq!(ltsc2022.slug(), "windows_10.0.20348.2227_amd64");
}

#[test]
fn selections() {
    let s = Selection::parse(&["linux/amd64,linux/arm64", "linux/arm64/v8"]).unwrap();
    assert_eq!(
        s,
        Some(Selection::List(vec![
            p("linux/amd64"),
            Platform::parse("linux/arm64").unwrap()
        ]))
    );
    assert_eq!(s.unwrap().slug(), "linux_amd64_linux_arm64");
    assert_eq!(
        Selection::parse(&["linux/amd64", "ALL"]).unwrap(),
        Some(Selection::All)
    );
    assert_eq!(Selection::parse::<&str>(&[]).unwrap(), None);
    assert!(Selection::parse(&["linux/amd64,bogus"]).is_err());
    assert_eq!(Platform::parse("linux/arm").unwrap().slug(), "linux_arm_v7");
}

#[test]
fn host_platform_is_normalized() {
    let h = Platform::host();
    assert_eq!(h.os, "linux");
    assert_eq!(h, h.normalized());
    if cfg!(target_arch = "x86_64") {
        assert_eq!(h.to_string(), "linux/amd64");
    }
}
