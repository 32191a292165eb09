//! Runs the real `scimd` binary: CLI commands against a temporary database file, and the server
//! on an ephemeral loopback port, spoken to over real HTTP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_scimd");

pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// A PatchOp request body with these operations.
pub fn patch_op(operations: Value) -> Value {
    serde_json::json!({"schemas": [PATCH], "Operations": operations})
}

/// A temporary directory holding one database file.
pub struct TestDb {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl TestDb {
    pub fn new() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scimd.db");
        TestDb { dir, path }
    }

    /// Runs `scimd --database <db> args...` and returns its output.
    pub fn cli(&self, args: &[&str]) -> Output {
        command(&self.path).args(args).output().unwrap()
    }

    /// Like `cli`, but the command must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "scimd {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Like `cli`, but the command must fail; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            !out.status.success(),
            "scimd {args:?} should have failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// `scimd ldap account add NAME --provider P`; returns the secret it printed once and
    /// all it printed.
    pub fn ldap_account(&self, name: &str, provider: &str) -> (String, String) {
        let out = self.ok(&["ldap", "account", "add", name, "--provider", provider]);
        let secret = out
            .lines()
            .map(str::trim)
            .find(|l| l.len() == 64 && l.bytes().all(|b| b.is_ascii_hexdigit()))
            .unwrap_or_else(|| panic!("no secret in {out}"))
            .to_string();
        (secret, out)
    }

    pub fn add_provider(&self, name: &str) {
        self.ok(&["provider", "add", name]);
    }

    /// Creates a token with the CLI and returns (token id, full token text).
    pub fn create_token(&self, provider: &str, extra: &[&str]) -> (String, String) {
        let mut args = vec!["token", "create", "--provider", provider];
        if !extra
            .iter()
            .any(|a| *a == "--expires" || *a == "--valid-for")
        {
            args.extend(["--valid-for", "30d"]);
        }
        args.extend(extra);
        let out = self.ok(&args);
        token_in(&out)
    }

    /// Stores a token for `provider` the way `token create` does, with any creation and expiry
    /// time (unix seconds); returns (token id, full token text).
    pub fn insert_token(&self, provider: &str, created: i64, expires: i64) -> (String, String) {
        self.insert_token_row(provider, created, expires, true)
    }

    /// A token as versions before fingerprints stored it (no fingerprint: every new secret
    /// presented for it costs argon2 and spends the budgets); returns (id, full text).
    pub fn insert_token_without_fingerprint(&self, provider: &str) -> (String, String) {
        let now = chrono::Utc::now().timestamp();
        self.insert_token_row(provider, now, now + 86_400, false)
    }

    fn insert_token_row(
        &self,
        provider: &str,
        created: i64,
        expires: i64,
        fingerprinted: bool,
    ) -> (String, String) {
        use scimd::api::store::{providers, tokens};
        let t = scimd::api::auth::token::generate();
        let hash = scimd::api::auth::token::hash(&t.secret).unwrap();
        let fingerprint =
            fingerprinted.then(|| scimd::api::auth::token::fingerprint(&t.id, &t.secret));
        let (id, provider) = (t.id.clone(), provider.to_string());
        self.store()
            .write_blocking(move |c| {
                let p = providers::require(c, &provider)?;
                tokens::create(
                    c,
                    &tokens::NewTokenRow {
                        id: &id,
                        provider_id: p.id,
                        secret_hash: &hash,
                        fingerprint: fingerprint.as_deref(),
                        description: "test",
                        read_only: false,
                        created,
                        expires,
                    },
                )
            })
            .unwrap();
        (t.id, t.full.expose().to_string())
    }

    pub fn store(&self) -> scimd::api::store::Store {
        scimd::api::store::Store::open(
            &self.path,
            scimd::api::store::OpenMode::MustExist,
            Duration::from_secs(5),
            2,
        )
        .unwrap()
    }
}

