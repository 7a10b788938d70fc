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
        let arch = wanted.architecture.clone();
        let variants: Vec<Option<String>> = match (arch.as_str(), wanted.variant.as_deref()) {
            ("arm", Some(v)) => older(v, 5, |n| Some(format!("v{n}"))),
            ("amd64", None) => vec![None],
            ("amd64", Some(v)) => older(v, 1, |n| (n > 1).then(|| format!("v{n}"))),
            ("arm64", Some(v)) => {
                let mut list = vec![Some(v.to_string())];
                list.push(None); // every arm64 runs v8 images
                list
            }
            (_, v) => vec![v.map(str::to_string)],
        };
        Matcher {
            order: variants.into_iter().map(|v| (arch.clone(), v)).collect(),
            wanted,
        }
    }

    pub fn wanted(&self) -> &Platform {
        &self.wanted
    }

    /// The rank of `candidate`, `None` when it cannot run here.
    pub fn rank(&self, candidate: &Platform) -> Option<usize> {
        let c = candidate.normalized();
        if c.os != self.wanted.os {
            return None;
        }
        if let Some(want) = &self.wanted.os_version {
            // Windows: the build must match (10.0.17763 matches 10.0.17763.1234).
            let have = c.os_version.as_deref().unwrap_or("");
            if have != want && !have.starts_with(&format!("{want}.")) {
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

/// `vN`, `vN-1`, … `v{floor}` as produced by `make`; a variant that is not
/// `v<number>` matches only itself.
fn older(v: &str, floor: u32, make: impl Fn(u32) -> Option<String>) -> Vec<Option<String>> {
    match v.strip_prefix('v').and_then(|n| n.parse::<u32>().ok()) {
        Some(n) if n >= floor => (floor..=n).rev().map(make).collect(),
        _ => vec![Some(v.to_string())],
    }
}
