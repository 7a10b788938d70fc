//! Applying layer tars to a directory, as a container runtime would, and
//! refusing anything that would write outside it.
//!
//! Rules (OCI image spec, "Applying changesets"):
//! - `.wh.NAME` removes NAME from the layers below; `.wh..wh..opq` empties
//!   its directory of everything the layers below put there. Whiteouts do
//!   not hide entries of their own layer, whatever the order.
//! - An entry replaces what is at its path (a directory over a directory
//!   keeps the contents). Modes are applied, directories' last (a read-only
//!   directory must still be filled); ownership only when running as root.
//!   Device nodes are created only when asked ([`Unpacker::devices`]) and
//!   running as root; otherwise they are skipped and counted (FIFOs are
//!   always created).
//!
//! Safety: paths are cleaned component by component and never handed to the
//! OS with `..` in them. An absolute path, a `..` that climbs above the
//! target, or a parent directory that is a symlink climbing above the
//! target is refused with an error naming the entry. Other symlinks on the
//! way are followed inside the target, an absolute one from the target's
//! root (what the container would see: `var/run -> /run` leads to the
//! image's `run`). The final component is never followed: what is there
//! is replaced.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnpackError {
    #[error("refusing layer entry {entry:?}: {reason}")]
    Unsafe { entry: String, reason: String },
    #[error("layer entry {entry:?}: {path}: {source}")]
    Io {
        entry: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading the layer tar: {0}")]
    Tar(std::io::Error),
    #[error("interrupted")]
    Interrupted,
}

/// Symlinks followed while resolving one path, as Linux's limit.
const MAX_HOPS: usize = 40;

/// Directory metadata, applied when everything is in place.
struct DirMeta {
    mode: u32,
    mtime: u64,
}

/// Applies layers, one after the other, to `root`.
pub struct Unpacker {
    root: PathBuf,
    as_root: bool,
    /// Create character and block devices (`--devices`); off by default:
    /// an extracted tree is not a container runtime's, and a device node
    /// in it opens the device to whoever can reach the tree.
    pub devices: bool,
    /// Device nodes not created.
    skipped_devices: usize,
    /// Extended attributes that could not be set: how many, and the first
    /// (name and why).
    xattr_failures: (usize, Option<String>),
    /// Entries of types not unpacked: by type, how many and a few names.
    skipped_kinds: BTreeMap<String, (usize, Vec<String>)>,
    dirs: BTreeMap<PathBuf, DirMeta>,
    /// Things worth telling the user (skipped device nodes).
    pub warnings: Vec<String>,
}

/// A path under the root as cleaned components.
type Rel = Vec<OsString>;

/// Paths (joined with `/`) this layer wrote, which its whiteouts spare;
/// sorted, so "anything under DIR" is one range lookup.
type Added = BTreeSet<OsString>;

fn joined(rel: &[OsString]) -> OsString {
    let mut out = OsString::new();
    for (i, c) in rel.iter().enumerate() {
        if i > 0 {
            out.push("/");
        }
        out.push(c);
    }
    out
}

fn shown(rel: &[OsString]) -> String {
    joined(rel).to_string_lossy().into_owned()
}

