//! Ranking index entries for a wanted platform.

use super::Platform;

/// Ranks platforms against a wanted one. Rank 0 is an exact (normalized)
/// match; higher ranks are older compatible variants; incompatible
/// platforms have no rank.
#[derive(Clone, Debug)]
pub struct Matcher {
    wanted: Platform,
    /// Acceptable (arch, variant) pairs, best first.
    order: Vec<(String, Option<String>)>,
}

impl Matcher {
    pub fn new(wanted: &Platform) -> Matcher {
        let wanted = wanted.normalized();
        let arch = wanted.architecture.as_str();
        let on = |a: &str, vs: Vec<Option<String>>| {
            vs.into_iter()
                .map(|v| (a.to_string(), v))
                .collect::<Vec<_>>()
        };
        let order = match (arch, wanted.variant.as_deref()) {
            ("arm", Some(v)) => on("arm", older(v, 5, |n| Some(format!("v{n}")))),
            // amd64 runs older microarchitecture levels, then 386.
            ("amd64", v) => {
                let mut o = on(
                    "amd64",
                    older(v.unwrap_or("v1"), 1, |n| (n > 1).then(|| format!("v{n}"))),
                );
                o.push(("386".into(), None));
                o
            }
            // arm64 runs older arm64 levels, then 32-bit arm v8 down to v5.
            ("arm64", v) => {
                let mut o = on("arm64", arm64_levels(v));
                o.extend(on("arm", older("v8", 5, |n| Some(format!("v{n}")))));
                o
            }
            (a, v) => on(a, vec![v.map(str::to_string)]),
        };
        Matcher { order, wanted }
    }

    /// The rank of `candidate`, `None` when it cannot run here.
    pub fn rank(&self, candidate: &Platform) -> Option<usize> {
        let c = candidate.normalized();
        if c.os != self.wanted.os {
            return None;
        }
        if let Some(want) = &self.wanted.os_version {
            // Windows: major.minor.build must match; the revision may differ.
            let build = |v: &str| v.split('.').take(3).collect::<Vec<_>>().join(".");
            if build(c.os_version.as_deref().unwrap_or("")) != build(want) {
                return None;
            }
        }
        self.order
            .iter()
            .position(|(arch, variant)| *arch == c.architecture && *variant == c.variant)
    }

    /// The best of `candidates` (the first of equal rank), if any.
    pub fn best<'a, T>(
        &self,
        candidates: impl IntoIterator<Item = (&'a Platform, T)>,
    ) -> Option<T> {
        candidates
            .into_iter()
            .filter_map(|(p, t)| self.rank(p).map(|r| (r, t)))
            .min_by_key(|(r, _)| *r)
            .map(|(_, t)| t)
    }
}

/// arm64 levels from `v` down: `v9.2` -> v9.2, v9.1, v9, v8.7 … v8.1, v8
/// (= no variant); v9.N implies v8.(N+5) as in containerd.
fn arm64_levels(v: Option<&str>) -> Vec<Option<String>> {
    let Some(v) = v else { return vec![None] };
    let parsed = v.strip_prefix('v').and_then(|n| {
        let (major, minor) = n.split_once('.').unwrap_or((n, "0"));
        Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?))
    });
    let level = |major: u32, minor: u32| match (major, minor) {
        (8, 0) => None,
        (m, 0) => Some(format!("v{m}")),
        (m, n) => Some(format!("v{m}.{n}")),
    };
    match parsed {
        Some((9, minor)) => {
            let mut out: Vec<Option<String>> = (0..=minor).rev().map(|n| level(9, n)).collect();
            out.extend((0..=(minor + 5).min(9)).rev().map(|n| level(8, n)));
            out
        }
        Some((8, minor)) => (0..=minor).rev().map(|n| level(8, n)).collect(),
        _ => vec![Some(v.to_string()), None],
    }
}

/// `vN`, `vN-1`, … `v{floor}` as produced by `make`; a variant that is not
/// `v<number>` matches only itself.
fn older(v: &str, floor: u32, make: impl Fn(u32) -> Option<String>) -> Vec<Option<String>> {
    match v.strip_prefix('v').and_then(|n| n.parse::<u32>().ok()) {
        Some(n) if n >= floor => (floor..=n).rev().map(make).collect(),
        _ => vec![Some(v.to_string())],
    }
}