/// The one full token printed in `text`, and its id.
pub fn token_in(text: &str) -> (String, String) {
    let full = text
        .split(|c: char| c.is_whitespace() || c == '\'' || c == '"')
        .find(|w| w.starts_with("scimd_") && w.split('_').count() == 3)
        .unwrap_or_else(|| panic!("no token in output:\n{text}"))
        .to_string();
    let id = full.split('_').nth(1).unwrap().to_string();
    (id, full)
}

/// A `scimd` command with a clean environment: no stray SCIMD_* or RUST_LOG from the caller.
pub fn command(db: &Path) -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("SCIMD_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    // Many servers run at once: each admin listener on a port of its own.
    c.env("SCIMD_ADMIN_LISTEN", "127.0.0.1:0");
    c.arg("--database").arg(db);
    c
}

/// A running `scimd serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    logs: Arc<Mutex<Vec<String>>>,
    lines: mpsc::Receiver<String>,
}

impl Server {
    pub fn start(db: &TestDb) -> Server {
        Server::start_with(db.path.as_path(), &[], &[])
    }

    /// Starts `scimd serve --listen 127.0.0.1:0` with extra flags and environment, and waits
    /// until it logs the address it listens on.
    pub fn start_with(db: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = command(db);
        cmd.args(["serve", "--listen", "127.0.0.1:0"]).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Server::spawn(cmd)
    }

    pub fn spawn(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let logs = logs.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    logs.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        let mut server = Server {
            child,
            base: String::new(),
            logs,
            lines: rx,
        };
        let line = server.wait_for_line("listening on ");
        let url = line.split("listening on ").nth(1).unwrap();
        server.base = url
            .split(|c: char| c.is_whitespace() || c == '"')
            .next()
            .unwrap()
            .to_string();
        server
    }

    /// Waits (bounded) for a log line containing `needle`, and returns it.
    /// The URL (`ldap://` or `ldaps://` as `scheme` says, with the bound address) of the LDAP
    /// directory the server announced in its log.
    pub fn ldap_url(&self, scheme: &str) -> String {
        let line = self.wait_for_line(&format!("LDAP directory on {scheme}://"));
        let addr = line
            .split(&format!("{scheme}://"))
            .nth(1)
            .unwrap()
            .split(|c: char| c.is_whitespace() || c == '"')
            .next()
            .unwrap();
        format!("{scheme}://{addr}")
    }

    pub fn wait_for_line(&self, needle: &str) -> String {
        self.wait_for_line_with(&[needle])
    }

    /// Waits (bounded) for a log line containing every one of `needles`.
    pub fn wait_for_line_with(&self, needles: &[&str]) -> String {
        let hit = |l: &String| needles.iter().all(|n| l.contains(n));
        if let Some(l) = self.logs().into_iter().find(hit) {
            return l;
        }
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(l) if hit(&l) => return l,
                Ok(_) => {}
                Err(_) => panic!(
                    "no log line with {needles:?}; logs:\n{}",
                    self.logs().join("\n")
                ),
            }
        }
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// The admin listener's base URL (console and /metrics), from the server's log.
    pub fn admin(&self) -> String {
        let needle = "admin console and /metrics on ";
        let line = self.wait_for_line(needle);
        line.split(needle)
            .nth(1)
            .unwrap()
            .split(|c: char| c.is_whitespace() || c == '"')
            .next()
            .unwrap()
            .trim_end_matches('/')
            .to_string()
    }

    pub fn scim(&self, provider: &str) -> String {
        format!("{}/scim/v2/{provider}", self.base)
    }

    pub fn addr(&self) -> String {
        self.base
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_string()
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap().success()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response reduced to what the tests look at.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub www_authenticate: Option<String>,
    pub headers: Vec<(String, String)>,
    pub text: String,
}

impl Resp {
    /// A response header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts the status and the SCIM content type, and returns the JSON body.
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.content_type, "application/scim+json", "{}", self.text);
        self.json()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    /// Asserts a SCIM error response with this status, and returns its body.
    pub fn scim_error(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.content_type, "application/scim+json");
        let body = self.json();
        assert_eq!(
            body["schemas"][0],
            "urn:ietf:params:scim:api:messages:2.0:Error"
        );
        assert_eq!(body["status"], status.to_string());
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{body}"
        );
        body
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn into_resp(mut r: ureq::http::Response<ureq::Body>) -> Resp {
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let content_type = header("content-type").unwrap_or_default();
    let www_authenticate = header("www-authenticate");
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    Resp {
        status: r.status().as_u16(),
        content_type,
        www_authenticate,
        headers,
        text: r.body_mut().read_to_string().unwrap(),
    }
}

