//! Blobs committed without an fsync of their own, and how a power cut is
//! survived anyway.
//!
//! An fsync per blob (and of its directory) before the rename that makes it
//! visible cost a cold pull of small layers about a third of its time. So
//! a process makes one small file durable before its first commit instead:
//! `unsynced/<boot id>.<unix seconds>.<pid>`, which it holds locked (flock)
//! while it lives and appends each digest it commits to. Its blobs are then
//! renamed into place as soon as their digest matched, and the kernel
//! writes them back when it does. A crash of the process loses nothing
//! (the page cache outlives it); a power cut can leave a committed blob
//! with lost bytes (zeros, a short file) under its name, but never without
//! a ledger naming the boot it was written in. When the cache is opened:
//!
//! - a ledger of **another boot** that nobody holds means its blobs may not
//!   have reached the disk: every blob it lists and every blob modified
//!   since it began (less [`CLOCK_SLACK`]) is re-hashed, and removed if
//!   wrong; then the ledger goes;
//! - a ledger of **this boot** that nobody holds and nobody has written for
//!   [`SETTLED`]: the kernel has long written its blobs back; one `syncfs`
//!   makes sure, then the ledger goes;
//! - a held ledger (a live process, here or on another machine sharing the
//!   directory) is left alone.
//!
//! Where no boot id can be read, or the ledger cannot be made, every blob
//! is fsynced before its commit as before.

use crate::oci::digest::Digest;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// A ledger of this boot is swept once it has been idle this long: the
/// kernel writes dirty pages back after 30 s by default.
pub const SETTLED: Duration = Duration::from_secs(60);
/// How far before a ledger's start a blob's mtime may lie and still be
/// re-checked (clock steps, coarse timestamps).
pub const CLOCK_SLACK: Duration = Duration::from_secs(600);

/// This kernel's boot id, or `None` where there is none to read.
pub fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    let ok = id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    ok.then(|| id.to_string())
}

/// This process's ledger: durable before any blob it lists was renamed
/// into place, locked until the process ends.
pub struct Ledger {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl Ledger {
    /// Make a durable, locked ledger under `cache_dir`; `None` when that
    /// cannot be done (then blobs are fsynced one by one).
    pub fn create(cache_dir: &Path) -> Option<Ledger> {
        let boot = boot_id()?;
        let dir = cache_dir.join("unsynced");
        let new_dir = !dir.is_dir();
        std::fs::create_dir_all(&dir).ok()?;
        let start = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()?
            .as_secs();
        let path = dir.join(format!("{boot}.{start}.{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .ok()?;
        let made = file.try_lock().is_ok()
            && file.sync_all().is_ok()
            && sync_dir(&dir)
            && (!new_dir || sync_dir(cache_dir));
        if !made {
            drop(file);
            let _ = std::fs::remove_file(&path);
            return None;
        }
        Some(Ledger {
            path,
            file: Mutex::new(file),
        })
    }

    /// Note a blob about to be renamed into place unsynced (best effort:
    /// the ledger's start time covers it even when this line is lost).
    /// `false` when the ledger is gone: the caller fsyncs the blob instead.
    pub fn note(&self, digest: &Digest) -> bool {
        if !self.path.is_file() {
            return false;
        }
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(f, "{digest}");
        true
    }
}

fn sync_dir(dir: &Path) -> bool {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).is_ok()
}

/// What a ledger's name says: its boot id and start time.
fn parse(name: &str) -> Option<(&str, SystemTime)> {
    let mut parts = name.split('.');
    let (boot, start, pid) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || pid.parse::<u32>().is_err() {
        return None;
    }
    let start = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(start.parse().ok()?))?;
    Some((boot, start))
}

/// Settle the ledgers nobody holds (see the module doc). `blobs` is the
/// cache's blob root (`blobs/`); `recheck(algorithm, hex)` re-hashes one
/// blob, removes it when wrong, and says whether that could be done. Best
/// effort: a ledger that cannot be settled stays for the next open.
/// Returns how many blobs were re-checked: each once, however many
/// ledgers of earlier boots cover it.
pub fn sweep(cache_dir: &Path, blobs: &Path, recheck: &dyn Fn(&str, &str) -> bool) -> usize {
    let dir = cache_dir.join("unsynced");
    let (Some(boot), Ok(rd)) = (boot_id(), std::fs::read_dir(&dir)) else {
        return 0;
    };
    // (ledger, its open file) of earlier boots, and what they cover.
    let mut earlier = Vec::new();
    let mut suspect = BTreeSet::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((their_boot, start)) = parse(&name) else {
            continue;
        };
        let Ok(file) = std::fs::File::open(e.path()) else {
            continue;
        };
        if their_boot != boot {
            // Nobody of this boot writes it: a holder is another process
            // settling it. Wait for that one, then see what it left.
            if file.lock().is_err() || !e.path().exists() {
                continue;
            }
            let listed = std::fs::read_to_string(e.path()).unwrap_or_default();
            let since = start.checked_sub(CLOCK_SLACK).unwrap_or(start);
            suspect.extend(suspects(blobs, since, &listed));
            earlier.push((e.path(), file));
            continue;
        }
        if file.try_lock().is_err() {
            continue; // its process is alive
        }
        let idle = file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age >= SETTLED);
        if idle && syncfs(&file) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    if earlier.is_empty() {
        return 0;
    }
    let all = suspect
        .iter()
        .fold(true, |all, (alg, hex)| recheck(alg, hex) && all);
    if all && syncfs(&earlier[0].1) {
        for (path, _) in &earlier {
            let _ = std::fs::remove_file(path);
        }
    }
    suspect.len()
}

