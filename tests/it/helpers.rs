//! Test fixtures: config repositories, running the server, HTTP; the databases are in `databases`.

use std::path::{Path, PathBuf};
use std::process::Output;

use gatehouse::config::{self, Validated};
use gatehouse::plan::Options;
use gatehouse::reconcile::{self, ApplyReport};

pub use crate::databases::{TestDb, server_url};

pub fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A writable copy of a config repository in a temp dir.
pub struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    pub fn example() -> Self {
        Self::copy_of(&project_dir().join("example-config-repo"))
    }

    pub fn copy_of(source: &Path) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        copy_dir(source, dir.path());
        Repo { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, file: &str, text: &str) {
        let path = self.dir.path().join(file);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    pub fn remove(&self, file: &str) {
        std::fs::remove_file(self.dir.path().join(file)).expect("remove");
    }

    /// Replaces `from` by `to` in `file`; fails the test when `from` is not there.
    pub fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.dir.path().join(file);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains(from), "{file} does not contain {from:?}");
        std::fs::write(path, text.replacen(from, to, 1)).expect("write");
    }

    pub fn validated(&self) -> Validated {
        config::load_repo(self.path()).expect("readable repo")
    }

    /// Makes the repo a git work tree with everything committed; returns the commit id.
    pub fn commit_all(&self, message: &str) -> String {
        let repo =
            git2::Repository::open(self.path()).or_else(|_| git2::Repository::init(self.path())).expect("git repo");
        let mut index = repo.index().expect("index");
        index.add_all(["*"], git2::IndexAddOption::DEFAULT, None).expect("add");
        index.write().expect("write index");
        let tree = repo.find_tree(index.write_tree().expect("tree")).expect("tree");
        let signature = git2::Signature::now("Test", "test@gatehouse.invalid").expect("signature");
        let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        repo.commit(Some("HEAD"), &signature, &signature, message, &tree, &parents).expect("commit").to_string()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

pub async fn apply(db: &TestDb, repo: &Repo) -> ApplyReport {
    apply_with(db, repo, Options::default()).await
}

pub async fn apply_with(db: &TestDb, repo: &Repo, options: Options) -> ApplyReport {
    reconcile::apply(&db.pool, &repo.validated(), options, None).await.expect("apply runs")
}

pub async fn plan(db: &TestDb, repo: &Repo) -> gatehouse::plan::Plan {
    reconcile::plan(&db.pool, &repo.validated(), Options::default()).await.expect("plan runs")
}

/// Runs the real binary with `args`, environment `env`, and returns its output.
pub fn gatehouse(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command.args(args).env_remove("DATABASE_URL").env("NO_COLOR", "1");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("gatehouse runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Where a test's Gatehouse answers, in a process of its own or in the test's: what the tests'
/// request helpers take (both kinds of server dereference to it).
pub struct Served {
    pub base: String,
}

impl Served {
    /// Waits until the replica answers `/readyz` with 200.
    pub async fn ready(&self) {
        within(std::time::Duration::from_secs(30), "replica ready", || async {
            request("GET", format!("{}/readyz", self.base), vec![], vec![]).await.status == 200
        })
        .await;
    }
}

/// The real `gatehouse serve`, killed when dropped.
pub struct ServeProcess {
    pub child: std::process::Child,
    served: Served,
    /// Every line `serve` has logged so far.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ServeProcess {
    /// Starts `serve` on an ephemeral port and reads the address it logs.
    pub fn start(repo: &std::path::Path, database_url: &str, interval: &str) -> Self {
        Self::start_with(repo, database_url, interval, &[])
    }

    /// `start`, with more environment.
    pub fn start_with(repo: &std::path::Path, database_url: &str, interval: &str, env: &[(&str, &str)]) -> Self {
        use std::io::BufRead;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        command
            .args(["serve", "--repo", &repo.display().to_string(), "--listen", "127.0.0.1:0", "--interval", interval])
            .env("DATABASE_URL", database_url)
            .env("GATEHOUSE_OPERATOR_TOKEN", "cli-test-token")
            // The key ring that sealed the test databases' signing keys; a test may set another.
            .env("GATEHOUSE_ENCRYPTION_KEY", ENCRYPTION_KEY)
            .env("NO_COLOR", "1")
            .stderr(std::process::Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("serve starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = std::io::BufReader::new(stderr).lines();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let base = loop {
            let line = lines.next().expect("serve exited before serving").expect("log line");
            log.lock().expect("log").push(line.clone());
            if let Some(rest) = line.split("address=").nth(1) {
                break format!("http://{}", rest.split_whitespace().next().expect("address"));
            }
        };
        // Keep draining the log so the process never blocks on a full pipe.
        let kept = log.clone();
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(|line| kept.lock().expect("log").push(line)));
        ServeProcess { child, served: Served { base }, log }
    }

    pub fn terminate(&mut self) -> Option<i32> {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        self.child.wait().ok().and_then(|s| s.code())
    }
}

impl std::ops::Deref for ServeProcess {
    type Target = Served;

    fn deref(&self) -> &Served {
        &self.served
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// `serve` inside the test process: the same settings as `ServeProcess` (the flags' environment
/// variables, read by `serve`'s own `ServeArgs`), started by `cli::serve::start` on a runtime of its
/// own with two workers, as the binary would be on this machine. It spares a test the binary's start,
/// and stops as SIGTERM stops `serve` (requests finish, workers drain) when dropped. A test that
/// reads the server's log, signals it or measures its memory uses `ServeProcess`.
pub struct InProcess {
    served: Served,
    shutdown: tokio_util::sync::CancellationToken,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl InProcess {
    /// Serves `repo` from `database_url`, polling every `interval`, with more settings in `env`
    /// (`GATEHOUSE_…` names, as `ServeProcess::start_with` takes them).
    pub fn start(repo: &Path, database_url: &str, interval: &str, env: &[(&str, &str)]) -> Self {
        let repo = repo.display().to_string();
        let mut settings = vec![
            ("GATEHOUSE_REPO", repo.as_str()),
            ("GATEHOUSE_LISTEN", "127.0.0.1:0"),
            ("GATEHOUSE_INTERVAL", interval),
            ("DATABASE_URL", database_url),
            ("GATEHOUSE_OPERATOR_TOKEN", "cli-test-token"),
            ("GATEHOUSE_ENCRYPTION_KEY", ENCRYPTION_KEY),
        ];
        settings.extend_from_slice(env);
        let args = serve_args(&settings);
        // As `serve`'s `traces::init` does: reqwest's TLS uses the process's rustls provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (started, ready) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let server = match gatehouse::cli::serve::start(args).await {
                    Ok(server) => server,
                    Err(error) => {
                        let _ = started.send(Err(format!("{error:#}")));
                        return Ok(());
                    }
                };
                let _ = started.send(Ok((server.address, server.shutdown.clone())));
                server.wait().await.map_err(|error| format!("{error:#}"))
            })
        });
        let (address, shutdown) = ready.recv().expect("the server thread").unwrap_or_else(|e| panic!("serve: {e}"));
        InProcess { served: Served { base: format!("http://{address}") }, shutdown, thread: Some(thread) }
    }

    /// Stops as SIGTERM stops `serve`, and answers with the exit code `serve` would give: 0 when
    /// every task stopped cleanly (as `ServeProcess::terminate`).
    pub fn terminate(&mut self) -> Option<i32> {
        match self.stopped() {
            Ok(()) => Some(0),
            Err(error) => {
                eprintln!("serve stopped with an error: {error}");
                Some(1)
            }
        }
    }

    fn stopped(&mut self) -> Result<(), String> {
        self.shutdown.cancel();
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| "the server thread panicked".to_owned())?,
            None => Ok(()),
        }
    }
}