impl Unpacker {
    pub fn new(root: &Path) -> Unpacker {
        Unpacker {
            root: root.to_path_buf(),
            // SAFETY: geteuid has no preconditions and cannot fail.
            as_root: unsafe { libc::geteuid() } == 0,
            devices: false,
            skipped_devices: 0,
            xattr_failures: (0, None),
            skipped_kinds: BTreeMap::new(),
            dirs: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    fn path(&self, rel: &[OsString]) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(rel);
        p
    }

    /// Apply one layer's tar stream.
    pub fn apply(&mut self, tar: impl Read) -> Result<(), UnpackError> {
        let mut ar = tar::Archive::new(tar);
        // Paths written by this layer (resolved), which its whiteouts spare.
        let mut added: Added = BTreeSet::new();
        for entry in ar.entries().map_err(UnpackError::Tar)? {
            if crate::util::cancel::requested() {
                return Err(UnpackError::Interrupted);
            }
            let mut entry = entry.map_err(UnpackError::Tar)?;
            let raw = entry.path_bytes().into_owned();
            let name = String::from_utf8_lossy(&raw).into_owned();
            self.entry(&mut entry, &name, &raw, &mut added)?;
        }
        Ok(())
    }

    /// Apply one tar entry: its path is cleaned and told apart by its last
    /// component, resolved by [`Self::inside`], then handed to the function
    /// for what it is.
    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        name: &str,
        raw: &[u8],
        added: &mut Added,
    ) -> Result<(), UnpackError> {
        use tar::EntryType as T;
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink
        ) {
            return Ok(());
        }
        let rel = clean(name, raw)?;
        let Some((base, parent)) = rel.split_last() else {
            self.root_entry(kind, entry.header());
            return Ok(());
        };
        let Some(action) = Action::of(name, base)? else {
            return Ok(()); // aufs bookkeeping (.wh..wh.plnk and such)
        };
        let (leaf, create) = match action {
            Action::Opaque => (None, false),
            Action::Whiteout(hidden) => (Some(hidden), false),
            Action::Put => (Some(base.as_os_str()), true),
        };
        let Some(at) = self.inside(name, parent, leaf, create, added)? else {
            return Ok(());
        };
        match action {
            Action::Opaque => self.opaque(&at, name, added),
            Action::Whiteout(_) => self.whiteout(&at, name, added),
            Action::Put => self.put(entry, kind, &at, name, added),
        }
    }

    /// The root itself (`./`): its time, like any directory's; its mode
    /// stays what the umask gave it (the layer's 0755 must not open a
    /// private extraction to everyone).
    fn root_entry(&mut self, kind: tar::EntryType, h: &tar::Header) {
        if kind == tar::EntryType::Directory {
            self.remember_dir(PathBuf::new(), h);
            if let Some(m) = self.dirs.get_mut(&PathBuf::new()) {
                m.mode = crate::util::fs::dir_mode();
            }
        }
    }

    /// The one path-safety rule every entry goes through (and a hardlink's
    /// target): the directories `parent` resolved inside the root (see
    /// [`Self::resolve`]), then `leaf` appended as it is, never followed.
    /// `None` when a directory is missing and not `create`d.
    fn inside(
        &mut self,
        entry: &str,
        parent: &[OsString],
        leaf: Option<&OsStr>,
        create: bool,
        added: &mut Added,
    ) -> Result<Option<Rel>, UnpackError> {
        let Some(mut at) = self.resolve(parent, entry, create, added)? else {
            return Ok(None);
        };
        at.extend(leaf.map(OsStr::to_os_string));
        Ok(Some(at))
    }

    /// `.wh.NAME` (resolved to `at`): remove NAME from the layers below,
    /// unless this layer wrote it; if this layer put things inside it, only
    /// what is below goes.
    fn whiteout(&mut self, at: &[OsString], name: &str, added: &Added) -> Result<(), UnpackError> {
        let key = joined(at);
        if added.contains(&key) {
            return Ok(());
        }
        let mut prefix = key;
        prefix.push("/");
        // Sorted: whatever starts with the prefix comes right after it.
        if added
            .range(prefix.clone()..)
            .next()
            .is_some_and(|a| a.as_bytes().starts_with(prefix.as_bytes()))
        {
            // This layer put things inside it: only what is below goes.
            return self.opaque(at, name, added);
        }
        self.remove_at(at, name)
    }

    /// Write an entry that is not a whiteout at `at`, replacing what is
    /// there (a directory over a directory keeps it), by the function for
    /// its type; then its extended attributes and time where that function
    /// did not set them. Device nodes not created and unknown types are
    /// counted, not written.
    fn put<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        kind: tar::EntryType,
        at: &[OsString],
        name: &str,
        added: &mut Added,
    ) -> Result<(), UnpackError> {
        use tar::EntryType as T;
        let path = self.path(at);
        let existing = fs::symlink_metadata(&path).ok();
        let keep_dir = kind == T::Directory && existing.as_ref().is_some_and(|m| m.is_dir());
        if existing.is_some() && !keep_dir {
            self.remove_at(at, name)?;
        }
        let h = entry.header().clone();
        let attrs = meta::xattrs(entry);
        match kind {
            T::Directory => self.directory(at, &path, keep_dir, &h, name)?,
            T::Regular | T::Continuous | T::GNUSparse => {
                self.regular(entry, &path, &h, &attrs, name)?
            }
            T::Symlink => self.symlink(entry, &path, &h, name)?,
            T::Link => self.hardlink(entry, &path, name, added)?,
            T::Char | T::Block if !(self.devices && self.as_root) => {
                self.skipped_devices += 1;
                return Ok(());
            }
            T::Char | T::Block | T::Fifo => self.node(kind, &path, &h, name)?,
            other => {
                self.skip_kind(other, name);
                return Ok(());
            }
        }
        if !matches!(kind, T::Link | T::Regular | T::Continuous | T::GNUSparse) {
            self.set_xattrs(&path, &attrs);
        }
        if matches!(kind, T::Symlink | T::Fifo | T::Char | T::Block) {
            // What `set_modified` and `finish` do not reach.
            if let Ok(t) = h.mtime() {
                let _ = meta::set_mtime(&path, t);
            }
        }
        added.insert(joined(at));
        Ok(())
    }

    /// A directory: created unless one is kept there; its mode and time
    /// are recorded for [`Self::finish`].
    fn directory(
        &mut self,
        at: &[OsString],
        path: &Path,
        keep_dir: bool,
        h: &tar::Header,
        name: &str,
    ) -> Result<(), UnpackError> {
        if !keep_dir {
            fs::create_dir(path).map_err(io_at(name, path))?;
        }
        self.own(path, h).map_err(io_at(name, path))?;
        self.remember_dir(PathBuf::from(joined(at)), h);
        Ok(())
    }

    /// A regular file: written new (never through a symlink), then its
    /// time, owner, extended attributes and mode, in that order.
    fn regular<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &Path,
        h: &tar::Header,
        attrs: &[(String, Vec<u8>)],
        name: &str,
    ) -> Result<(), UnpackError> {
        let io = io_at(name, path);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(&io)?;
        // A read that breaks a layer bound is the tar's fault, not this
        // file's.
        std::io::copy(entry, &mut f).map_err(|e| match crate::layer::GuardError::find(&e) {
            Some(_) => UnpackError::Tar(e),
            None => io(e),
        })?;
        if let Some(t) = h.mtime().ok().and_then(time) {
            let _ = f.set_modified(t);
        }
        drop(f);
        self.own(path, h).map_err(&io)?;
        // After chown (which clears capabilities), before a mode that may
        // leave the file unwritable to its (non-root) owner.
        self.set_xattrs(path, attrs);
        fs::set_permissions(path, fs::Permissions::from_mode(mode(h))).map_err(&io)
    }

    /// A symlink, pointing wherever the tar says (it is never followed
    /// while unpacking, so its target needs no check).
    fn symlink<R: Read>(
        &self,
        entry: &tar::Entry<'_, R>,
        path: &Path,
        h: &tar::Header,
        name: &str,
    ) -> Result<(), UnpackError> {
        let target = entry
            .link_name()
            .map_err(UnpackError::Tar)?
            .ok_or_else(|| unsafe_entry(name, "a symlink without a target"))?;
        std::os::unix::fs::symlink(&target, path).map_err(io_at(name, path))?;
        self.own(path, h).map_err(io_at(name, path))
    }

    /// A hardlink to a file already unpacked (see [`Self::link_source`]).
    fn hardlink<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        path: &Path,
        name: &str,
        added: &mut Added,
    ) -> Result<(), UnpackError> {
        let target = entry
            .link_name_bytes()
            .ok_or_else(|| unsafe_entry(name, "a hardlink without a target"))?
            .into_owned();
        let src = self.link_source(name, &target, added)?;
        fs::hard_link(&src, path).map_err(io_at(name, path))
    }

    /// Where a hardlink's `target` is: cleaned and resolved by the same
    /// rule as an entry's path, and refused unless something that is not
    /// a directory is there.
    fn link_source(
        &mut self,
        name: &str,
        target: &[u8],
        added: &mut Added,
    ) -> Result<PathBuf, UnpackError> {
        let shown_target = String::from_utf8_lossy(target).into_owned();
        let trel = clean(&shown_target, target).map_err(|e| match e {
            UnpackError::Unsafe { reason, .. } => unsafe_entry(
                name,
                &format!("its hardlink target {shown_target:?}: {reason}"),
            ),
            other => other,
        })?;
        let Some((tbase, tparent)) = trel.split_last() else {
            return Err(unsafe_entry(name, "a hardlink to the root"));
        };
        let src = self
            .inside(name, tparent, Some(tbase), false, added)?
            .ok_or_else(|| unsafe_entry(name, "its hardlink target does not exist"))?;
        let src = self.path(&src);
        match fs::symlink_metadata(&src) {
            Ok(m) if !m.is_dir() => Ok(src),
            _ => Err(unsafe_entry(
                name,
                "its hardlink target is missing or a directory",
            )),
        }
    }

    /// A FIFO or (when asked, as root) a device node, then its owner.
    fn node(
        &self,
        kind: tar::EntryType,
        path: &Path,
        h: &tar::Header,
        name: &str,
    ) -> Result<(), UnpackError> {
        let dev = libc::makedev(
            h.device_major().ok().flatten().unwrap_or(0),
            h.device_minor().ok().flatten().unwrap_or(0),
        );
        let fmt = match kind {
            tar::EntryType::Char => libc::S_IFCHR,
            tar::EntryType::Block => libc::S_IFBLK,
            _ => libc::S_IFIFO,
        };
        let c = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| unsafe_entry(name, "a NUL in its path"))?;
        // SAFETY: `c` is a valid NUL-terminated path for the call.
        if unsafe { libc::mknod(c.as_ptr(), fmt | mode(h), dev) } != 0 {
            return Err(io_at(name, path)(std::io::Error::last_os_error()));
        }
        self.own(path, h).map_err(io_at(name, path))
    }

    /// Count an entry of a type not unpacked, with a few names kept short:
    /// a layer of a thousand odd entries with long names must not fill the
    /// memory with warnings.
    fn skip_kind(&mut self, kind: tar::EntryType, name: &str) {
        let (n, names) = self.skipped_kinds.entry(format!("{kind:?}")).or_default();
        *n += 1;
        if names.len() < 3 {
            names.push(name.chars().take(120).collect());
        }
    }

    /// Extended attributes, after ownership (`chown` clears
    /// `security.capability`); what cannot be set is counted for a warning.
    fn set_xattrs(&mut self, path: &Path, attrs: &[(String, Vec<u8>)]) {
        for f in meta::set_xattrs(path, attrs, self.as_root) {
            self.xattr_failures.0 += 1;
            self.xattr_failures
                .1
                .get_or_insert_with(|| f.chars().take(200).collect());
        }
    }

    /// Resolve the directories `parent` under the root, following symlinks
    /// that stay inside; missing ones are created when `create` (else
    /// `None`). Errors when the path would leave the root.
    fn resolve(
        &mut self,
        parent: &[OsString],
        entry: &str,
        create: bool,
        added: &mut Added,
    ) -> Result<Option<Rel>, UnpackError> {
        let mut done: Rel = Vec::new();
        let mut todo: VecDeque<OsString> = parent.iter().cloned().collect();
        let mut hops = 0;
        while let Some(c) = todo.pop_front() {
            if c.is_empty() || c == "." {
                continue;
            }
            if c == ".." {
                if done.pop().is_none() {
                    return Err(unsafe_entry(
                        entry,
                        "it would be written through a symlink that climbs out of the target",
                    ));
                }
                continue;
            }
            done.push(c);
            let p = self.path(&done);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    hops += 1;
                    self.follow(entry, &p, hops, &mut done, &mut todo)?;
                }
                Ok(_) => {
                    return Err(unsafe_entry(
                        entry,
                        &format!("{} is not a directory", shown(&done)),
                    ));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if !create {
                        return Ok(None);
                    }
                    fs::create_dir(&p).map_err(|e| self.io(entry, &done, e))?;
                    added.insert(joined(&done));
                }
                Err(e) => return Err(self.io(entry, &done, e)),
            }
        }
        Ok(Some(done))
    }

    /// The symlink at `p` (the last of `done`, the `hops`th on the way):
    /// its target's components go first in `todo`, from where the link is
    /// or, when absolute, from the root; refused past [`MAX_HOPS`].
    fn follow(
        &self,
        entry: &str,
        p: &Path,
        hops: usize,
        done: &mut Rel,
        todo: &mut VecDeque<OsString>,
    ) -> Result<(), UnpackError> {
        let target = fs::read_link(p).map_err(|e| self.io(entry, done, e))?;
        let link = format!("{} -> {}", shown(done), target.display());
        if hops > MAX_HOPS {
            return Err(unsafe_entry(
                entry,
                &format!("too many symlinks on its path (at {link})"),
            ));
        }
        done.pop();
        // An absolute target means the image's root, as the container sees
        // it (as umoci and containerd resolve).
        if target.is_absolute() {
            done.clear();
        }
        let bytes = target.as_os_str().as_bytes();
        for part in bytes.split(|b| *b == b'/').rev() {
            todo.push_front(OsStr::from_bytes(part).to_os_string());
        }
        Ok(())
    }

    /// Empty `dir` of what lower layers put there (what this layer added stays).
    fn opaque(&mut self, dir: &[OsString], entry: &str, added: &Added) -> Result<(), UnpackError> {
        let path = self.path(dir);
        let list = match fs::read_dir(&path) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.io(entry, dir, e)),
        };
        for child in list {
            let child = child.map_err(|e| self.io(entry, dir, e))?;
            let mut rel = dir.to_vec();
            rel.push(child.file_name());
            if !added.contains(&joined(&rel)) {
                self.remove_at(&rel, entry)?;
            } else if child.file_type().is_ok_and(|t| t.is_dir()) {
                self.opaque(&rel, entry, added)?;
            }
        }
        Ok(())
    }

    /// Remove what is at `rel` (not following a symlink there) and forget
    /// the directory modes recorded at or under it.
    fn remove_at(&mut self, rel: &[OsString], entry: &str) -> Result<(), UnpackError> {
        remove(&self.path(rel)).map_err(|e| self.io(entry, rel, e))?;
        // Paths sort by component: `gone` and what is under it are one
        // run of keys (not a scan of every directory, for each removal).
        let gone = PathBuf::from(joined(rel));
        let under: Vec<PathBuf> = self
            .dirs
            .range(gone.clone()..)
            .map(|(p, _)| p)
            .take_while(|p| p.starts_with(&gone))
            .cloned()
            .collect();
        for p in under {
            self.dirs.remove(&p);
        }
        Ok(())
    }

    fn remember_dir(&mut self, rel: PathBuf, h: &tar::Header) {
        self.dirs.insert(
            rel,
            DirMeta {
                mode: mode(h),
                mtime: h.mtime().unwrap_or(0),
            },
        );
    }

    /// Ownership from the tar, when running as root.
    fn own(&self, path: &Path, h: &tar::Header) -> std::io::Result<()> {
        if !self.as_root {
            return Ok(());
        }
        let (uid, gid) = (h.uid().unwrap_or(0), h.gid().unwrap_or(0));
        std::os::unix::fs::lchown(path, Some(uid as u32), Some(gid as u32))
    }

    /// Apply directory modes and times, deepest first.
    pub fn finish(mut self) -> Result<Vec<String>, UnpackError> {
        if self.skipped_devices > 0 {
            let why = match (self.devices, self.as_root) {
                (false, _) => "pass --devices (as root) to create them",
                (true, false) => "creating them needs root",
                (true, true) => unreachable!("created"),
            };
            self.warnings.push(format!(
                "{} device node(s) not created: {why}",
                self.skipped_devices
            ));
        }
        for (kind, (n, names)) in std::mem::take(&mut self.skipped_kinds) {
            self.warnings.push(format!(
                "{n} tar entr{} of type {kind} skipped (e.g. {})",
                if n == 1 { "y" } else { "ies" },
                names.join(", ")
            ));
        }
        if let (n, Some(first)) = &self.xattr_failures {
            self.warnings
                .push(format!("{n} extended attribute(s) not set, e.g. {first}"));
        }
        let mut dirs: Vec<_> = self.dirs.iter().collect();
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
        for (rel, meta) in dirs {
            let path = self.root.join(rel);
            // A directory a later layer removed or replaced is skipped, and
            // so is one reached through a symlink (never follow out).
            if !real_dirs(&self.root, rel) {
                continue;
            }
            if let (Ok(d), Some(t)) = (fs::File::open(&path), time(meta.mtime)) {
                let _ = d.set_modified(t);
            }
            fs::set_permissions(&path, fs::Permissions::from_mode(meta.mode)).map_err(|e| {
                UnpackError::Io {
                    entry: rel.display().to_string(),
                    path: path.clone(),
                    source: e,
                }
            })?;
        }
        Ok(self.warnings)
    }

    fn io(&self, entry: &str, rel: &[OsString], e: std::io::Error) -> UnpackError {
        UnpackError::Io {
            entry: entry.to_string(),
            path: self.path(rel),
            source: e,
        }
    }
}

