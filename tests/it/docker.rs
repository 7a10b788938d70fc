//! The real Docker daemon (support/docker.rs): `docker load` of every
//! docker-archive variant imgpull writes (tags, image IDs, a container
//! run), and the rootfs of images Docker itself built compared with
//! `docker export` of a container, attribute by attribute.

use crate::support::docker::Docker;
use crate::support::image::{self, Format, Layer, TestImage};
use crate::support::registry::{self, Registry};
use crate::support::{imgpull, tempdir, text};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

const APPLETS: [&str; 14] = [
    "sh", "ls", "cat", "echo", "mkdir", "rm", "ln", "chmod", "chown", "touch", "seq", "printf",
    "true", "mv",
];

/// A layer holding busybox (Debian's busybox-static) and its applets.
fn busybox_tar() -> tar::Builder<Vec<u8>> {
    let busybox =
        std::fs::read("/bin/busybox").expect("busybox (scripts/test installs busybox-static)");
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    dir.set_mtime(1_700_000_000);
    b.append_data(&mut dir, "bin/", std::io::empty()).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(busybox.len() as u64);
    h.set_mtime(1_700_000_000);
    b.append_data(&mut h, "bin/busybox", busybox.as_slice())
        .unwrap();
    for a in APPLETS {
        let mut l = tar::Header::new_gnu();
        l.set_entry_type(tar::EntryType::Symlink);
        l.set_mode(0o777);
        l.set_size(0);
        l.set_mtime(1_700_000_000);
        b.append_link(&mut l, format!("bin/{a}"), "busybox")
            .unwrap();
    }
    b
}

fn busybox_layer() -> Layer {
    image::pack(busybox_tar().into_inner().unwrap(), image::Packing::Gzip)
}

/// A layer with `/hello` saying `word`.
fn hello(word: &str) -> Layer {
    let mut b = tar::Builder::new(Vec::new());
    let data = format!("{word}\n");
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, "hello", data.as_bytes()).unwrap();
    image::pack(b.into_inner().unwrap(), image::Packing::Gzip)
}

pub(crate) fn runnable(seed: &str, format: Format, arch: &str) -> TestImage {
    image::build_from(seed, format, arch, vec![busybox_layer(), hello(seed)])
}

/// A docker-archive variant: its name, imgpull's arguments, and the tags
/// it must load as (with the image each names).
type Variant<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a TestImage)>);

#[tokio::test(flavor = "multi_thread")]
async fn docker_loads_every_docker_archive_variant_and_runs_it() {
    let Some(docker) = Docker::start().await else {
        return;
    };
    let reg = Registry::start(registry::Variant::Anonymous).await;
    let arch = image::host_arch();
    let other_arch = if arch == "amd64" { "arm64" } else { "amd64" };
    let app = runnable("app", Format::Docker, arch);
    let other = runnable("other", Format::Oci, arch);
    let foreign = runnable("foreign", Format::Docker, other_arch);
    image::push(&reg, "ns/app", "1", &app).await;
    image::push(&reg, "ns/other", "1", &other).await;
    image::push_index(
        &reg,
        "ns/multi",
        "1",
        Format::Docker,
        &[app.clone(), foreign.clone()],
    )
    .await;
    let host = reg.host();
    let (a, b, m) = (
        format!("{host}/ns/app:1"),
        format!("{host}/ns/other:1"),
        format!("{host}/ns/multi:1"),
    );
    let platforms = format!("linux/{arch},linux/{other_arch}");
    let variants: Vec<Variant> = vec![
        (
            "default",
            vec!["pull", &a, "-o", "default.tar"],
            vec![(&a, &app)],
        ),
        (
            "legacy",
            vec!["pull", &a, "-o", "legacy.tar", "--legacy"],
            vec![(&a, &app)],
        ),
        (
            "uncompressed",
            vec![
                "pull",
                &a,
                "-o",
                "plain.tar",
                "--layer-format",
                "uncompressed",
            ],
            vec![(&a, &app)],
        ),
        (
            "several images",
            vec!["pull", &a, &b, "-o", "several.tar"],
            vec![(&a, &app), (&b, &other)],
        ),
        (
            "several platforms",
            vec!["pull", &m, "--platform", &platforms, "-o", "platforms.tar"],
            vec![(&m, &app)],
        ),
    ];
    let work = tempdir();
    for (what, args, tagged) in variants {
        let out = imgpull(work.path(), &args, None).await;
        assert!(out.status.success(), "{what}: {}", text(&out));
        let file = args[args.iter().position(|x| *x == "-o").unwrap() + 1];
        let loaded = docker.ok(&["load", "-i", &work.path().join(file).display().to_string()]);
        for (tag, img) in &tagged {
            assert!(
                loaded.contains(&format!("Loaded image: {tag}")),
                "{what}: {loaded}"
            );
            let id = docker.ok(&["image", "inspect", "--format", "{{.Id}}", tag]);
            assert_eq!(
                id.trim(),
                img.config_digest,
                "{what}: the image ID is the config digest"
            );
            let said = docker.ok(&["run", "--rm", "--network", "none", tag, "cat", "/hello"]);
            let seed = if std::ptr::eq(*img, &app) {
                "app"
            } else {
                "other"
            };
            assert_eq!(said.trim(), seed, "{what}: the loaded image runs");
        }
        if what == "several platforms" {
            // The other platform's image is loaded too, untagged.
            let id = docker.ok(&[
                "image",
                "inspect",
                "--format",
                "{{.Id}}",
                &foreign.config_digest,
            ]);
            assert_eq!(id.trim(), foreign.config_digest, "{what}: {loaded}");
        }
        for (tag, _) in &tagged {
            docker.ok(&["rmi", "-f", tag]);
        }
    }
}

