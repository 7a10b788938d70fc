//! Cloud credential endpoints on loopback: the `moto` ECR emulator (a
//! real AWS API implementation from PyPI) and a Google-style OAuth2 token
//! endpoint that checks the service-account JWT it is given.

use super::certs;
use super::http::{serve, Request, Response, Server};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The password moto's GetAuthorizationToken hands out for its default account.
pub const MOTO_ECR_PASSWORD: &str = "123456789012-auth-token";
pub const GCR_ACCESS_TOKEN: &str = "ya29.test-access-token";
pub const SA_EMAIL: &str = "puller@imgpull-test.iam.gserviceaccount.com";

pub struct Moto {
    pub port: u16,
    child: Child,
    _log: tempfile::TempDir,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// `moto_server -H 127.0.0.1 -p PORT` (pip install "moto[server]").
pub async fn start_moto() -> Moto {
    let port = super::free_port();
    let log = super::tempdir();
    let logf = std::fs::File::create(log.path().join("moto.log")).unwrap();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(logf.try_clone().unwrap())
        .stderr(logf)
        .spawn()
        .expect("start moto_server (pip install \"moto[server]\")");
    let moto = Moto {
        port,
        child,
        _log: log,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "moto_server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    moto
}

/// A token endpoint that accepts a JWT-bearer grant signed by the test
/// token key for `SA_EMAIL`, and answers `GCR_ACCESS_TOKEN`.
pub async fn start_google_token_endpoint() -> Server {
    serve(|req: Request| async move {
        let get = |k: &str| req.form(k);
        if req.method != "POST" || get("grant_type").as_deref() != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
            return Response::new(400, r#"{"error":"unsupported_grant_type"}"#);
        }
        let assertion = get("assertion").unwrap_or_default();
        let pem = std::fs::read(&certs::get().token_pem).unwrap();
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(&public_key_pem(&pem)).unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.set_audience(&[format!("http://{}/token", req.header("host").unwrap_or(""))]);
        v.set_issuer(&[SA_EMAIL]);
        match jsonwebtoken::decode::<serde_json::Value>(&assertion, &key, &v) {
            Ok(t) if t.claims["scope"].as_str().is_some_and(|s| s.contains("cloud-platform")) => Response::new(
                200,
                serde_json::json!({"access_token": GCR_ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"}).to_string(),
            )
            .header("Content-Type", "application/json"),
            other => Response::new(400, format!(r#"{{"error":"invalid_grant","detail":"{:?}"}}"#, other.err())),
        }
    })
    .await
}

/// The public key of a certificate, PEM (`openssl x509 -pubkey`).
fn public_key_pem(cert: &[u8]) -> Vec<u8> {
    let dir = super::tempdir();
    let path = dir.path().join("cert.pem");
    std::fs::write(&path, cert).unwrap();
    let out = Command::new("openssl")
        .args(["x509", "-pubkey", "-noout", "-in"])
        .arg(&path)
        .output()
        .unwrap();
    out.stdout
}

/// A service-account key file whose `token_uri` is `token_uri`.
pub fn service_account_json(token_uri: &str) -> String {
    let key = std::fs::read_to_string(&certs::get().token_key).unwrap();
    serde_json::json!({
        "type": "service_account",
        "project_id": "imgpull-test",
        "private_key_id": "0",
        "private_key": key,
        "client_email": SA_EMAIL,
        "token_uri": token_uri,
    })
    .to_string()
}
