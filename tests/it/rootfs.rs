//! `--format rootfs`: the same tree as `umoci unpack` of the same image,
//! and hostile layers refused with nothing written outside.

use crate::support::image::{self, Format, Packing};
use crate::support::registry::{Registry, Variant};
use crate::support::{imgpull, tempdir, text, tools};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, u32, &'a str),
    Sym(&'a str, &'a str),
    Hard(&'a str, &'a str),
}

/// A layer tar with exactly these entries. Names go in raw (GNU long-name
/// records for long ones) so hostile paths can be written too.
fn tar(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        let (name, data, link) = match e {
            E::Dir(n, m) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*m);
                (*n, "", None)
            }
            E::File(n, m, d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*m);
                (*n, *d, None)
            }
            E::Sym(n, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                (*n, "", Some(*t))
            }
            E::Hard(n, t) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(0o644);
                (*n, "", Some(*t))
            }
        };
        if name.len() > 100 {
            let mut l = tar::Header::new_gnu();
            l.set_entry_type(tar::EntryType::GNULongName);
            l.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
            let mut n = name.as_bytes().to_vec();
            n.push(0);
            l.set_size(n.len() as u64);
            l.set_cksum();
            b.append(&l, n.as_slice()).unwrap();
        }
        let gnu = h.as_gnu_mut().unwrap();
        let short = &name.as_bytes()[..name.len().min(100)];
        gnu.name[..short.len()].copy_from_slice(short);
        if let Some(t) = link {
            gnu.linkname[..t.len()].copy_from_slice(t.as_bytes());
        }
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

async fn push_layers(reg: &Registry, repo: &str, layers: Vec<Vec<u8>>) {
    let layers = layers
        .into_iter()
        .map(|t| image::pack(t, Packing::Gzip))
        .collect();
    let img = image::build_from(repo, Format::Oci, image::host_arch(), layers);
    image::push(reg, repo, "1", &img).await;
}

