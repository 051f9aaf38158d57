//! Test harness: real `banter-registry` processes on free loopback ports,
//! against a real SQLite file or a real `redis-server` started here.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The token every test server accepts.
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// Which backend a server runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    /// SQLite file at this path.
    Sqlite(PathBuf),
    /// Redis at this URL with this key prefix.
    Redis { url: String, prefix: String },
}

impl Backend {
    pub fn args(&self) -> Vec<String> {
        match self {
            Backend::Sqlite(p) => vec![
                "--backend".into(),
                "sqlite".into(),
                "--sqlite-path".into(),
                p.display().to_string(),
            ],
            Backend::Redis { url, prefix } => vec![
                "--backend".into(),
                "redis".into(),
                "--redis-url".into(),
                url.clone(),
                "--redis-key-prefix".into(),
                prefix.clone(),
            ],
        }
    }
}

/// A registry server process, killed on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub backend: Backend,
    pub dir: PathBuf,
    pub http: reqwest::Client,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_banter-registry")
}

impl Server {
    /// Starts `serve` with a token file in `dir` and extra flags.
    pub fn start(backend: Backend, dir: &Path, extra: &[&str]) -> Server {
        let tokens = dir.join("tokens");
        if !tokens.exists() {
            std::fs::write(&tokens, format!("# test tokens\n{TOKEN}\n")).unwrap();
        }
        let mut cmd = Command::new(bin());
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0", "--token-file"])
            .arg(&tokens)
            .args(backend.args())
            .args(extra)
            .env("BANTER_REGISTRY_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Self::spawn(cmd, backend, dir)
    }

    pub fn spawn(mut cmd: Command, backend: Backend, dir: &Path) -> Server {
        let mut child = cmd.spawn().expect("spawn banter-registry");
        let stderr_buf = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = stderr_buf.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start; stderr:\n{}", stderr_buf.lock().unwrap());
            }
        };
        Server {
            child,
            base,
            backend,
            dir: dir.to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            stderr: stderr_buf,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }

    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// PUT a pack with the test token.
    pub async fn publish(&self, name: &str, version: &str, body: &[u8]) -> reqwest::Response {
        self.http
            .put(self.url(&format!("/v1/packs/{name}/versions/{version}")))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    pub async fn tag(&self, name: &str, tag: &str, version: &str) -> reqwest::Response {
        self.http
            .put(self.url(&format!("/v1/packs/{name}/tags/{tag}")))
            .bearer_auth(TOKEN)
            .json(&json!({ "version": version }))
            .send()
            .await
            .unwrap()
    }

    pub async fn yank(&self, name: &str, version: &str, yanked: bool) -> reqwest::Response {
        let url = self.url(&format!("/v1/packs/{name}/versions/{version}/yank"));
        let req = if yanked {
            self.http.post(url)
        } else {
            self.http.delete(url)
        };
        req.bearer_auth(TOKEN).send().await.unwrap()
    }

    /// SIGKILL and wait.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A valid pack; `variant` changes the content without changing name or version.
pub fn pack(name: &str, version: &str, variant: u32) -> Vec<u8> {
    serde_json::to_vec_pretty(&pack_value(name, version, variant)).unwrap()
}

pub fn pack_value(name: &str, version: &str, variant: u32) -> Value {
    json!({
        "name": name,
        "version": version,
        "title": format!("Test pack {name}"),
        "tone": "dry",
        "tags": ["test"],
        "personas": [
            {"id": "host", "display_name": "Host", "style": "sarcastic"},
            {"id": "cocaster", "display_name": "Co-caster"}
        ],
        "lines": [
            {"id": "l1", "event": "match.goal", "persona": "host", "text": format!("Oh look, a goal. Variant {variant}.")},
            {"id": "l2", "event": "stream.raid", "persona": "cocaster", "text": "RAID! WELCOME!", "weight": 2, "cooldown_ms": 5000}
        ]
    })
}

/// The single error of an OCI-shaped error body.
pub async fn error_code(resp: reqwest::Response) -> (u16, String, Value) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let code = body["errors"][0]["code"].as_str().unwrap_or("<no code>").to_owned();
    (status, code, body)
}

/// Sends raw bytes over TCP and returns the status line and the whole response.
pub fn raw_request(addr: &str, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text)
}

