//! The real CNCF distribution registry (`/usr/bin/docker-registry serve`)
//! on 127.0.0.1 with an ephemeral port and a temp storage dir, in the
//! variants users meet.

use super::{certs, free_port, token};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
pub const BASIC_USER: &str = "bob";
pub const BASIC_PASSWORD: &str = "b0b-password";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Anonymous,
    /// htpasswd (bcrypt) Basic auth.
    Basic,
    /// Bearer tokens from the test token server.
    Token,
    /// HTTPS with a certificate from the test CA; anonymous.
    Tls,
}

pub struct Registry {
    pub variant: Variant,
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
    log: PathBuf,
    pub token: Option<token::TokenServer>,
    /// The htpasswd user of the Basic variant.
    pub basic: (String, String),
}

impl Registry {
    pub async fn start(variant: Variant) -> Registry {
        Registry::start_as(variant, BASIC_USER, BASIC_PASSWORD).await
    }

    /// A registry whose Basic variant knows `user`:`password`.
    pub async fn start_as(variant: Variant, user: &str, password: &str) -> Registry {
        Registry::start_with(variant, user, password, "").await
    }

    /// A pull-through cache of `upstream` (distribution's proxy mode),
    /// anonymous itself, reaching `upstream` as `user`:`password`.
    pub async fn start_proxy(upstream: &Registry, user: &str, password: &str) -> Registry {
        let proxy = format!(
            "proxy:\n  remoteurl: {}\n  username: {user}\n  password: {password}\n",
            upstream.base_url()
        );
        Registry::start_with(Variant::Anonymous, BASIC_USER, BASIC_PASSWORD, &proxy).await
    }

    async fn start_with(variant: Variant, user: &str, password: &str, extra: &str) -> Registry {
        let dir = super::tempdir();
        let port = free_port();
        let token = match variant {
            Variant::Token => Some(token::start().await),
            _ => None,
        };
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\nhealth:\n  storagedriver:\n    enabled: false\n",
            dir.path().join("storage").display()
        );
        let c = certs::get();
        match variant {
            Variant::Anonymous => {}
            Variant::Tls => {
                yaml = yaml.replace(
                    &format!("  addr: 127.0.0.1:{port}\n"),
                    &format!(
                        "  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {}\n    key: {}\n",
                        c.server_pem.display(),
                        c.server_key.display()
                    ),
                );
            }
            Variant::Basic => {
                let hash = bcrypt::hash_with_result(password, 4)
                    .unwrap()
                    .format_for_version(bcrypt::Version::TwoY);
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, format!("{user}:{hash}\n")).unwrap();
                yaml.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: imgpull-test\n    path: {}\n",
                    file.display()
                ));
            }
            Variant::Token => {
                let t = token.as_ref().unwrap();
                yaml.push_str(&format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    t.realm(),
                    token::SERVICE,
                    token::ISSUER,
                    c.token_pem.display()
                ));
            }
        }
        yaml.push_str(extra);
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, yaml).unwrap();
        let log = dir.path().join("registry.log");
        let logf = std::fs::File::create(&log).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .expect("start /usr/bin/docker-registry (apt-get install docker-registry)");
        let mut reg = Registry {
            variant,
            port,
            child,
            dir,
            log,
            token,
            basic: (user.to_string(), password.to_string()),
        };
        reg.wait_ready().await;
        reg
    }

    /// Stop the registry process (its storage stays).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start it again on the same port with the same storage.
    pub async fn restart(&mut self) {
        let logf = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.log)
            .unwrap();
        self.child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .unwrap();
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("registry exited with {status}:\n{}", self.log());
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "registry not ready:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `127.0.0.1:PORT`, the registry name used in references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn base_url(&self) -> String {
        let scheme = if self.variant == Variant::Tls {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.host())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Access-log lines of blob GETs so far.
    pub fn blob_gets(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("\"GET /v2/") && l.contains("/blobs/sha256:"))
            .map(str::to_string)
            .collect()
    }

    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// A client that trusts the test CA.
    pub fn http(&self) -> reqwest::Client {
        let ca = std::fs::read(&certs::get().ca_pem).unwrap();
        reqwest::Client::builder()
            .no_proxy()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap()
    }

    /// The `Authorization` to push to `repository`.
    pub fn push_auth(&self, repository: &str) -> Option<String> {
        use base64::Engine as _;
        match self.variant {
            Variant::Basic => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", self.basic.0, self.basic.1))
            )),
            Variant::Token => Some(format!("Bearer {}", token::push_token(repository))),
            _ => None,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