/// What a path is, as compared between `docker export` and a rootfs.
#[derive(Debug, PartialEq, Eq, Clone)]
struct Attr {
    kind: char,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    sha: Option<String>,
    link: Option<String>,
    xattrs: BTreeMap<String, Vec<u8>>,
    mtime: u64,
}

/// Runtime files Docker adds to a container, and the directories whose
/// times it touches doing so.
fn runtime(path: &str) -> bool {
    matches!(
        path,
        ".dockerenv" | "etc/hostname" | "etc/hosts" | "etc/resolv.conf" | "etc/mtab"
    ) || ["dev/", "proc/", "sys/"]
        .iter()
        .any(|p| path.starts_with(p))
        || matches!(path, "dev" | "proc" | "sys" | "etc" | "")
}

/// `docker export` as path -> attributes, and its hardlink groups.
fn exported(tar_path: &Path) -> (BTreeMap<String, Attr>, BTreeSet<BTreeSet<String>>) {
    let mut out = BTreeMap::new();
    let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut ar = tar::Archive::new(std::fs::File::open(tar_path).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .trim_start_matches("./")
            .to_string();
        if runtime(&path) {
            continue;
        }
        let h = e.header().clone();
        let mut xattrs = BTreeMap::new();
        if let Ok(Some(exts)) = e.pax_extensions() {
            for x in exts.flatten() {
                if let Some(k) = x.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                    xattrs.insert(k.to_string(), x.value_bytes().to_vec());
                }
            }
        }
        let kind = match h.entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Link => {
                let target = e
                    .link_name()
                    .unwrap()
                    .unwrap()
                    .to_string_lossy()
                    .trim_start_matches("./")
                    .to_string();
                groups
                    .entry(target.clone())
                    .or_insert_with(|| BTreeSet::from([target.clone()]))
                    .insert(path.clone());
                let mut a: Attr = out
                    .get(&target)
                    .cloned()
                    .expect("hardlink target listed first");
                a.xattrs = xattrs;
                out.insert(path, a);
                continue;
            }
            _ => 'f',
        };
        let mut data = Vec::new();
        if kind == 'f' {
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        }
        out.insert(
            path,
            Attr {
                kind,
                mode: h.mode().unwrap() & 0o7777,
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                size: if kind == 'f' { data.len() as u64 } else { 0 },
                sha: (kind == 'f').then(|| image::sha256(&data)),
                link: (kind == 'l').then(|| {
                    e.link_name()
                        .unwrap()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned()
                }),
                xattrs,
                mtime: h.mtime().unwrap(),
            },
        );
    }
    (out, groups.into_values().collect())
}

fn xattrs_of(p: &Path) -> BTreeMap<String, Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 4096];
    // SAFETY: a valid path and buffer.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    let mut out = BTreeMap::new();
    for name in names[..n.max(0) as usize]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
    {
        let nc = std::ffi::CString::new(name).unwrap();
        let mut v = vec![0u8; 4096];
        // SAFETY: valid strings and buffer.
        let len =
            unsafe { libc::lgetxattr(c.as_ptr(), nc.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        if len >= 0 {
            v.truncate(len as usize);
            out.insert(String::from_utf8_lossy(name).into_owned(), v);
        }
    }
    out
}

/// The tree at `root` as path -> attributes, and its hardlink groups.
fn unpacked(root: &Path) -> (BTreeMap<String, Attr>, BTreeSet<BTreeSet<String>>) {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let t = m.file_type();
            if t.is_dir() {
                stack.push(p.clone());
            }
            if runtime(&rel) {
                continue;
            }
            let kind = if t.is_dir() {
                'd'
            } else if t.is_symlink() {
                'l'
            } else {
                'f'
            };
            if kind == 'f' {
                inodes
                    .entry((m.dev(), m.ino()))
                    .or_default()
                    .insert(rel.clone());
            }
            out.insert(
                rel,
                Attr {
                    kind,
                    mode: m.mode() & 0o7777,
                    uid: m.uid() as u64,
                    gid: m.gid() as u64,
                    size: if kind == 'f' { m.len() } else { 0 },
                    sha: (kind == 'f').then(|| image::sha256(&std::fs::read(&p).unwrap())),
                    link: (kind == 'l').then(|| {
                        std::fs::read_link(&p)
                            .unwrap()
                            .to_string_lossy()
                            .into_owned()
                    }),
                    xattrs: xattrs_of(&p),
                    mtime: m.mtime() as u64,
                },
            );
        }
    }
    let groups = inodes.into_values().filter(|g| g.len() > 1).collect();
    (out, groups)
}

