use super::*;
use std::os::unix::fs::MetadataExt;

enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, &'a str),
    Sym(&'a str, &'a str),
    Hard(&'a str, &'a str),
}

/// A tar with exactly these entries; names are written raw (the tar
/// crate's own path checks would refuse the hostile ones).
fn tar(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (name, data, link) = match e {
            E::Dir(n, m) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*m);
                (*n, "", None)
            }
            E::File(n, d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                (*n, *d, None)
            }
            E::Sym(n, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                (*n, "", Some(*t))
            }
            E::Hard(n, t) => {
                h.set_entry_type(tar::EntryType::Link);
                (*n, "", Some(*t))
            }
        };
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(t) = link {
            gnu.linkname[..t.len()].copy_from_slice(t.as_bytes());
        }
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

struct Scene {
    _dir: tempfile::TempDir,
    outer: PathBuf,
    root: PathBuf,
}

fn scene() -> Scene {
    let dir = tempfile::tempdir().unwrap();
    let outer = dir.path().to_path_buf();
    let root = outer.join("root");
    fs::create_dir(&root).unwrap();
    Scene {
        _dir: dir,
        outer,
        root,
    }
}

fn apply(root: &Path, layers: &[Vec<u8>]) -> Result<Vec<String>, UnpackError> {
    let mut u = Unpacker::new(root);
    for l in layers {
        u.apply(l.as_slice())?;
    }
    u.finish()
}

/// Everything under `dir` but `root`: what an escape would leave.
fn outside(s: &Scene) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(&s.outer)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "root")
        .collect();
    v.sort();
    v
}

fn read(root: &Path, p: &str) -> Option<String> {
    fs::read_to_string(root.join(p)).ok()
}

#[test]
fn whiteouts_and_opaque_directories_hide_lower_layers_only() {
    let s = scene();
    let lower = tar(&[
        E::Dir("a/", 0o755),
        E::File("a/x", "x"),
        E::File("a/y", "y"),
        E::Dir("c/", 0o755),
        E::File("c/old", "old"),
        E::Dir("c/sub/", 0o755),
        E::File("c/sub/deep", "deep"),
        E::Dir("d/", 0o755),
        E::File("d/gone", "gone"),
    ]);
    let upper = tar(&[
        E::File("a/.wh.x", ""),
        E::Dir("c/", 0o755),
        E::File("c/.wh..wh..opq", ""),
        E::File("c/new", "new"),
        // Entries before the opaque marker in the same layer stay.
        E::File("d/mine", "mine"),
        E::File("d/.wh..wh..opq", ""),
        // A whiteout does not hide its own layer's file.
        E::File("e", "e"),
        E::File(".wh.e", ""),
    ]);
    apply(&s.root, &[lower, upper]).unwrap();
    assert_eq!(read(&s.root, "a/x"), None);
    assert_eq!(read(&s.root, "a/y").as_deref(), Some("y"));
    assert_eq!(read(&s.root, "c/old"), None);
    assert!(!s.root.join("c/sub").exists());
    assert_eq!(read(&s.root, "c/new").as_deref(), Some("new"));
    assert_eq!(read(&s.root, "d/gone"), None);
    assert_eq!(read(&s.root, "d/mine").as_deref(), Some("mine"));
    assert_eq!(read(&s.root, "e").as_deref(), Some("e"));
    assert!(!s.root.join("a/.wh.x").exists());
}

#[test]
fn escapes_are_refused_and_nothing_lands_outside() {
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("../escape", vec![tar(&[E::File("../escape", "x")])]),
        (
            "a/../../escape",
            vec![tar(&[E::File("a/../../escape", "x")])],
        ),
        ("/escape", vec![tar(&[E::File("/escape", "x")])]),
        (
            "evil/escape",
            vec![
                tar(&[E::Sym("evil", "../")]),
                tar(&[E::File("evil/escape", "x")]),
            ],
        ),
        (
            "abs/escape",
            vec![tar(&[E::Sym("abs", "/../tmp"), E::File("abs/escape", "x")])],
        ),
        (
            ".wh...",
            vec![tar(&[E::Dir("a/", 0o755), E::File(".wh...", "")])],
        ),
        (
            "a/.wh..",
            vec![tar(&[E::Dir("a/", 0o755), E::File("a/.wh..", "")])],
        ),
        (
            "hop/escape",
            vec![tar(&[
                E::Dir("d/", 0o755),
                E::Sym("d/up", ".."),
                E::Sym("hop", "d/up/d/up/.."),
                E::File("hop/escape", "x"),
            ])],
        ),
        ("link", vec![tar(&[E::Hard("link", "../escape")])]),
        (
            "outhard",
            vec![tar(&[E::Sym("s", "../"), E::Hard("outhard", "s/escape")])],
        ),
    ];
    for (entry, layers) in cases {
        let s = scene();
        fs::write(s.outer.join("escape-target"), "keep").unwrap();
        let err = apply(&s.root, &layers).unwrap_err();
        match &err {
            UnpackError::Unsafe { entry: e, .. } => assert_eq!(e, entry, "{err}"),
            other => panic!("{entry}: expected a refusal, got {other}"),
        }
        assert_eq!(outside(&s), ["escape-target"], "{entry}");
        assert_eq!(read(&s.outer, "escape-target").as_deref(), Some("keep"));
    }
}

