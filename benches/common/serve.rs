//! Starting the release binary's `serve` for a benchmark: on an ephemeral port, logs drained (the
//! access-cache load time echoed), until the benchmark kills it, or fails: a benchmark that panics
//! kills the servers it started, so none is left loading the machine.

use std::io::BufRead;
use std::sync::Mutex;

/// The servers started so far, killed if the benchmark panics.
static STARTED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Once, before the first server: a panic kills every server started (then reports as usual).
fn kill_servers_on_panic() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            for pid in STARTED.lock().map(|p| p.clone()).unwrap_or_default() {
                // Only a server still running: a pid already reaped may belong to another process now.
                let command = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&command).contains("gatehouse") {
                    let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
                }
            }
            report(info)
        }));
    });
}

/// Runs `gatehouse serve --listen 127.0.0.1:0 <args>` with `env`; returns the child and its base URL.
pub fn start(args: &[&str], env: &[(&str, &str)]) -> (std::process::Child, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "gatehouse=info")
        .stderr(std::process::Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    kill_servers_on_panic();
    let mut child = command.spawn().expect("serve");
    STARTED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(child.id());
    let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let base = loop {
        let line = lines.next().expect("serve exited").expect("line");
        if let Some(rest) = line.split("address=").nth(1) {
            break format!("http://{}", rest.split_whitespace().next().expect("address"));
        }
    };
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if line.contains("access cache loaded") || line.contains("write-back") || line.contains("reconciled") {
                eprintln!("{line}");
            }
        }
    });
    (child, base)
}

/// The baseline of the HTTP benchmarks: a minimal axum handler answering `bytes` fixed bytes, on
/// its own port of this process; returns its URL.
#[allow(dead_code)] // not every benchmark has an HTTP baseline
pub async fn fixed_body(bytes: usize) -> String {
    let fixed = axum::body::Bytes::from(vec![b'x'; bytes]);
    let baseline =
        axum::Router::new().route("/baseline", axum::routing::get(move || std::future::ready(fixed.clone())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/baseline", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, baseline).await });
    url
}
