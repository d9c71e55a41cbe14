//! push/pull/login/search against a real registry: Debian's `docker-registry` (Distribution
//! 2.8) on a free 127.0.0.1 port, plain HTTP, with htpasswd auth over TLS, and behind a
//! fault-injecting proxy.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::http::stalling_server;
use common::registry::{http_get, make_certs, read_head, Registry, RegistrySetup, TokenServer};
use common::{ok_cmd, stderr, stdout, TestEnv};

/// Builds `name` FROM `base` plus one COPY of `size` pseudo-random bytes (seeded).
fn build_on(env: &TestEnv, base: &str, name: &str, size: usize, seed: u64) {
    let ctx = env.path().join(format!("ctx-{seed}"));
    std::fs::create_dir_all(&ctx).expect("ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nCOPY data.bin hello.txt /srv/\n"),
    )
    .expect("Dockerfile");
    std::fs::write(ctx.join("data.bin"), pseudo_random(size, seed)).expect("data");
    std::fs::write(ctx.join("hello.txt"), format!("hello {seed}\n")).expect("hello");
    env.ok(&["build", "-q", "-t", name, ctx.to_str().expect("utf-8")]);
}

fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    (0..n).map(|_| rng.next() as u8).collect()
}

/// xorshift64*: small, seeded, good enough for test data and fault choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The manifest the store holds for `name` (by its RepoDigest).
fn local_manifest(env: &TestEnv, name: &str) -> (String, serde_json::Value) {
    let v = env.inspect(name);
    let digest = v["RepoDigests"][0]
        .as_str()
        .expect("RepoDigests")
        .split('@')
        .nth(1)
        .expect("digest")
        .to_string();
    let path = env
        .root()
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let m = serde_json::from_slice(&std::fs::read(path).expect("manifest blob")).expect("JSON");
    (digest, m)
}

fn layer_digests(manifest: &serde_json::Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest").to_string())
        .collect()
}

/// Reads file `name` out of the (gzip) layer blob `digest` in `root`.
fn file_in_layer(root: &Path, digest: &str, name: &str) -> Option<Vec<u8>> {
    let f = std::fs::File::open(
        root.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .expect("layer blob");
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    for e in tar.entries().expect("entries") {
        let mut e = e.expect("entry");
        let path = e.path().expect("path").to_string_lossy().into_owned();
        if path.trim_start_matches("./") == name {
            let mut buf = Vec::new();
            e.read_to_end(&mut buf).expect("read entry");
            return Some(buf);
        }
    }
    None
}

fn skopeo_inspect(reference: &str, extra: &[&str]) -> serde_json::Value {
    let out = Command::new("skopeo")
        .arg("inspect")
        .args(extra)
        .arg(format!("docker://{reference}"))
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect failed: {}",
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).expect("skopeo JSON")
}