/// The base image: busybox, and `/bin/ping` with a file capability.
fn base_tar() -> Vec<u8> {
    let mut b = busybox_tar();
    b.append_pax_extensions([(
        "SCHILY.xattr.security.capability",
        b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
            .as_slice(),
    )])
    .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o755);
    h.set_size(5);
    h.set_mtime(1_700_000_001);
    b.append_data(&mut h, "bin/ping", b"ping\n".as_slice())
        .unwrap();
    b.into_inner().unwrap()
}

const DOCKERFILE: &str = r#"
FROM base:1 AS build
RUN echo built > /artifact

FROM base:1
RUN mkdir -p /opaque/sub /gone /swap2 /links/a /links/b /empty-later \
 && echo a > /opaque/a && echo b > /opaque/sub/b && echo x > /gone/x \
 && echo f > /swap1 && echo s > /swap2/in
RUN rm -rf /opaque && mkdir /opaque && echo new > /opaque/new && rm /gone/x \
 && rm /swap1 && mkdir /swap1 && echo d > /swap1/d && rm -rf /swap2 && echo file > /swap2 \
 && echo shared > /links/a/f && ln /links/a/f /links/b/g \
 && ln -s ../a/f /links/b/rel && ln -s /links/a/f /links/b/abs && ln -s /nowhere /links/b/dangling \
 && ln /bin/ping /links/ping2 \
 && echo suid > /suid && chmod 4755 /suid && echo sgid > /sgid && chmod 2755 /sgid && mkdir /empty \
 && touch "/long-name-$(printf 'x%.0s' $(seq 1 150))" && mkdir -p "/deep/$(printf 'd%.0s' $(seq 1 90))/$(printf 'e%.0s' $(seq 1 90))" \
 && echo u > "/ünïcödé ✓" && mkdir /owned && echo o > /owned/o && chown -R 1000:1000 /owned && chmod 700 /owned
COPY --from=build /artifact /artifact
ENV GREETING=hello PATH=/bin
WORKDIR /owned
USER 1000:1000
EXPOSE 8080/tcp
HEALTHCHECK --interval=30s CMD ["/bin/true"]
LABEL org.example.test="imgpull"
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo hi"]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn rootfs_of_docker_built_images_equals_docker_export() {
    let Some(docker) = Docker::start().await else {
        return;
    };
    let reg = Registry::start(registry::Variant::Anonymous).await;
    let work = tempdir();
    let w = work.path();
    std::fs::write(w.join("base.tar"), base_tar()).unwrap();
    docker.ok(&[
        "import",
        &w.join("base.tar").display().to_string(),
        "base:1",
    ]);
    let ctx = w.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    let name = format!("{}/ns/built:1", reg.host());
    let out = docker.run_in(&ctx, &["build", "--network", "none", "-t", &name, "."]);
    assert!(out.status.success(), "docker build: {}", text(&out));
    docker.ok(&["push", &name]);
    let out = imgpull(
        w,
        &["pull", &name, "--format", "rootfs", "-o", "root"],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let id = docker.ok(&["create", &name]);
    let export = w.join("export.tar");
    docker.ok(&["export", "-o", &export.display().to_string(), id.trim()]);
    let (want, want_links) = exported(&export);
    let (got, got_links) = unpacked(&w.join("root"));
    let keys: BTreeSet<&String> = want.keys().chain(got.keys()).collect();
    let mut diffs = Vec::new();
    for k in keys {
        if want.get(k) != got.get(k) {
            diffs.push(format!(
                "{k}:\n  docker export {:?}\n  imgpull rootfs {:?}",
                want.get(k),
                got.get(k)
            ));
        }
    }
    assert!(want.len() > 40, "a tree worth comparing: {:?}", want.keys());
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    assert_eq!(want_links, got_links, "hardlink groups");
    // The attributes the layers carry are all there to compare.
    let cap = got.get("bin/ping").expect("bin/ping");
    assert!(cap.xattrs.contains_key("security.capability"), "{cap:?}");
    assert!(got
        .get("links/ping2")
        .is_some_and(|a| a.xattrs.contains_key("security.capability")));
    assert_eq!(got.get("suid").map(|a| a.mode), Some(0o4755));
    assert_eq!(
        got.get("owned/o").map(|a| (a.uid, a.gid)),
        Some((1000, 1000))
    );
    assert!(
        got.contains_key("artifact")
            && got.contains_key("opaque/new")
            && !got.contains_key("opaque/a")
    );
    assert!(!want_links.is_empty());
}