/// The blobs `listed` (one digest a line) and those modified since
/// `since`, as (algorithm, hex).
fn suspects(blobs: &Path, since: SystemTime, listed: &str) -> BTreeSet<(String, String)> {
    let mut out: BTreeSet<(String, String)> = listed
        .lines()
        .filter_map(|l| l.trim().parse::<Digest>().ok())
        .map(|d| (d.algorithm_name().to_string(), d.hex().to_string()))
        .collect();
    for alg in ["sha256", "sha512"] {
        let Ok(rd) = std::fs::read_dir(blobs.join(alg)) else {
            continue;
        };
        for e in rd.flatten() {
            let recent = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|m| m >= since);
            if recent {
                out.insert((
                    alg.to_string(),
                    e.file_name().to_string_lossy().into_owned(),
                ));
            }
        }
    }
    // Only blobs that are there (a listed one may have been removed since).
    out.retain(|(alg, hex)| blobs.join(alg).join(hex).is_file());
    out
}

fn syncfs(file: &std::fs::File) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain syscall on a descriptor this function borrows.
        unsafe { libc::syncfs(file.as_raw_fd()) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        file.sync_all().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(b: &[u8]) -> Digest {
        use sha2::Digest as _;
        format!("sha256:{:x}", sha2::Sha256::digest(b))
            .parse()
            .unwrap()
    }

    #[test]
    fn a_ledger_of_another_boot_sends_its_blobs_to_a_recheck_and_goes() {
        if boot_id().is_none() {
            return; // no boot id here: blobs are fsynced one by one
        }
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs");
        std::fs::create_dir_all(blobs.join("sha256")).unwrap();
        let (old, new, listed) = (digest_of(b"old"), digest_of(b"new"), digest_of(b"listed"));
        for d in [&old, &new, &listed] {
            std::fs::write(blobs.join("sha256").join(d.hex()), b"x").unwrap();
        }
        // `old` was committed long before the ledger began; `listed` too,
        // but the ledger names it.
        let long_ago = SystemTime::now() - Duration::from_secs(7200);
        for d in [&old, &listed] {
            let f = std::fs::File::options()
                .append(true)
                .open(blobs.join("sha256").join(d.hex()))
                .unwrap();
            f.set_modified(long_ago).unwrap();
        }
        let unsynced = dir.path().join("unsynced");
        std::fs::create_dir_all(&unsynced).unwrap();
        let start = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            - 5;
        let theirs = unsynced.join(format!("00000000-0000-0000-0000-000000000000.{start}.1"));
        std::fs::write(&theirs, format!("{listed}\n")).unwrap();
        // A second one of that boot, covering the same blobs: each is
        // re-hashed once.
        let theirs_too = unsynced.join(format!("00000000-0000-0000-0000-000000000000.{start}.2"));
        std::fs::write(&theirs_too, format!("{listed}\n")).unwrap();
        // A live process's ledger (held) stays, whatever its boot.
        let live = Ledger::create(dir.path()).unwrap();
        let checked = std::cell::RefCell::new(Vec::new());
        let failing = |_: &str, _: &str| false;
        assert_eq!(sweep(dir.path(), &blobs, &failing), 2);
        assert!(
            theirs.exists(),
            "a ledger whose blobs could not be checked stays"
        );
        let recheck = |alg: &str, hex: &str| {
            checked.borrow_mut().push(format!("{alg}:{hex}"));
            true
        };
        assert_eq!(sweep(dir.path(), &blobs, &recheck), 2);
        assert!(
            !theirs.exists() && !theirs_too.exists(),
            "settled ledgers go"
        );
        assert!(live.path.exists(), "a held ledger stays");
        let mut want = vec![new.to_string(), listed.to_string()];
        want.sort();
        assert_eq!(
            *checked.borrow(),
            want,
            "modified since it began, or named by it"
        );
        assert!(live.note(&new));
        assert_eq!(
            std::fs::read_to_string(&live.path).unwrap(),
            format!("{new}\n")
        );
    }

    #[test]
    fn a_ledger_of_this_boot_goes_once_it_settled_and_its_process_ended() {
        let Some(boot) = boot_id() else { return };
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs");
        let unsynced = dir.path().join("unsynced");
        std::fs::create_dir_all(&unsynced).unwrap();
        let (fresh, settled) = (
            unsynced.join(format!("{boot}.1.2")),
            unsynced.join(format!("{boot}.1.3")),
        );
        std::fs::write(&fresh, b"").unwrap();
        std::fs::write(&settled, b"").unwrap();
        std::fs::File::options()
            .append(true)
            .open(&settled)
            .unwrap()
            .set_modified(SystemTime::now() - SETTLED * 2)
            .unwrap();
        std::fs::write(unsynced.join("not-a-ledger"), b"").unwrap();
        assert_eq!(sweep(dir.path(), &blobs, &|_, _| unreachable!()), 0);
        assert!(fresh.exists(), "written lately: its blobs may be dirty yet");
        assert!(!settled.exists());
        assert!(unsynced.join("not-a-ledger").exists());
    }
}