#[test]
fn symlinks_inside_are_followed_and_final_ones_replaced() {
    let s = scene();
    fs::write(s.outer.join("secret"), "keep").unwrap();
    let l1 = tar(&[
        E::Dir("usr/", 0o755),
        E::Dir("usr/lib/", 0o755),
        E::Sym("lib", "usr/lib"),
        E::Sym("f", "../secret"),
        E::Dir("var/", 0o755),
        E::Sym("var/run", "/run"),
    ]);
    let l2 = tar(&[
        E::File("lib/libc.so", "c"),
        E::File("f", "mine"),
        E::File("var/run/pid", "1"),
    ]);
    apply(&s.root, &[l1, l2]).unwrap();
    assert_eq!(read(&s.root, "usr/lib/libc.so").as_deref(), Some("c"));
    // An absolute symlink leads to the image's root, not the host's.
    assert_eq!(read(&s.root, "run/pid").as_deref(), Some("1"));
    assert!(fs::symlink_metadata(s.root.join("lib"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(fs::symlink_metadata(s.root.join("f")).unwrap().is_file());
    assert_eq!(read(&s.outer, "secret").as_deref(), Some("keep"));
}

#[test]
fn hardlinks_modes_and_read_only_directories() {
    let s = scene();
    let l = tar(&[
        E::Dir("ro/", 0o555),
        E::File("ro/file", "data"),
        E::Hard("ro/again", "ro/file"),
    ]);
    apply(&s.root, &[l]).unwrap();
    let a = fs::metadata(s.root.join("ro/file")).unwrap();
    let b = fs::metadata(s.root.join("ro/again")).unwrap();
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.mode() & 0o7777, 0o644);
    assert_eq!(
        fs::metadata(s.root.join("ro")).unwrap().mode() & 0o7777,
        0o555
    );
    fs::set_permissions(s.root.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_whiteout_spares_what_its_own_layer_put_inside() {
    let s = scene();
    let lower = tar(&[E::Dir("a/", 0o777), E::File("a/old", "old")]);
    let upper = tar(&[E::File("a/new", "new"), E::File(".wh.a", "")]);
    apply(&s.root, &[lower, upper]).unwrap();
    assert_eq!(read(&s.root, "a/old"), None);
    assert_eq!(read(&s.root, "a/new").as_deref(), Some("new"));
}

#[test]
fn directory_modes_never_reach_through_a_later_symlink() {
    let s = scene();
    let victim = s.outer.join("victim");
    fs::create_dir(&victim).unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o700)).unwrap();
    // `a/victim` gets a mode; then `a` becomes a symlink to the directory
    // holding the root (written as the final component, so allowed).
    let l1 = tar(&[E::Dir("a/", 0o755), E::Dir("a/victim/", 0o777)]);
    let l2 = tar(&[E::Sym("a", "..")]);
    apply(&s.root, &[l1, l2]).unwrap();
    assert_eq!(fs::metadata(&victim).unwrap().mode() & 0o7777, 0o700);
}

#[test]
fn huge_mtimes_do_not_panic() {
    let s = scene();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(1);
    h.set_mtime(u64::MAX);
    b.append_data(&mut h, "f", b"x".as_slice()).unwrap();
    apply(&s.root, &[b.into_inner().unwrap()]).unwrap();
    assert_eq!(read(&s.root, "f").as_deref(), Some("x"));
}

#[test]
fn xattrs_and_every_mtime_are_restored() {
    let s = scene();
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([
        ("SCHILY.xattr.user.origin", b"imgpull".as_slice()),
        (
            "SCHILY.xattr.security.capability",
            b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
                .as_slice(),
        ),
    ])
    .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o755);
    h.set_mtime(1_000_000);
    b.append_data(&mut h, "bin/ping", b"#!".as_slice()).unwrap();
    let mut l = tar::Header::new_gnu();
    l.set_entry_type(tar::EntryType::Symlink);
    l.set_size(0);
    l.set_mode(0o777);
    l.set_mtime(2_000_000);
    b.append_link(&mut l, "bin/link", "ping").unwrap();
    let mut f = tar::Header::new_gnu();
    f.set_entry_type(tar::EntryType::Fifo);
    f.set_size(0);
    f.set_mode(0o600);
    f.set_mtime(3_000_000);
    b.append_data(&mut f, "run/fifo", std::io::empty()).unwrap();
    let mut u = Unpacker::new(&s.root);
    u.apply(b.into_inner().unwrap().as_slice()).unwrap();
    let warnings = u.finish().unwrap();
    let get = |name: &str| {
        let p = std::ffi::CString::new(s.root.join("bin/ping").as_os_str().as_bytes()).unwrap();
        let n = std::ffi::CString::new(name).unwrap();
        let mut buf = [0u8; 64];
        // SAFETY: valid strings and buffer.
        let len =
            unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        (len >= 0).then(|| buf[..len as usize].to_vec())
    };
    assert_eq!(get("user.origin").as_deref(), Some(b"imgpull".as_slice()));
    let root = unsafe { libc::geteuid() } == 0;
    assert_eq!(get("security.capability").is_some(), root, "{warnings:?}");
    if !root {
        assert!(
            warnings.iter().any(|w| w.contains("security.capability")),
            "{warnings:?}"
        );
    }
    let mtime = |p: &str| fs::symlink_metadata(s.root.join(p)).unwrap().mtime();
    assert_eq!(
        (mtime("bin/ping"), mtime("bin/link"), mtime("run/fifo")),
        (1_000_000, 2_000_000, 3_000_000)
    );
}
