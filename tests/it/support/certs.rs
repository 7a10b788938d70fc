//! Test keys and certificates, made once per test process with the
//! `openssl` command: a CA and a server certificate for 127.0.0.1, and the
//! token-signing certificate the registry trusts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub struct Certs {
    pub dir: PathBuf,
    pub ca_pem: PathBuf,
    pub server_pem: PathBuf,
    pub server_key: PathBuf,
    pub token_pem: PathBuf,
    pub token_key: PathBuf,
}

pub fn get() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(make)
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `openssl req -x509`: a self-signed RSA certificate and its key.
fn self_signed(dir: &Path, name: &str, subject: &str, extra: &[&str]) {
    let (key, cert) = (format!("{name}.key"), format!("{name}.pem"));
    let mut args = vec![
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
    ];
    args.extend(["-keyout", &key, "-out", &cert, "-subj", subject]);
    args.extend(extra);
    openssl(dir, &args);
}

fn make() -> Certs {
    let dir = tempfile::Builder::new()
        .prefix("imgpull-it-certs-")
        .tempdir()
        .unwrap()
        .keep();
    self_signed(
        &dir,
        "ca",
        "/CN=imgpull test CA",
        &[
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    let csr = ["-keyout", "server.key", "-out", "server.csr"];
    let mut args = vec![
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
    ];
    args.extend(csr);
    openssl(&dir, &args);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,IP:127.0.0.2,IP:127.0.0.3,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n",
    )
    .unwrap();
    let sign = [
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
    ];
    let mut args = vec!["x509", "-req", "-in", "server.csr", "-out", "server.pem"];
    args.extend(sign);
    args.extend(["-extfile", "server.ext"]);
    openssl(&dir, &args);
    self_signed(&dir, "token", "/CN=imgpull test token signer", &[]);
    Certs {
        ca_pem: dir.join("ca.pem"),
        server_pem: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        token_pem: dir.join("token.pem"),
        token_key: dir.join("token.key"),
        dir,
    }
}