#[test]
fn push_inspect_pull_search() {
    let reg = Registry::plain();
    let host = reg.host();
    let env = TestEnv::new();
    let base = format!("{host}/base:v1");
    env.import_base(&base);

    let out = env.ok(&["push", &base]);
    assert!(
        out.contains(&format!("The push refers to repository [{host}/base]")),
        "{out}"
    );
    assert_eq!(out.matches(": Pushed").count(), 1, "{out}");
    let (digest, manifest) = local_manifest(&env, &base);
    let size = std::fs::metadata(
        env.root()
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .expect("manifest")
    .len();
    assert!(
        out.contains(&format!("v1: digest: {digest} size: {size}")),
        "{out}"
    );

    // skopeo sees the same manifest digest and layers.
    let sk = skopeo_inspect(&base, &["--tls-verify=false"]);
    assert_eq!(sk["Digest"].as_str(), Some(digest.as_str()));
    let sk_layers: Vec<String> = sk["Layers"]
        .as_array()
        .expect("Layers")
        .iter()
        .map(|l| l.as_str().expect("layer").to_string())
        .collect();
    assert_eq!(sk_layers, layer_digests(&manifest));

    // Same image again: nothing uploaded.
    let again = env.ok(&["push", &base]);
    assert_eq!(again.matches(": Pushed").count(), 0, "{again}");
    assert_eq!(
        again.matches(": Layer already exists").count(),
        1,
        "{again}"
    );
    assert!(again.contains(&format!("v1: digest: {digest}")), "{again}");

    // A second image on the same base, in another repository: the base layer is mounted,
    // only the new layer is uploaded.
    let app = format!("{host}/team/app:v2");
    build_on(&env, &base, &app, 300_000, 7);
    let out = env.ok(&["push", &app]);
    assert_eq!(out.matches(": Pushed").count(), 1, "{out}");
    assert!(out.contains(": Mounted from base"), "{out}");
    let (app_digest, app_manifest) = local_manifest(&env, &app);
    assert!(out.contains(&format!("v2: digest: {app_digest}")), "{out}");

    // Catalog and search.
    let mut repos = reg.catalog();
    repos.sort();
    assert_eq!(repos, vec!["base".to_string(), "team/app".to_string()]);
    let found = env.ok(&["search", &format!("{host}/app")]);
    assert_eq!(found, format!("NAME\n{host}/team/app\n"));
    let all = env.ok(&["search", "--quiet", &format!("{host}/")]);
    assert_eq!(all, format!("{host}/base\n{host}/team/app\n"));

    // Pull into a second store: same IDs, digests and files.
    let env2 = TestEnv::new();
    let out = env2.ok(&["pull", &app]);
    assert_eq!(out.matches(": Pull complete").count(), 2, "{out}");
    assert!(out.contains(&format!("Digest: {app_digest}")), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {app}")),
        "{out}"
    );
    let a = env.inspect(&app);
    let b = env2.inspect(&app);
    assert_eq!(a["Id"], b["Id"]);
    assert_eq!(a["RootFS"], b["RootFS"]);
    assert_eq!(a["Config"], b["Config"]);
    assert_eq!(
        b["RepoDigests"][0].as_str(),
        Some(format!("{host}/team/app@{app_digest}").as_str())
    );
    let top = layer_digests(&app_manifest).pop().expect("top layer");
    assert_eq!(
        file_in_layer(&env2.root(), &top, "srv/hello.txt").as_deref(),
        Some(&b"hello 7\n"[..])
    );
    assert_eq!(
        file_in_layer(&env2.root(), &top, "srv/data.bin"),
        Some(pseudo_random(300_000, 7))
    );
    // Again: up to date, nothing downloaded.
    let out = env2.ok(&["pull", &app]);
    assert!(out.contains("Status: Image is up to date"), "{out}");
    // The base now comes from the store.
    let out = env2.ok(&["pull", &base]);
    assert!(out.contains(": Already exists"), "{out}");
    assert_eq!(env2.inspect(&base)["Id"], env.inspect(&base)["Id"]);

    // By digest, into a third store.
    let env3 = TestEnv::new();
    env3.ok(&["pull", &format!("{host}/base@{digest}")]);
    assert_eq!(
        env3.inspect(&format!("{host}/base@{digest}"))["Id"],
        env.inspect(&base)["Id"]
    );

    // A build FROM an image only the registry has pulls it first.
    let env4 = TestEnv::new();
    let ctx = env4.path().join("ctx");
    std::fs::create_dir_all(&ctx).expect("ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {app}\nENV PULLED=1\n"),
    )
    .expect("df");
    env4.ok(&["build", "-q", "-t", "derived", ctx.to_str().expect("utf-8")]);
    assert_eq!(env4.inspect(&app)["Id"], a["Id"]);
    assert_eq!(env4.inspect("derived")["RootFS"], a["RootFS"]);
    // `--pull` re-checks the registry even when the store has the tag: move the local tag
    // away, build without --pull (local wins), then with --pull (the registry's image wins).
    env4.ok(&["tag", "derived", &app]);
    let local = env4.inspect("derived")["Id"].clone();
    assert_ne!(local, a["Id"]);
    env4.ok(&[
        "build",
        "-q",
        "-t",
        "derived2",
        ctx.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        env4.inspect(&app)["Id"],
        local,
        "without --pull the store's tag is used"
    );
    env4.ok(&[
        "build",
        "-q",
        "--pull",
        "-t",
        "derived3",
        ctx.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        env4.inspect(&app)["Id"],
        a["Id"],
        "--pull fetched the registry's image"
    );
    std::fs::write(ctx.join("Dockerfile"), format!("FROM {host}/base:gone\n")).expect("df");
    let err = env4.fails(&["build", "-q", ctx.to_str().expect("utf-8")]);
    assert!(
        err.contains("pulling it failed") && err.contains("MANIFEST_UNKNOWN"),
        "{err}"
    );

    // Errors keep the registry's code.
    let err = env3.fails(&["pull", &format!("{host}/base:nope")]);
    assert!(err.contains("MANIFEST_UNKNOWN"), "{err}");
    let err = env3.fails(&["push", &format!("{host}/missing:v1")]);
    assert!(err.contains("does not exist locally"), "{err}");
}

#[test]
fn chunked_push_and_platform_choice() {
    let reg = Registry::plain();
    let host = reg.host();
    let env = TestEnv::new();
    let base = format!("{host}/chunky:v1");
    env.import_base(&base);
    // Chunks of 100 kB: the ~1 MB base layer goes up in several PATCH requests.
    let out = env
        .cmd()
        .args(["push", "--chunk-size", "100000", &base])
        .output()
        .expect("rbuild");
    assert!(out.status.success(), "{}", stderr(&out));
    let (digest, _) = local_manifest(&env, &base);
    let sk = skopeo_inspect(&base, &["--tls-verify=false"]);
    assert_eq!(sk["Digest"].as_str(), Some(digest.as_str()));
    let env2 = TestEnv::new();
    env2.ok(&["pull", &base]);
    assert_eq!(env2.inspect(&base)["Id"], env.inspect(&base)["Id"]);

    // A multi-platform index made by skopeo: the host platform is picked, and an absent one
    // is a clear error.
    let multi = format!("{host}/multi:v1");
    let copy = Command::new("skopeo")
        .args([
            "copy",
            "--all",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--format",
            "oci",
            &format!("docker://{base}"),
            &format!("docker://{multi}"),
        ])
        .output()
        .expect("skopeo copy");
    assert!(copy.status.success(), "{}", stderr(&copy));
    let index = make_index(&reg, "multi", &digest);
    let env3 = TestEnv::new();
    let out = env3.ok(&["pull", &format!("{host}/multi:index")]);
    assert!(out.contains(&format!("Digest: {index}")), "{out}");
    assert_eq!(
        env3.inspect(&format!("{host}/multi:index"))["Id"],
        env.inspect(&base)["Id"]
    );
    let err = env3.fails(&[
        "pull",
        "--platform",
        "linux/s390x",
        &format!("{host}/multi:index"),
    ]);
    assert!(
        err.contains("no matching manifest for linux/s390x"),
        "{err}"
    );
}

/// PUTs an OCI index with the host platform → `manifest` as `repo:index`; returns its digest.
fn make_index(reg: &Registry, repo: &str, manifest: &str) -> String {
    let path = format!("/v2/{repo}/manifests/{manifest}");
    let body = http_get(reg.port, &path);
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest,
             "size": body.len(), "platform": {"architecture": "arm", "os": "linux", "variant": "v7"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest,
             "size": body.len(), "platform": {"architecture": arch, "os": "linux"}}
        ]
    })
    .to_string();
    let mut s = TcpStream::connect(("127.0.0.1", reg.port)).expect("connect");
    write!(
        s,
        "PUT /v2/{repo}/manifests/index HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\nContent-Length: {}\r\n\r\n{index}",
        reg.port,
        index.len()
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    assert!(
        out.starts_with("HTTP/1.0 201") || out.starts_with("HTTP/1.1 201"),
        "{out}"
    );
    use sha2::Digest as _;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(index.as_bytes()))
    )
}