/// What an entry asks for, told by the last component of its path.
#[derive(Clone, Copy)]
enum Action<'a> {
    /// `.wh..wh..opq`: empty its directory of what the layers below put
    /// there.
    Opaque,
    /// `.wh.NAME`: remove NAME (given) from the layers below.
    Whiteout(&'a OsStr),
    /// Anything else: put it at its path.
    Put,
}

impl<'a> Action<'a> {
    /// Tell `base` apart: `None` for aufs bookkeeping (`.wh..wh.plnk` and
    /// such), which is ignored; a whiteout of `.`, `..` or nothing is
    /// refused.
    fn of(name: &str, base: &'a OsStr) -> Result<Option<Action<'a>>, UnpackError> {
        if base.as_bytes() == b".wh..wh..opq" {
            return Ok(Some(Action::Opaque));
        }
        let Some(hidden) = base.as_bytes().strip_prefix(b".wh.") else {
            return Ok(Some(Action::Put));
        };
        if hidden.starts_with(b".wh.") {
            return Ok(None);
        }
        if matches!(hidden, b"" | b"." | b"..") {
            return Err(unsafe_entry(
                name,
                "a whiteout of no file (., .. or nothing)",
            ));
        }
        Ok(Some(Action::Whiteout(OsStr::from_bytes(hidden))))
    }
}

/// The error for an I/O failure at `path` while applying `entry`.
fn io_at<'a>(entry: &'a str, path: &'a Path) -> impl Fn(std::io::Error) -> UnpackError + 'a {
    move |e| UnpackError::Io {
        entry: entry.to_string(),
        path: path.to_path_buf(),
        source: e,
    }
}

/// Whether every component of `rel` under `root` is a directory, not a
/// symlink.
fn real_dirs(root: &Path, rel: &Path) -> bool {
    let mut p = root.to_path_buf();
    for c in rel.components() {
        p.push(c);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            _ => return false,
        }
    }
    true
}

fn time(secs: u64) -> Option<std::time::SystemTime> {
    std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs))
}

fn unsafe_entry(entry: &str, reason: &str) -> UnpackError {
    UnpackError::Unsafe {
        entry: entry.to_string(),
        reason: reason.to_string(),
    }
}

fn mode(h: &tar::Header) -> u32 {
    h.mode().unwrap_or(0o644) & 0o7777
}

/// Clean an entry path into components; refuse absolute paths, `..` above
/// the root and NUL bytes.
fn clean(name: &str, raw: &[u8]) -> Result<Rel, UnpackError> {
    if raw.first() == Some(&b'/') {
        return Err(unsafe_entry(name, "an absolute path"));
    }
    if raw.contains(&0) {
        return Err(unsafe_entry(name, "a NUL byte in its path"));
    }
    let mut out: Rel = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err(unsafe_entry(name, "its path climbs out of the target (..)"));
                }
            }
            p => out.push(OsStr::from_bytes(p).to_os_string()),
        }
    }
    Ok(out)
}

/// Remove whatever is at `path` without following a symlink there.
fn remove(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

mod meta;

#[cfg(test)]
mod tests;