/// A free loopback port (bound then released; callers retry on the rare clash).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A real `redis-server` on a free loopback port with its own directory; killed on drop.
pub struct Redis {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
    pub appendfsync: &'static str,
}

/// Where redis-server is, or why not.
pub fn redis_server_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("REDIS_SERVER") {
        return Some(PathBuf::from(p));
    }
    ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl Redis {
    /// Starts redis-server with AOF `appendfsync` policy in `dir`.
    pub fn start(dir: &Path, appendfsync: &'static str) -> Redis {
        Self::start_on(dir, appendfsync, None)
    }

    pub fn start_on(dir: &Path, appendfsync: &'static str, port: Option<u16>) -> Redis {
        let bin = redis_server_bin().expect("redis-server is not installed: run `make deps`");
        std::fs::create_dir_all(dir).unwrap();
        for attempt in 0..20 {
            let port = port.unwrap_or_else(free_port);
            let child = Command::new(&bin)
                .args([
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                ])
                .args(["--appendfsync", appendfsync, "--dir"])
                .arg(dir)
                .args(["--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            let mut r = Redis {
                child,
                port,
                dir: dir.to_owned(),
                appendfsync,
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if r.child.try_wait().unwrap().is_some() {
                    break; // port clash or bad config: retry on another port
                }
                if r.ping() {
                    return r;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            drop(r);
            assert!(attempt < 19, "redis-server did not start");
        }
        unreachable!()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// PING over a raw socket.
    pub fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// SIGKILL (no AOF rewrite, no clean shutdown).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts again on the same port and directory (reloading the AOF).
    pub fn restart(&mut self) {
        self.kill9();
        let fresh = Redis::start_on(&self.dir.clone(), self.appendfsync, Some(self.port));
        drop(std::mem::replace(self, fresh));
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which backend a conformance case runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Redis,
}

/// A server with its backend and scratch directory; everything stops on drop.
pub struct Fixture {
    pub server: Server,
    pub redis: Option<Redis>,
    pub dir: tempfile::TempDir,
}

impl std::ops::Deref for Fixture {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

impl std::ops::DerefMut for Fixture {
    fn deref_mut(&mut self) -> &mut Server {
        &mut self.server
    }
}

/// A fresh, empty registry of `kind`, started with `extra` flags.
pub fn fixture(kind: Kind, extra: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (backend, redis) = match kind {
        Kind::Sqlite => (Backend::Sqlite(dir.path().join("registry.db")), None),
        Kind::Redis => {
            let redis = Redis::start(&dir.path().join("redis"), "always");
            (
                Backend::Redis {
                    url: redis.url(),
                    prefix: "test:".into(),
                },
                Some(redis),
            )
        }
    };
    let server = Server::start(backend, dir.path(), extra);
    Fixture { server, redis, dir }
}

/// Runs the CLI with `args`; returns (success, stdout, stderr).
pub fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin())
        .args(args)
        .env_remove("BANTER_REGISTRY_TOKEN")
        .env_remove("BANTER_REGISTRY_TOKEN_FILE")
        .env_remove("BANTER_REGISTRY_URL")
        .stdin(Stdio::null())
        .output()
        .expect("run banter-registry");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Publishes a varied corpus: several packs, versions, pre-releases, tags and yanks.
pub async fn publish_corpus(s: &Server) {
    for i in 0..8 {
        let name = format!("corpus-{i}");
        for v in ["0.1.0", "1.0.0", "1.1.0-beta.1", "1.1.0", "2.0.0-rc.1"] {
            let r = s.publish(&name, v, &pack(&name, v, i)).await;
            assert_eq!(r.status(), 201, "{name}@{v}");
        }
        if i % 2 == 0 {
            assert_eq!(s.yank(&name, "1.1.0", true).await.status(), 200);
        }
        if i % 3 == 0 {
            assert_eq!(s.tag(&name, "stable", "1.0.0").await.status(), 200);
            assert_eq!(s.tag(&name, "next", "2.0.0-rc.1").await.status(), 200);
        }
        if i == 5 {
            assert_eq!(s.tag(&name, "latest", "0.1.0").await.status(), 200);
        }
    }
}

/// Every GET a client can make of the registry's content, as (path, status, body bytes).
pub async fn snapshot(s: &Server) -> Vec<(String, u16, Vec<u8>)> {
    let mut out = Vec::new();
    let mut push = |path: String, status: u16, body: Vec<u8>| out.push((path, status, body));
    for path in ["/v1/packs", "/v1/packs?n=3", "/v1/stats"] {
        let r = s.get(path).await;
        push(path.to_owned(), r.status().as_u16(), r.bytes().await.unwrap().to_vec());
    }
    let list: Value = s.get("/v1/packs?n=1000").await.json().await.unwrap();
    for name in list["packs"].as_array().unwrap() {
        let name = name.as_str().unwrap();
        let path = format!("/v1/packs/{name}");
        let r = s.get(&path).await;
        let info: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        push(path, 200, serde_json::to_vec(&info).unwrap());
        let mut refs: Vec<String> = info["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_str().unwrap().to_owned())
            .collect();
        refs.extend(info["tags"].as_object().unwrap().keys().cloned());
        refs.push("latest".into());
        for v in info["versions"].as_array().unwrap() {
            let p = format!("/v1/blobs/{}", v["digest"].as_str().unwrap());
            let r = s.get(&p).await;
            push(p, r.status().as_u16(), r.bytes().await.unwrap().to_vec());
        }
        for reference in refs {
            let p = format!("/v1/packs/{name}/versions/{reference}");
            let r = s.get(&p).await;
            let status = r.status().as_u16();
            let mut head = Vec::new();
            for h in [
                "digest",
                "etag",
                "banter-pack-version",
                "banter-pack-yanked",
                "cache-control",
            ] {
                head.extend_from_slice(format!("{h}={:?};", r.headers().get(h)).as_bytes());
            }
            head.extend(r.bytes().await.unwrap());
            push(p, status, head);
        }
    }
    out
}

/// Kills and reaps a child process when dropped, even when a test panics.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A redis-server with extra `args` (auth, TLS…), no persistence, in `dir`; killed on drop.
pub fn redis_with(dir: &Path, args: &[&str]) -> KillOnDrop {
    let child = Command::new(redis_server_bin().expect("redis-server is not installed: run `make deps`"))
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir"])
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server");
    std::thread::sleep(Duration::from_millis(300));
    KillOnDrop(child)
}

/// `export` from one backend into `archive`, then `import` into another; both
/// must succeed. Returns what import printed.
pub fn migrate(archive: &Path, from: &Backend, to: &Backend) -> String {
    let archive = archive.to_str().unwrap();
    let mut export = vec!["export".to_owned(), "-o".to_owned(), archive.to_owned()];
    export.extend(from.args());
    let (ok, _, err) = cli(&export.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "export failed: {err}");
    let mut import = vec!["import".to_owned(), archive.to_owned()];
    import.extend(to.args());
    let (ok, out, err) = cli(&import.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "import failed: {err}");
    out
}

/// Sends one command to Redis over RESP and returns its first reply line.
pub fn redis_command(port: u16, args: &[&str]) -> String {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut cmd = format!("*{}\r\n", args.len());
    for a in args {
        cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(cmd.as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line
}

/// Lints a `/metrics` exposition with Prometheus's own `promtool check metrics`
/// (naming, types, units, help text).
pub fn promtool_check_metrics(text: &str) {
    use std::io::Write as _;
    let bin = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let mut child = std::process::Command::new(&bin)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin} is not installed ({e}): run `make deps`"));
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
