//! Running `wrk` (`apt-get install wrk`) from a second process and reading its report.

use std::path::Path;

pub struct Load {
    pub requests_per_second: f64,
    pub p99_ms: f64,
    /// Non-2xx/3xx answers or socket errors (timeouts): the figures are void.
    pub errors: bool,
}

/// Starts `wrk -t<threads> -c<connections> -d<seconds>s --latency` on `url` with the Lua `script`.
pub fn start(
    url: &str,
    threads: u32,
    connections: u32,
    seconds: u64,
    script: &str,
    dir: &Path,
    name: &str,
) -> std::process::Child {
    let script_path = dir.join(format!("{name}.lua"));
    std::fs::write(&script_path, script).expect("write lua");
    std::process::Command::new("wrk")
        .args([&format!("-t{threads}"), &format!("-c{connections}"), "-d", &format!("{seconds}s"), "--latency", "-s"])
        .arg(&script_path)
        .arg(url)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("wrk runs (apt-get install wrk)")
}

/// Waits for a `start`ed wrk and reads its report; errors are echoed to stderr.
pub fn finish(child: std::process::Child) -> Load {
    let output = child.wait_with_output().expect("wrk");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if let Some(errors) = text.lines().find(|l| l.contains("Socket errors") || l.contains("Non-2xx")) {
        eprintln!("wrk: {}", errors.trim());
    }
    let field = |prefix: &str| {
        text.lines().find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_owned())).unwrap_or_default()
    };
    let p99 = field("99%");
    let p99_ms = if let Some(v) = p99.strip_suffix("us") {
        v.parse::<f64>().unwrap_or(f64::NAN) / 1000.0
    } else if let Some(v) = p99.strip_suffix("ms") {
        v.parse().unwrap_or(f64::NAN)
    } else if let Some(v) = p99.strip_suffix('s') {
        v.parse::<f64>().unwrap_or(f64::NAN) * 1000.0
    } else {
        f64::NAN
    };
    Load {
        requests_per_second: field("Requests/sec:").parse().unwrap_or(0.0),
        p99_ms,
        errors: text.contains("Non-2xx or 3xx") || text.contains("Socket errors"),
    }
}