impl std::ops::Deref for InProcess {
    type Target = Served;

    fn deref(&self) -> &Served {
        &self.served
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        let _ = self.stopped();
    }
}

/// `serve`'s arguments from environment variables, each turned into the flag that reads it, so
/// that nothing of the test process's own environment is changed (tests run side by side).
fn serve_args(settings: &[(&str, &str)]) -> gatehouse::cli::serve::ServeArgs {
    use clap::{Args as _, FromArgMatches as _};
    let command = gatehouse::cli::serve::ServeArgs::augment_args(clap::Command::new("serve"));
    // As in an environment, a variable set twice has its last value.
    let mut environment: Vec<(&str, &str)> = Vec::new();
    for &(variable, value) in settings {
        environment.retain(|(seen, _)| *seen != variable);
        environment.push((variable, value));
    }
    let mut argv = vec!["serve".to_owned()];
    for (variable, value) in environment {
        let flag = command
            .get_arguments()
            .find(|arg| arg.get_env() == Some(std::ffi::OsStr::new(variable)))
            .unwrap_or_else(|| panic!("no flag of serve reads {variable}; such a test needs ServeProcess"));
        let long = flag.get_long().expect("every serve flag is long");
        // A switch takes no value: as the binary reads its variable, only `true` or `false`.
        match (flag.get_action(), value) {
            (clap::ArgAction::SetTrue, "true") => argv.push(format!("--{long}")),
            (clap::ArgAction::SetTrue, "false") => {}
            (clap::ArgAction::SetTrue, other) => panic!("{variable}={other}: serve reads true or false"),
            _ => argv.push(format!("--{long}={value}")),
        }
    }
    let matches = command.try_get_matches_from(argv).unwrap_or_else(|e| panic!("serve's arguments: {e}"));
    gatehouse::cli::serve::ServeArgs::from_arg_matches(&matches).unwrap_or_else(|e| panic!("serve's arguments: {e}"))
}