/// GET with an optional raw Authorization header value.
pub fn get(url: &str, authorization: Option<&str>) -> Resp {
    let mut req = agent().get(url);
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    into_resp(req.call().unwrap())
}

pub fn get_bearer(url: &str, token: &str) -> Resp {
    get(url, Some(&format!("Bearer {token}")))
}

/// Any method, with the token, an optional JSON body and extra headers.
pub fn send(
    method: &str,
    url: &str,
    token: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Resp {
    try_send(method, url, token, body, headers).unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// Like `send`, but a connection failure is an `Err`, not a panic.
pub fn try_send(
    method: &str,
    url: &str,
    token: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Result<Resp, ureq::Error> {
    let mut b = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("Authorization", format!("Bearer {token}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = match body {
        Some(v) => agent().run(
            b.header("Content-Type", "application/scim+json")
                .body(v.to_string())
                .unwrap(),
        ),
        None => agent().run(b.body(()).unwrap()),
    };
    resp.map(into_resp)
}

/// A client for one provider's SCIM base URL with one token.
pub struct Scim {
    pub base: String,
    pub token: String,
}

impl Scim {
    pub fn new(server: &Server, provider: &str, token: &str) -> Scim {
        Scim {
            base: server.scim(provider),
            token: token.to_string(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> Resp {
        send("GET", &self.url(path), &self.token, None, &[])
    }

    pub fn post(&self, path: &str, body: &Value) -> Resp {
        send("POST", &self.url(path), &self.token, Some(body), &[])
    }

    pub fn put(&self, path: &str, body: &Value) -> Resp {
        send("PUT", &self.url(path), &self.token, Some(body), &[])
    }

    pub fn delete(&self, path: &str) -> Resp {
        send("DELETE", &self.url(path), &self.token, None, &[])
    }

    pub fn with_headers(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        send(method, &self.url(path), &self.token, body, headers)
    }

    /// Creates a resource, asserting 201, and returns its body.
    pub fn create(&self, endpoint: &str, body: &Value) -> Value {
        self.post(endpoint, body).expect(201)
    }

    /// PATCHes with these operations.
    pub fn patch(&self, path: &str, operations: Value) -> Resp {
        self.with_headers("PATCH", path, Some(&patch_op(operations)), &[])
    }

    /// Creates a User with only a userName, asserting 201.
    pub fn user(&self, user_name: &str) -> Value {
        self.create(
            "/Users",
            &serde_json::json!({"schemas": [USER], "userName": user_name}),
        )
    }
}

/// A request with any method and body, over a raw TCP connection (so any method, header and
/// declared length can be sent exactly).
pub fn raw(addr: &str, request: &str) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let mut content_type = String::new();
    let mut www_authenticate = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            match k.to_ascii_lowercase().as_str() {
                "content-type" => content_type = v.trim().to_string(),
                "www-authenticate" => www_authenticate = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    Resp {
        status,
        content_type,
        www_authenticate,
        headers: Vec::new(),
        text: body.to_string(),
    }
}

/// A running server with one provider and a read-write token, and a client for it.
pub fn scim_server(provider: &str) -> (TestDb, Server, Scim) {
    scim_server_of_type(provider, "generic")
}

/// `scim_server` with a provider of type `kind` (generic or entra).
pub fn scim_server_of_type(provider: &str, kind: &str) -> (TestDb, Server, Scim) {
    let db = TestDb::new();
    db.ok(&["provider", "add", provider, "--type", kind]);
    let (_, token) = db.create_token(provider, &[]);
    let server = Server::start(&db);
    let scim = Scim::new(&server, provider, &token);
    (db, server, scim)
}
