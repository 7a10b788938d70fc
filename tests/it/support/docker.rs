//! The real Docker daemon (Debian's `docker.io`) for the tests where
//! `docker load` / `docker run` / `docker build` is the user's next step:
//! `dockerd` on a private socket under a temp dir, with the vfs storage
//! driver and no networking of its own (root only; stopped by its PID
//! when dropped). It treats 127.0.0.0/8 registries as insecure by itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub struct Docker {
    dir: tempfile::TempDir,
    sock: PathBuf,
    child: std::process::Child,
}

/// Where the docker client is: Debian's (matching the daemon), else any.
fn client() -> &'static str {
    if Path::new("/usr/bin/docker").exists() {
        "/usr/bin/docker"
    } else {
        "docker"
    }
}

impl Docker {
    /// A daemon of its own, ready; `None` (said on stderr) when not root,
    /// as dockerd needs root — unless `IMGPULL_REQUIRE_DOCKER` is set
    /// (scripts/test sets it as root), when that fails the test instead.
    pub async fn start() -> Option<Docker> {
        if !super::tools::is_root() {
            assert!(
                std::env::var_os("IMGPULL_REQUIRE_DOCKER").is_none(),
                "IMGPULL_REQUIRE_DOCKER is set, but dockerd needs root"
            );
            eprintln!("skipping the real-Docker part: dockerd needs root");
            return None;
        }
        assert!(
            Path::new("/usr/sbin/dockerd").exists(),
            "dockerd missing (scripts/test installs docker.io)"
        );
        let dir = tempfile::Builder::new()
            .prefix("imgpull-dockerd-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let sock = d.join("sock");
        let log = std::fs::File::create(d.join("log")).unwrap();
        // Its own (empty) configuration: a host's daemon.json must not
        // change it.
        std::fs::write(d.join("daemon.json"), "{}").unwrap();
        use std::os::unix::process::CommandExt;
        let child = Command::new("/usr/sbin/dockerd")
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .arg("--data-root")
            .arg(d.join("root"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("pid"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args([
                "--storage-driver",
                "vfs",
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own process group: its containerd and shims go with it.
            .process_group(0)
            .spawn()
            .expect("start dockerd");
        let docker = Docker { dir, sock, child };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if docker.run(&["version"]).status.success() {
                return Some(docker);
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not come up: {}",
                std::fs::read_to_string(docker.dir.path().join("log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `docker ARGS` against this daemon.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(client())
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CLI_HINTS", "false")
            .output()
            .expect("run docker")
    }

    /// As [`run`], in `dir`.
    pub fn run_in(&self, dir: &Path, args: &[&str]) -> Output {
        Command::new(client())
            .args(args)
            .current_dir(dir)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .expect("run docker")
    }

    /// `docker ARGS`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            super::text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // SAFETY: the group of our own child.
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.child.wait();
        // What the daemon mounted under its roots goes before the files.
        let _ = Command::new("umount")
            .args(["-R", "-l"])
            .arg(self.dir.path().join("exec"))
            .output();
        let _ = Command::new("umount")
            .args(["-R", "-l"])
            .arg(self.dir.path().join("root"))
            .output();
    }
}