/// An HTTP answer: status, headers (names lower-case) and the body as JSON (`Null` if it is not).
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: serde_json::Value,
    pub text: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A real HTTP request, off the async runtime.
pub async fn request(method: &str, url: String, headers: Vec<(&'static str, String)>, body: Vec<u8>) -> HttpResponse {
    let method = method.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut request = ureq::request(&method, &url);
        for (name, value) in &headers {
            request = request.set(name, value);
        }
        let response = match request.send_bytes(&body) {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(error) => panic!("{method} {url}: {error}"),
        };
        let headers = response
            .headers_names()
            .into_iter()
            .filter_map(|n| Some((n.clone(), response.header(&n)?.to_owned())))
            .collect();
        let status = response.status();
        let text = response.into_string().unwrap_or_default();
        HttpResponse { status, headers, body: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null), text }
    })
    .await
    .expect("request task")
}

pub async fn http(
    method: &str,
    url: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let response = request(method, url, headers, body).await;
    (response.status, response.body)
}

/// Polls `check` every 20 ms until it holds or `limit` passes; returns how long it took.
pub async fn within<F, Fut>(limit: std::time::Duration, what: &str, mut check: F) -> std::time::Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// A TCP proxy to PostgreSQL that the test can cut and restore, to take the database away from a
/// server without stopping the PostgreSQL the other tests use.
pub struct Proxy {
    pub port: u16,
    pub cut: tokio_util::sync::CancellationToken,
}

impl Proxy {
    pub async fn start(port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("proxy bind");
        let port = listener.local_addr().expect("address").port();
        let cut = tokio_util::sync::CancellationToken::new();
        let token = cut.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = token.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((mut client, _)) = accepted else { continue };
                let token = token.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect("127.0.0.1:5432").await else { return };
                    tokio::select! {
                        () = token.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    }
                });
            }
        });
        Proxy { port, cut }
    }
}

/// The operator token the suites start `serve` with.
pub const OPERATOR: &str = "cli-test-token";
/// The key ring the suites start `serve` with.
pub const ENCRYPTION_KEY: &str = "test:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// The password `activate` gives users.
pub const PASSWORD: &str = "tulip river quartz lamp";

pub async fn call(
    server: &Served,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<serde_json::Value>,
) -> HttpResponse {
    let mut headers = vec![];
    if let Some(token) = bearer {
        headers.push(("authorization", format!("Bearer {token}")));
    }
    let body = match body {
        Some(body) => {
            headers.push(("content-type", "application/json".to_owned()));
            serde_json::to_vec(&body).expect("json")
        }
        None => vec![],
    };
    request(method, format!("{}{path}", server.base), headers, body).await
}

/// Test set-up: gives users a password and activates them as accepting an invitation would (the
/// invitation path itself is tested below).
pub async fn activate(db: &TestDb, emails: &[&str]) {
    let phc = gatehouse::identity::password::hash_blocking(PASSWORD);
    for email in emails {
        db.execute(&format!(
            "INSERT INTO credentials (user_id, password_hash) SELECT id, '{phc}' FROM users WHERE email = '{email}'"
        ))
        .await;
        db.execute(&format!("UPDATE users SET status = 'active', activated_at = now() WHERE email = '{email}'")).await;
    }
}