#[test]
fn unreachable_default_registry_fails_fast() {
    let env = TestEnv::new();
    let start = Instant::now();
    // In a network namespace of its own (loopback only, down): the name of docker's
    // registry is never looked up outside this machine.
    let out = env
        .cmd_under("unshare", ["--net"])
        .args(["pull", "busybox:1.36"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("registry-1.docker.io"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
    // Nothing was added.
    assert_eq!(env.ok(&["images", "-q"]), "");
}

/// A test CA and a server certificate for 127.0.0.1 signed by it.

#[test]
fn htpasswd_auth_over_tls() {
    let certs = tempfile::tempdir().expect("temp");
    let (ca, cert, key) = make_certs(certs.path());
    let htpasswd = certs.path().join("htpasswd");
    let out = Command::new("htpasswd")
        .args(["-Bbc", htpasswd.to_str().expect("utf-8"), "alice", "s3cret"])
        .output()
        .expect("run htpasswd (apache2-utils)");
    assert!(out.status.success(), "{}", stderr(&out));
    let reg = Registry::start(RegistrySetup {
        tls: Some((cert, key)),
        htpasswd: Some(htpasswd),
        token: None,
    });
    let host = reg.host();
    let env = TestEnv::new();
    let docker_config = env.path().join("docker");
    let rb = |args: &[&str], stdin: Option<&str>| -> Output {
        let mut c = env.cmd();
        c.args(args)
            .env("DOCKER_CONFIG", &docker_config)
            .env("SSL_CERT_FILE", &ca)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("rbuild");
        if let Some(s) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(s.as_bytes())
                .expect("write stdin");
        }
        drop(child.stdin.take());
        child.wait_with_output().expect("wait")
    };
    let name = format!("{host}/private/base:v1");
    env.import_base(&name);

    // No credentials: a clear 401.
    let out = rb(&["push", "--tls-verify=true", &name], None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("unauthorized"), "{}", stderr(&out));
    assert!(stderr(&out).contains("rbuild login"), "{}", stderr(&out));

    // Wrong password: refused, nothing written.
    let out = rb(
        &[
            "login",
            "--tls-verify=true",
            "-u",
            "alice",
            "--password-stdin",
            &host,
        ],
        Some("wrong\n"),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("incorrect username or password"),
        "{}",
        stderr(&out)
    );
    assert!(!docker_config.join("config.json").exists());

    // Verified TLS needs the test CA: without it, a certificate error.
    let out = env
        .cmd()
        .args([
            "login",
            "--tls-verify=true",
            "-u",
            "alice",
            "-p",
            "s3cret",
            &host,
        ])
        .env("DOCKER_CONFIG", &docker_config)
        .env("SSL_CERT_FILE", certs.path().join("server.key"))
        .output()
        .expect("rbuild");
    assert!(!out.status.success());
    assert!(
        stderr(&out).to_lowercase().contains("certificate"),
        "{}",
        stderr(&out)
    );

    let out = rb(
        &[
            "login",
            "--tls-verify=true",
            "-u",
            "alice",
            "--password-stdin",
            &host,
        ],
        Some("s3cret\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Login Succeeded"));
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(docker_config.join("config.json")).expect("config"))
            .expect("JSON");
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    assert_eq!(cfg["auths"][&host]["auth"].as_str(), Some(auth.as_str()));

    let out = rb(&["push", "--tls-verify=true", &name], None);
    assert!(out.status.success(), "{}", stderr(&out));
    // Default rules: 127.0.0.1 may use unverified TLS, so no CA is needed.
    let env2 = TestEnv::new();
    let out = env2
        .cmd()
        .args(["pull", &name])
        .env("DOCKER_CONFIG", &docker_config)
        .env_remove("SSL_CERT_FILE")
        .output()
        .expect("rbuild");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env2.inspect(&name)["Id"], env.inspect(&name)["Id"]);

    // Credentials from a config.json written by hand (not by login).
    let hand = env.path().join("hand");
    std::fs::create_dir_all(&hand).expect("dir");
    std::fs::write(
        hand.join("config.json"),
        serde_json::json!({"auths": {host.clone(): {"auth": auth}}}).to_string(),
    )
    .expect("write config");
    let env3 = TestEnv::new();
    let out = env3
        .cmd()
        .args(["pull", "--tls-verify=true", &name])
        .env("DOCKER_CONFIG", &hand)
        .env("SSL_CERT_FILE", &ca)
        .output()
        .expect("rbuild");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env3
        .cmd()
        .args(["search", &format!("{host}/priv")])
        .env("DOCKER_CONFIG", &hand)
        .output()
        .expect("rbuild");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("NAME\n{host}/private/base\n"));

    // A credential helper named by credHelpers stores and serves them.
    let bin = env.path().join("helper-bin");
    std::fs::create_dir_all(&bin).expect("dir");
    let script = bin.join("docker-credential-rbtest");
    std::fs::write(
        &script,
        "#!/bin/sh\nstore=\"$(dirname \"$0\")/store.json\"\ncase \"$1\" in\n  store) cat > \"$store\" ;;\n  get) read -r host; [ -f \"$store\" ] && cat \"$store\" || { echo 'credentials not found in native keychain'; exit 1; } ;;\n  erase) rm -f \"$store\" ;;\nesac\n",
    )
    .expect("script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let helper_cfg = env.path().join("helper-cfg");
    std::fs::create_dir_all(&helper_cfg).expect("dir");
    std::fs::write(
        helper_cfg.join("config.json"),
        serde_json::json!({"credHelpers": {host.clone(): "rbtest"}}).to_string(),
    )
    .expect("write config");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env5 = TestEnv::new();
    let out = env5
        .cmd()
        .args(["pull", &name])
        .env("DOCKER_CONFIG", &helper_cfg)
        .env("PATH", &path)
        .output()
        .expect("rbuild");
    assert!(!out.status.success(), "pulled without credentials");
    let out = env5
        .cmd()
        .args(["login", "-u", "alice", "-p", "s3cret", &host])
        .env("DOCKER_CONFIG", &helper_cfg)
        .env("PATH", &path)
        .output()
        .expect("rbuild");
    assert!(out.status.success(), "{}", stderr(&out));
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bin.join("store.json")).expect("helper store"))
            .expect("JSON");
    assert_eq!(stored["Username"], "alice");
    assert_eq!(stored["ServerURL"].as_str(), Some(host.as_str()));
    let cfg = std::fs::read_to_string(helper_cfg.join("config.json")).expect("config");
    assert!(!cfg.contains("auths"), "{cfg}");
    let out = env5
        .cmd()
        .args(["pull", &name])
        .env("DOCKER_CONFIG", &helper_cfg)
        .env("PATH", &path)
        .output()
        .expect("rbuild");
    assert!(out.status.success(), "{}", stderr(&out));

    // Logout forgets them; the next pull is refused.
    let out = rb(&["logout", &host], None);
    assert!(stdout(&out).contains(&format!("Removing login credentials for {host}")));
    let env4 = TestEnv::new();
    let out = env4
        .cmd()
        .args(["pull", &name])
        .env("DOCKER_CONFIG", &docker_config)
        .output()
        .expect("rbuild");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("unauthorized"), "{}", stderr(&out));
}

