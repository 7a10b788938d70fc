//! Where blobs were pushed, by registry and repository, so that a push to
//! another repository of the same registry mounts them instead of
//! uploading them again (skopeo keeps the same kind of record): the file
//! `$XDG_CACHE_HOME/imgpull/blob-locations.json` (`~/.cache/…`). It is a
//! hint: an entry gone stale costs one mount request, answered with an
//! upload session. Kept small: a few repositories per blob, a bounded
//! number of blobs per registry.

use crate::oci::digest::Digest;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Repositories remembered per blob (the latest first).
const REPOS_PER_BLOB: usize = 4;
/// Blobs remembered per registry.
const BLOBS_PER_REGISTRY: usize = 20_000;

/// registry -> digest -> repositories.
type Map = BTreeMap<String, BTreeMap<String, Vec<String>>>;

#[derive(Default)]
pub struct Locations {
    path: Option<PathBuf>,
    map: Mutex<Map>,
}

fn file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("imgpull").join("blob-locations.json"))
}

impl Locations {
    /// The record as saved (empty when there is none or it does not read).
    pub fn load() -> Locations {
        let path = file();
        let map = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Locations {
            path,
            map: Mutex::new(map),
        }
    }

    /// Repositories of `registry` known to hold `digest`, latest first
    /// (only names a repository can have: the file is not trusted).
    pub fn of(&self, registry: &str, digest: &Digest) -> Vec<String> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let named = |r: &String| {
            !r.is_empty()
                && r.len() <= 255
                && r.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
        };
        map.get(registry)
            .and_then(|m| m.get(&digest.to_string()))
            .map(|rs| rs.iter().filter(|r| named(r)).cloned().collect())
            .unwrap_or_default()
    }

    /// `repository` of `registry` holds `digest` now.
    pub fn record(&self, registry: &str, repository: &str, digest: &Digest) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let blobs = map.entry(registry.to_string()).or_default();
        let repos = blobs.entry(digest.to_string()).or_default();
        repos.retain(|r| r != repository);
        repos.insert(0, repository.to_string());
        repos.truncate(REPOS_PER_BLOB);
        while blobs.len() > BLOBS_PER_REGISTRY {
            let Some(k) = blobs.keys().next().cloned() else {
                break;
            };
            blobs.remove(&k);
        }
    }

    /// Write the record (a new file renamed over the old one). Best
    /// effort: a record that cannot be saved only costs uploads later.
    pub fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let dir = path.parent().expect("a file in a directory");
        std::fs::create_dir_all(dir)?;
        let text = {
            let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            serde_json::to_vec(&*map).map_err(std::io::Error::other)?
        };
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, &text)?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_repositories_of_a_blob_come_first_and_are_bounded() {
        let l = Locations::default();
        let d = Digest::of(b"x");
        for r in ["a", "b", "c", "d", "e", "b"] {
            l.record("reg", r, &d);
        }
        assert_eq!(l.of("reg", &d), vec!["b", "e", "d", "c"]);
        assert!(l.of("other", &d).is_empty());
    }
}
