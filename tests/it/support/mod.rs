//! Test support: real registries on loopback, a token server, a fault
//! proxy, generated images, and third-party checks of what we write.

#![allow(dead_code)]

pub mod certs;
pub mod cloud;
pub mod docker;
pub mod front;
pub mod hostile;
pub mod http;
pub mod image;
pub mod proxy;
pub mod registry;
pub mod token;
pub mod tools;

use std::path::{Path, PathBuf};
use std::process::Output;

/// A free port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// Run the imgpull binary in `cwd` with a clean environment (no user
/// config, no proxies), optionally feeding `stdin`.
pub async fn imgpull(cwd: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    imgpull_env(cwd, args, stdin, &[]).await
}

/// As [`imgpull`], with extra environment variables.
pub async fn imgpull_env(
    cwd: &Path,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> Output {
    use tokio::io::AsyncWriteExt;
    let home = cwd.join(".home");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_imgpull"));
    cmd.args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"));
    // `IMGPULL_TEST_CACHE=memory scripts/test SUITES` runs suites on another
    // cache backend (scripts/test does, for those that do not look at the
    // cache's files).
    if let Some(backend) = std::env::var_os("IMGPULL_TEST_CACHE") {
        cmd.env("IMGPULL_CACHE", backend);
    }
    cmd.envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn imgpull");
    if let Some(input) = stdin {
        let mut s = child.stdin.take().unwrap();
        s.write_all(input.as_bytes()).await.unwrap();
        drop(s);
    }
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        child.wait_with_output(),
    )
    .await
    .expect("imgpull finished within 120 s")
    .expect("imgpull ran");
    out
}

pub fn text(out: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("imgpull-it-")
        .tempdir()
        .unwrap()
}

/// Files under `dir` (recursively), relative.
pub fn list_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// `imgpull pull NAME -o OUT --cache-dir cache` in `cwd`.
pub async fn pull_cached(cwd: &Path, name: &str, out: &str) -> Output {
    imgpull(
        cwd,
        &["pull", name, "-o", out, "--cache-dir", "cache"],
        None,
    )
    .await
}

/// `imgpull cache verify --cache-dir DIR` (relative to `cwd`) reports no
/// bad blob.
pub async fn assert_cache_clean(cwd: &Path, dir: &str) {
    let v = imgpull(cwd, &["cache", "verify", "--cache-dir", dir], None).await;
    assert!(
        v.status.success() && String::from_utf8_lossy(&v.stdout).contains(", 0 bad"),
        "cache verify: {}",
        text(&v)
    );
}

/// How a run of imgpull went, measured by the kernel.
pub struct Measured {
    pub out: Output,
    /// Peak resident memory, KiB.
    pub max_rss_kib: u64,
    /// CPU seconds spent in user space (not waiting on the disk).
    pub user_cpu: f64,
    pub elapsed: std::time::Duration,
}

impl Measured {
    pub fn text(&self) -> String {
        format!(
            "{}\n--- peak RSS {} KiB, {:.1} s ({:.1} s user CPU)",
            text(&self.out),
            self.max_rss_kib,
            self.elapsed.as_secs_f64(),
            self.user_cpu
        )
    }

    /// stdout and stderr together.
    pub fn all(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.out.stdout),
            String::from_utf8_lossy(&self.out.stderr)
        )
    }
}

/// Run imgpull as [`imgpull_env`] does, and measure its peak memory and
/// time; killed after `limit` (the test then fails on its exit code).
/// `umask`, when given, is set in the child before it starts.
///
/// Peak memory comes from GNU time (`/usr/bin/time -f %M`), which forks
/// imgpull from a small process: a child forked straight from this large
/// test process would count this process's pages (the kernel carries the
/// parent's high-water mark across exec).
pub async fn measured(
    cwd: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    limit: std::time::Duration,
    umask: Option<u32>,
) -> Measured {
    let home = cwd.join(".home");
    std::fs::create_dir_all(&home).unwrap();
    let rss_file = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = tokio::process::Command::new("/usr/bin/time");
    cmd.arg("-f")
        .arg("%M %U")
        .arg("-o")
        .arg(rss_file.path())
        .arg(env!("CARGO_BIN_EXE_imgpull"))
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(mask) = umask {
        // SAFETY: umask is async-signal-safe and has no preconditions.
        unsafe {
            cmd.pre_exec(move || {
                libc::umask(mask as libc::mode_t);
                Ok(())
            });
        }
    }
    let started = std::time::Instant::now();
    let child = cmd
        .spawn()
        .expect("spawn /usr/bin/time imgpull (apt-get install time)");
    let pgid = child.id().expect("running") as libc::pid_t;
    let out = match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(out) => out.expect("imgpull ran"),
        Err(_) => {
            // SAFETY: the group of our own child.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            panic!("imgpull {args:?} still running after {limit:?}");
        }
    };
    let elapsed = started.elapsed();
    let report = std::fs::read_to_string(rss_file.path()).unwrap_or_default();
    let mut last = report.lines().last().unwrap_or("").split_whitespace();
    let max_rss_kib = last.next().and_then(|v| v.parse().ok()).unwrap_or(u64::MAX);
    let user_cpu = last.next().and_then(|v| v.parse().ok()).unwrap_or(f64::MAX);
    Measured {
        out,
        max_rss_kib,
        user_cpu,
        elapsed,
    }
}
