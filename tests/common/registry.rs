//! A real registry for tests: Debian's `docker-registry` (Distribution 2.8) on a free
//! 127.0.0.1 port (plain HTTP, TLS, htpasswd or token auth), the token server of the Bearer
//! flow, and the openssl certificates they use. Loopback only.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running `docker-registry`, killed on drop.
pub struct Registry {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

pub struct RegistrySetup {
    /// (certificate, key) for TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// htpasswd file.
    pub htpasswd: Option<PathBuf>,
    /// Token auth: (realm URL, certificate bundle that signs tokens).
    pub token: Option<(String, PathBuf)>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl Registry {
    /// Starts a registry on a free port. The port is picked before the registry binds it:
    /// when something else took it in between, it tries again on another (3 times).
    pub fn start(setup: RegistrySetup) -> Registry {
        let mut tries = 0;
        loop {
            tries += 1;
            match Registry::try_start(&setup) {
                Ok(reg) => return reg,
                Err(log) if tries < 3 && log.contains("address already in use") => continue,
                Err(log) => panic!("{log}"),
            }
        }
    }

    fn try_start(setup: &RegistrySetup) -> Result<Registry, String> {
        let dir = tempfile::Builder::new()
            .prefix("rbuild-registry-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: rbuild-test-secret\n",
            dir.path().join("data").display()
        );
        if let Some((cert, key)) = &setup.tls {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        if let Some(h) = &setup.htpasswd {
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: rbuild-test\n    path: {}\n",
                h.display()
            ));
        }
        if let Some((realm, bundle)) = &setup.token {
            config.push_str(&format!(
                "auth:\n  token:\n    realm: {realm}\n    service: rbuild-test-registry\n    issuer: rbuild-test-issuer\n    rootcertbundle: {}\n",
                bundle.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start /usr/bin/docker-registry (is docker-registry installed?)");
        let mut reg = Registry { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let listens = TcpStream::connect(("127.0.0.1", port)).is_ok();
            // Still running once the port answers: the answer was this registry's.
            if let Ok(Some(status)) = reg.child.try_wait() {
                return Err(format!(
                    "docker-registry exited with {status}: {}",
                    std::fs::read_to_string(reg.dir.path().join("registry.log"))
                        .unwrap_or_default()
                ));
            }
            if listens {
                return Ok(reg);
            }
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn plain() -> Registry {
        Registry::start(RegistrySetup {
            tls: None,
            htpasswd: None,
            token: None,
        })
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry's `/v2/_catalog` repositories (plain HTTP, no auth).
    pub fn catalog(&self) -> Vec<String> {
        let body = http_get(self.port, "/v2/_catalog");
        let v: serde_json::Value = serde_json::from_str(&body).expect("catalog JSON");
        v["repositories"]
            .as_array()
            .expect("repositories")
            .iter()
            .map(|r| r.as_str().expect("name").to_string())
            .collect()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.0 GET; returns the body.
pub fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// Makes a fresh CA and a server certificate for 127.0.0.1 signed by it in `dir`; returns
/// (CA certificate, server certificate, server key).
pub fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        super::ok_cmd(Command::new("openssl").args(args).current_dir(dir));
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=rbuild test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.crt"),
        dir.join("server.crt"),
        dir.join("server.key"),
    )
}

pub fn read_head(s: &mut TcpStream) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return Ok(Some((buf, rest)));
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A token server (the Bearer flow's realm): checks Basic credentials alice:s3cret and issues
/// RS256 JWTs signed with `key` (openssl), with `cert` in `x5c`, granting what was asked.
pub struct TokenServer {
    pub port: u16,
    /// How many tokens it issued.
    pub issued: Arc<AtomicUsize>,
}

impl TokenServer {
    pub fn start(cert: PathBuf, key: PathBuf) -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        let port = listener.local_addr().expect("addr").port();
        let issued = Arc::new(AtomicUsize::new(0));
        let counter = issued.clone();
        let pem = std::fs::read_to_string(&cert).expect("cert");
        let der_b64: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .join("");
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let Ok(Some((head, _))) = read_head(&mut conn) else {
                    continue;
                };
                let text = String::from_utf8_lossy(&head).into_owned();
                use base64::Engine;
                let want = format!(
                    "basic {}",
                    base64::engine::general_purpose::STANDARD.encode("alice:s3cret")
                );
                let authorized = text.lines().any(|l| {
                    l.to_ascii_lowercase().trim()
                        == format!("authorization: {}", want.to_ascii_lowercase())
                });
                if !authorized {
                    let body =
                        r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#;
                    let _ = write!(conn, "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                    continue;
                }
                let target = text
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
                let mut access = Vec::new();
                for pair in query.split('&') {
                    let Some(("scope", v)) = pair.split_once('=') else {
                        continue;
                    };
                    let v = v
                        .replace("%3A", ":")
                        .replace("%3a", ":")
                        .replace("%2C", ",")
                        .replace("%2c", ",")
                        .replace("%2F", "/")
                        .replace("%2f", "/")
                        .replace("%2A", "*")
                        .replace("%2a", "*");
                    let mut parts = v.splitn(3, ':');
                    let (Some(kind), Some(name), Some(actions)) =
                        (parts.next(), parts.next(), parts.next())
                    else {
                        continue;
                    };
                    access.push(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}));
                }
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("time")
                    .as_secs();
                let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
                let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [der_b64]});
                let claims = serde_json::json!({
                    "iss": "rbuild-test-issuer", "sub": "alice", "aud": "rbuild-test-registry",
                    "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("t{now}-{}", counter.load(Ordering::SeqCst)),
                    "access": access,
                });
                let signing_input = format!(
                    "{}.{}",
                    b64(header.to_string().as_bytes()),
                    b64(claims.to_string().as_bytes())
                );
                let mut child = Command::new("openssl")
                    .args(["dgst", "-sha256", "-sign"])
                    .arg(&key)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("openssl");
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(signing_input.as_bytes())
                    .expect("write");
                let sig = child.wait_with_output().expect("openssl").stdout;
                let jwt = format!("{signing_input}.{}", b64(&sig));
                counter.fetch_add(1, Ordering::SeqCst);
                let body = serde_json::json!({"token": jwt, "expires_in": 300}).to_string();
                let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            }
        });
        TokenServer { port, issued }
    }
}