/// What the proxy does to requests.
#[derive(Clone, Copy, PartialEq)]
enum ProxyMode {
    /// ~20% of requests: a 500, a connection dropped before forwarding, or a response cut short.
    Faults,
    /// Flip one byte of every blob body sent to the client.
    CorruptBlobs,
    /// Never answer an upload (a PUT or PATCH of a blob, whose body is not even read), and
    /// stop blob bodies larger than 8 KiB half-way (headers sent, connection held open).
    Stall,
}

/// A tiny HTTP/1.1 proxy thread in front of `upstream` (one request per connection).
struct Proxy {
    port: u16,
    faults: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: u16, mode: ProxyMode, seed: u64, max_faults: usize) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let faults = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let rng = Arc::new(Mutex::new(Rng(seed)));
        let (f, s) = (faults.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (f, rng, s) = (f.clone(), rng.clone(), s.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, upstream, mode, &rng, &f, max_faults, &s);
                });
            }
        });
        Proxy { port, faults, stop }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Keeps the caller's connection open, silent, until the proxy stops.
fn hold(stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn handle(
    mut client: TcpStream,
    upstream: u16,
    mode: ProxyMode,
    rng: &Mutex<Rng>,
    faults: &AtomicUsize,
    max_faults: usize,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let Some((head, mut body)) = read_head(&mut client)? else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(&head).into_owned();
    let request_line = text.lines().next().unwrap_or_default().to_string();
    if mode == ProxyMode::Stall
        && (request_line.starts_with("PUT ") || request_line.starts_with("PATCH "))
        && request_line.contains("/blobs/uploads/")
    {
        hold(stop);
        return Ok(());
    }
    let len: usize = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while body.len() < len {
        let mut chunk = vec![0u8; 1 << 16];
        let n = client.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    // 0: pass, 1: 500, 2: drop before forwarding, 3: forward then cut the response.
    let fault = if mode == ProxyMode::Faults && faults.load(Ordering::SeqCst) < max_faults {
        let r = rng.lock().unwrap_or_else(|p| p.into_inner()).next() % 100;
        match r {
            0..=6 => 1,
            7..=13 => 2,
            14..=19 => 3,
            _ => 0,
        }
    } else {
        0
    };
    if fault != 0 {
        faults.fetch_add(1, Ordering::SeqCst);
    }
    match fault {
        1 => {
            client.write_all(
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
            return Ok(());
        }
        2 => {
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        _ => {}
    }
    // Forward with Connection: close, read the whole answer.
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    let mut fwd = String::new();
    for l in text.split("\r\n").filter(|l| !l.is_empty()) {
        if l.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        fwd.push_str(l);
        fwd.push_str("\r\n");
    }
    fwd.push_str("Connection: close\r\n\r\n");
    up.write_all(fwd.as_bytes())?;
    up.write_all(&body[..len])?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    if fault == 3 {
        let cut = resp.len() / 2;
        client.write_all(&resp[..cut])?;
        let _ = client.shutdown(Shutdown::Both);
        return Ok(());
    }
    let is_blob_get = request_line.starts_with("GET ") && request_line.contains("/blobs/sha256:");
    // Only layer-sized bodies (the small config passes intact).
    if mode == ProxyMode::CorruptBlobs
        && is_blob_get
        && resp.starts_with(b"HTTP/1.1 200")
        && resp.len() > 8192
    {
        if let Some(last) = resp.last_mut() {
            *last ^= 0x55;
        }
    }
    if mode == ProxyMode::Stall
        && is_blob_get
        && resp.starts_with(b"HTTP/1.1 200")
        && resp.len() > 8192
    {
        client.write_all(&resp[..resp.len() / 2])?;
        hold(stop);
        return Ok(());
    }
    client.write_all(&resp)?;
    let _ = client.shutdown(Shutdown::Both);
    Ok(())
}

/// Runs rbuild with `RBUILD_REGISTRY_TIMEOUT=1`; fails the test (killing rbuild) when it is
/// still running after 60 s. Returns its output and how long it took.
fn run_with_short_timeout(env: &TestEnv, args: &[&str]) -> (Output, Duration) {
    let start = Instant::now();
    let mut child = env
        .cmd()
        .args(args)
        .env("RBUILD_REGISTRY_TIMEOUT", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rbuild");
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rbuild {args:?} still hangs after 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = start.elapsed();
    (child.wait_with_output().expect("output"), took)
}

/// rbuild failed with exit status 1 well within the bound, naming `host`, a timeout and
/// each of `names`.
fn assert_timed_out(out: &Output, took: Duration, host: &str, names: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(host), "{err}");
    assert!(err.contains("timed out"), "{err}");
    assert!(err.contains("RBUILD_REGISTRY_TIMEOUT"), "{err}");
    for name in names {
        assert!(err.contains(name), "{name:?} not in: {err}");
    }
    assert!(took < Duration::from_secs(20), "took {took:?}: {err}");
}

/// No image, no blob, no temp file in the store of `env`.
fn assert_nothing_stored(env: &TestEnv) {
    assert_eq!(env.ok(&["images", "-q"]), "");
    for dir in ["blobs/sha256", "tmp"] {
        let left: Vec<_> = std::fs::read_dir(env.root().join(dir))
            .expect("store dir")
            .collect();
        assert!(left.is_empty(), "left in {dir}: {left:?}");
    }
}

/// The first `sha256:<hex>` after `prefix` in `text`.
fn digest_after(text: &str, prefix: &str) -> String {
    let at = text
        .find(prefix)
        .unwrap_or_else(|| panic!("{prefix:?} not in {text}"));
    text[at + prefix.len()..]
        .chars()
        .take("sha256:".len() + 64)
        .collect()
}

#[test]
fn pull_and_push_against_a_server_that_never_answers_time_out() {
    // Accepts connections and never answers.
    let silent = stalling_server(b"");
    let host = silent.trim_start_matches("http://").to_string();
    let env = TestEnv::new();
    let (out, took) = run_with_short_timeout(&env, &["pull", &format!("{host}/x")]);
    assert_timed_out(&out, took, &host, &["ping /v2/"]);
    assert_nothing_stored(&env);
    let name = format!("{host}/x:v1");
    env.import_base(&name);
    let (out, took) = run_with_short_timeout(&env, &["push", &name]);
    assert_timed_out(&out, took, &host, &["ping /v2/"]);
}

#[test]
fn pull_stalled_mid_blob_and_push_of_an_unanswered_upload_time_out() {
    let reg = Registry::plain();
    let env = TestEnv::new();
    let direct = format!("{}/stall/base:v1", reg.host());
    env.import_base(&direct);
    env.ok(&["push", &direct]);
    let proxy = Proxy::start(reg.port, ProxyMode::Stall, 1, 0);
    let host = format!("127.0.0.1:{}", proxy.port);

    // Pull: headers and half the layer, then silence.
    let env2 = TestEnv::new();
    let (out, took) = run_with_short_timeout(&env2, &["pull", &format!("{host}/stall/base:v1")]);
    assert_timed_out(&out, took, &host, &["no data for 1s"]);
    let layer = digest_after(&stderr(&out), "layer ");
    let blob = env
        .root()
        .join("blobs/sha256")
        .join(&layer["sha256:".len()..]);
    assert!(
        blob.is_file(),
        "the error names the layer: {}",
        stderr(&out)
    );
    assert_nothing_stored(&env2);

    // Push: the upload is never answered (nor read).
    let up = format!("{host}/stall/up:v1");
    env.ok(&["tag", &direct, &up]);
    let (out, took) = run_with_short_timeout(&env, &["push", &up]);
    assert_timed_out(&out, took, &host, &[&format!("upload {layer}")]);
    let manifest = http_get(reg.port, "/v2/stall/up/manifests/v1");
    assert!(!manifest.contains("schemaVersion"), "{manifest}");
}

#[test]
fn push_and_pull_through_faults() {
    let reg = Registry::plain();
    let proxy = Proxy::start(reg.port, ProxyMode::Faults, 0x5eed_1234, 60);
    let host = format!("127.0.0.1:{}", proxy.port);
    let env = TestEnv::new();
    let base = format!("{host}/flaky/base:v1");
    env.import_base(&base);
    let app = format!("{host}/flaky/app:v1");
    build_on(&env, &base, &app, 2_000_000, 11);
    for name in [&base, &app] {
        let out = env.run(&["push", name]);
        assert!(out.status.success(), "push {name}: {}", stderr(&out));
    }
    let env2 = TestEnv::new();
    for name in [&app, &base] {
        let out = env2.run(&["pull", name]);
        assert!(out.status.success(), "pull {name}: {}", stderr(&out));
    }
    for name in [&base, &app] {
        let a = env.inspect(name);
        let b = env2.inspect(name);
        assert_eq!(a["Id"], b["Id"]);
        assert_eq!(a["RepoDigests"], b["RepoDigests"]);
    }
    // The registry itself (not through the proxy) has what the manifests name.
    let (digest, _) = local_manifest(&env, &app);
    let sk = skopeo_inspect(
        &format!("{}/flaky/app:v1", reg.host()),
        &["--tls-verify=false"],
    );
    assert_eq!(sk["Digest"].as_str(), Some(digest.as_str()));
    let injected = proxy.faults.load(Ordering::SeqCst);
    assert!(injected >= 3, "only {injected} faults were injected");
}

#[test]
fn corrupt_blob_is_rejected_and_nothing_is_stored() {
    let reg = Registry::plain();
    let env = TestEnv::new();
    let direct = format!("{}/victim:v1", reg.host());
    env.import_base(&direct);
    env.ok(&["push", &direct]);
    let proxy = Proxy::start(reg.port, ProxyMode::CorruptBlobs, 1, 0);
    let env2 = TestEnv::new();
    let out = env2.run(&["pull", &format!("127.0.0.1:{}/victim:v1", proxy.port)]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("digest mismatch"), "{err}");
    assert_eq!(env2.ok(&["images", "-q"]), "");
    let blobs: Vec<_> = std::fs::read_dir(env2.root().join("blobs/sha256"))
        .expect("blobs")
        .collect();
    assert!(blobs.is_empty(), "blobs were stored: {blobs:?}");
    let tmp: Vec<_> = std::fs::read_dir(env2.root().join("tmp"))
        .expect("tmp")
        .collect();
    assert!(tmp.is_empty(), "temp files left: {tmp:?}");
}

#[test]
fn bearer_token_auth() {
    let certs = tempfile::tempdir().expect("temp");
    let (ca, ca_key) = (
        certs.path().join("signer.crt"),
        certs.path().join("signer.key"),
    );
    ok_cmd(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=rbuild token signer",
                "-keyout",
            ])
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca),
    );
    let tokens = TokenServer::start(ca.clone(), ca_key);
    let reg = Registry::start(RegistrySetup {
        tls: None,
        htpasswd: None,
        token: Some((format!("http://127.0.0.1:{}/token", tokens.port), ca)),
    });
    let host = reg.host();
    let env = TestEnv::new();
    let name = format!("{host}/tok/base:v1");
    env.import_base(&name);
    let docker_config = env.path().join("docker");
    let with_config = |args: &[&str]| -> Output {
        env.cmd()
            .args(args)
            .env("DOCKER_CONFIG", &docker_config)
            .output()
            .expect("rbuild")
    };

    // Anonymous: the token server refuses, the error says so.
    let out = with_config(&["push", &name]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("unauthorized"), "{}", stderr(&out));
    let out = with_config(&["login", "-u", "alice", "-p", "wrong", &host]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("incorrect username or password"),
        "{}",
        stderr(&out)
    );

    let out = with_config(&["login", "-u", "alice", "-p", "s3cret", &host]);
    assert!(out.status.success(), "{}", stderr(&out));
    let before = tokens.issued.load(Ordering::SeqCst);
    let out = with_config(&["push", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    // One token for the repository's pull,push scope, reused for every request of the push.
    assert_eq!(tokens.issued.load(Ordering::SeqCst) - before, 1);

    let env2 = TestEnv::new();
    let out = env2
        .cmd()
        .args(["pull", &name])
        .env("DOCKER_CONFIG", &docker_config)
        .output()
        .expect("rbuild");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env2.inspect(&name)["Id"], env.inspect(&name)["Id"]);
    let out = with_config(&["search", &format!("{host}/tok")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("NAME\n{host}/tok/base\n"));
}

#[test]
fn build_cache_through_registry_and_directory() {
    let reg = Registry::plain();
    let host = reg.host();
    let env = TestEnv::new();
    let base = format!("{host}/cachebase:v1");
    env.import_base(&base);
    env.ok(&["push", "-q", &base]);
    let ctx = env.path().join("ctx");
    std::fs::create_dir_all(&ctx).expect("ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nCOPY hello.txt /hello.txt\nRUN cat /proc/sys/kernel/random/uuid > /stamp\nENV X=1\n"),
    )
    .expect("Dockerfile");
    std::fs::write(ctx.join("hello.txt"), "cached\n").expect("hello");
    let ctx = ctx.to_str().expect("utf-8").to_string();
    let local = env.path().join("cache-dir");
    let build = |env: &TestEnv, extra: &[&str]| -> String {
        let out = env
            .cmd()
            .args(["build", "-q", "-t", "cached:1"])
            .args(extra)
            .arg(&ctx)
            .env("SOURCE_DATE_EPOCH", "0")
            .output()
            .expect("rbuild");
        assert!(out.status.success(), "build {extra:?}: {}", stderr(&out));
        stdout(&out).trim().to_string()
    };
    let cache_ref = format!("type=registry,ref={host}/buildcache:main,mode=max");
    let id = build(&env, &["--cache-to", &cache_ref]);
    let local_spec = format!("type=local,dest={}", local.display());
    assert_eq!(build(&env, &["--cache-to", &local_spec]), id);
    assert!(local.join("index.json").is_file());

    // Empty stores: the RUN step (random output) is not run again, so the ID is the same.
    let env2 = TestEnv::new();
    assert_eq!(
        build(
            &env2,
            &[
                "--cache-from",
                &format!("type=registry,ref={host}/buildcache:main")
            ]
        ),
        id
    );
    let env3 = TestEnv::new();
    assert_eq!(
        build(
            &env3,
            &[
                "--cache-from",
                &format!("type=local,src={}", local.display())
            ]
        ),
        id
    );
    // Without the cache the RUN step runs and makes another layer.
    let env4 = TestEnv::new();
    assert_ne!(build(&env4, &[]), id);
    // A cache that is not there only warns.
    let env5 = TestEnv::new();
    let out = env5
        .cmd()
        .args([
            "build",
            "-q",
            "--cache-from",
            &format!("type=registry,ref={host}/nocache:x"),
            &ctx,
        ])
        .output()
        .expect("rbuild");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("WARNING: importing cache"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn push_to_a_server_that_stops_reading_fails_before_the_upload_deadline() {
    let reg = Registry::plain();
    let proxy = Proxy::start(reg.port, ProxyMode::Stall, 1, 0);
    let host = format!("127.0.0.1:{}", proxy.port);
    let env = TestEnv::new();
    // One 16 MiB incompressible layer: with RBUILD_REGISTRY_TIMEOUT=1 its upload request may
    // take 1 s + 16 s, but the proxy reads none of it, and TCP_USER_TIMEOUT drops the
    // connection once the sent data stays unacknowledged for 1 s.
    let ctx = env.path().join("big");
    std::fs::create_dir_all(&ctx).expect("ctx");
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY data.bin /\n").expect("Dockerfile");
    std::fs::write(ctx.join("data.bin"), pseudo_random(16 << 20, 7)).expect("data");
    let name = format!("{host}/big:v1");
    env.ok(&["build", "-q", "-t", &name, ctx.to_str().expect("utf-8")]);
    let (out, took) = run_with_short_timeout(&env, &["push", &name]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&host), "{err}");
    assert!(took < Duration::from_secs(10), "took {took:?}: {err}");
    let manifest = http_get(reg.port, "/v2/big/manifests/v1");
    assert!(!manifest.contains("schemaVersion"), "{manifest}");
}

/// `rbuild -t HOST/app:1 -t HOST/app:2 --push --metadata-file F CTX` (issue 14): the build is
/// pushed under both names with push's code, and F names the digests as BuildKit does.
#[test]
fn build_push_and_metadata_file() {
    let reg = Registry::plain();
    let host = reg.host();
    let env = TestEnv::with_base("busybox:latest");
    let ctx = env.path().join("ctx");
    common::write_file(
        &ctx,
        "Dockerfile",
        "FROM busybox\nRUN echo pushed > /stamp\n",
    );
    let meta = env.path().join("meta.json");
    let (one, two) = (format!("{host}/app:1"), format!("{host}/app:2"));
    let out = env
        .cmd()
        .args(["-t", &one, "-t", &two, "--push", "--progress=plain"])
        .arg("--metadata-file")
        .arg(&meta)
        .arg(&ctx)
        .output()
        .expect("rbuild");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("pushed {one}: digest: sha256:")),
        "{}",
        stderr(&out)
    );
    let read_json = |path: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(path).expect("metadata file"))
            .expect("metadata JSON")
    };
    let meta = read_json(&meta);
    let id = env.ok(&["inspect", "--format", "{{.Id}}", &one]);
    assert_eq!(meta["containerimage.config.digest"], id.trim(), "{meta}");
    assert_eq!(meta["image.name"], format!("{one},{two}"), "{meta}");
    // The registry has that manifest under both tags (skopeo asks it).
    for name in [&one, &two] {
        let out = Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
            .arg(format!("docker://{name}"))
            .output()
            .expect("skopeo");
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out).trim(), meta["containerimage.digest"], "{name}");
    }
    // Pulled into an empty store, it is the same image.
    let env2 = TestEnv::new();
    env2.ok(&["pull", "-q", &two]);
    assert_eq!(env2.ok(&["inspect", "--format", "{{.Id}}", &two]), id);

    // Without --push, the file names the store's manifest; --push needs a name.
    let meta2 = env.path().join("meta2.json");
    let out = env
        .cmd()
        .args(["-q", "-t", "local:1", "--metadata-file"])
        .arg(&meta2)
        .arg(&ctx)
        .output()
        .expect("rbuild");
    assert!(out.status.success(), "{}", stderr(&out));
    let meta2 = read_json(&meta2);
    assert_eq!(meta2["containerimage.config.digest"], id.trim());
    assert_eq!(meta2["image.name"], "docker.io/library/local:1");
    let err = env.fails(&["--push", ctx.to_str().unwrap()]);
    assert!(err.contains("--tag"), "{err}");
}