/// path -> (type, mode, link target, content hash, hardlink group)
fn tree(root: &Path) -> BTreeMap<String, (String, u32, String, String, usize)> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let (kind, link, hash) = if m.file_type().is_symlink() {
                (
                    "symlink",
                    std::fs::read_link(&p).unwrap().display().to_string(),
                    String::new(),
                )
            } else if m.is_dir() {
                stack.push(p.clone());
                ("dir", String::new(), String::new())
            } else {
                if m.nlink() > 1 {
                    inodes.entry(m.ino()).or_default().push(rel.clone());
                }
                (
                    "file",
                    String::new(),
                    image::sha256(&std::fs::read(&p).unwrap()),
                )
            };
            let mode = if kind == "symlink" {
                0
            } else {
                m.mode() & 0o7777
            };
            out.insert(rel, (kind.to_string(), mode, link, hash, 0));
        }
    }
    // Hardlink groups, numbered by their first path.
    let mut groups: Vec<Vec<String>> = inodes
        .into_values()
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    groups.sort();
    for (i, g) in groups.iter().enumerate() {
        for p in g {
            out.get_mut(p).unwrap().4 = i + 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn rootfs_equals_umoci_unpack() {
    let reg = Registry::start(Variant::Anonymous).await;
    let long = format!("deep/{}/{}", "d".repeat(60), "f".repeat(80));
    let l1 = tar(&[
        E::Dir("etc/", 0o755),
        E::File("etc/a", 0o644, "a v1\n"),
        E::File("etc/b", 0o644, "b\n"),
        E::File("etc/secret", 0o600, "s\n"),
        E::Dir("bin/", 0o755),
        E::File("bin/tool", 0o755, "#!/bin/true\n"),
        E::Sym("bin/sh", "tool"),
        E::Sym("abs", "/etc/a"),
        E::Hard("etc/hard", "etc/b"),
        E::Dir("opt/", 0o755),
        E::File("opt/one", 0o644, "1\n"),
        E::Dir("opt/two/", 0o750),
        E::File("opt/two/x", 0o644, "x\n"),
        E::Dir("deep/", 0o755),
        E::File(&long, 0o644, "long\n"),
    ]);
    let l2 = tar(&[
        E::File("etc/.wh.secret", 0o644, ""),
        E::Dir("opt/", 0o755),
        E::File("opt/.wh..wh..opq", 0o644, ""),
        E::File("opt/three", 0o640, "3\n"),
        E::File("etc/a", 0o644, "a v2\n"),
        E::Sym("bin/newlink", "../etc/a"),
        E::Dir("private/", 0o700),
        E::File("private/key", 0o400, "k\n"),
    ]);
    let l3 = tar(&[
        E::Hard("opt/three-again", "opt/three"),
        E::File("bin/.wh.sh", 0o644, ""),
        E::Dir("bin/sh/", 0o755),
    ]);
    push_layers(&reg, "ns/tree", vec![l1, l2, l3]).await;
    let work = tempdir();
    let name = format!("{}/ns/tree:1", reg.host());
    let out = imgpull(
        work.path(),
        &["pull", &name, "--format", "rootfs", "-o", "rootfs"],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let out = imgpull(work.path(), &["pull", &name, "-o", "oci:layout"], None).await;
    assert!(out.status.success(), "{}", text(&out));
    tools::umoci_unpack(
        &work.path().join("layout"),
        "1",
        &work.path().join("bundle"),
    );
    let ours = tree(&work.path().join("rootfs"));
    let theirs = tree(&work.path().join("bundle/rootfs"));
    assert_eq!(ours, theirs);
    // And the tree is what the layers say (not just what umoci says).
    assert!(!ours.contains_key("etc/secret") && !ours.contains_key("opt/one"));
    assert!(!ours.contains_key("opt/two"));
    assert_eq!(ours["etc/a"].3, image::sha256(b"a v2\n"));
    assert_eq!(ours["bin/sh"].0, "dir");
    assert_eq!(ours["private"].1, 0o700);
    assert_ne!(ours["opt/three"].4, 0);
    assert_eq!(ours["opt/three"].4, ours["opt/three-again"].4);
    assert!(ours.contains_key(&long));
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_layers_are_refused_and_nothing_lands_outside() {
    let reg = Registry::start(Variant::Anonymous).await;
    let abs = format!("/tmp/imgpull-escape-{}", std::process::id());
    let cases: Vec<(&str, &str, Vec<Vec<u8>>)> = vec![
        (
            "ns/dotdot",
            "../escape",
            vec![tar(&[E::File("../escape", 0o644, "x")])],
        ),
        (
            "ns/abs",
            abs.as_str(),
            vec![tar(&[E::File(&abs, 0o644, "x")])],
        ),
        (
            "ns/symlink",
            "evil/escape",
            vec![
                tar(&[E::Sym("evil", "../../..")]),
                tar(&[E::File("evil/escape", 0o644, "x")]),
            ],
        ),
    ];
    for (repo, entry, layers) in cases {
        push_layers(&reg, repo, layers).await;
        let work = tempdir();
        let target = work.path().join("sub");
        std::fs::create_dir(&target).unwrap();
        let name = format!("{}/{repo}:1", reg.host());
        let out = imgpull(
            &target,
            &["pull", &name, "--format", "rootfs", "-o", "out"],
            None,
        )
        .await;
        assert!(!out.status.success(), "{repo}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("refusing layer entry {entry:?}")),
            "{repo}: {stderr}"
        );
        let mut left: Vec<String> = std::fs::read_dir(&target)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with(".home") && n != "docker_images_cache")
            .collect();
        left.sort();
        assert!(left.is_empty(), "{repo}: left behind {left:?}");
        let mut outer: Vec<String> = std::fs::read_dir(work.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        outer.sort();
        assert_eq!(outer, ["sub"], "{repo}");
        assert!(!Path::new(&abs).exists(), "{repo}");
        assert!(!Path::new("/escape").exists());
    }
}
