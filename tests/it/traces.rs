//! Traces (issue 22.7): with `OTEL_EXPORTER_OTLP_ENDPOINT` set, a sign-in reaches a real OTLP/HTTP
//! receiver (decoded with PyPI `opentelemetry-proto`) as one trace: the request's span with its
//! method, route, status and actor kind, and inside it the password check and the database calls;
//! the log lines of the request carry the same trace id.

use std::io::BufRead as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{ENCRYPTION_KEY, PASSWORD, Repo, ServeProcess, TestDb, activate, within};
use crate::identity::login;

/// The receiver (`tests/support/otlp_receiver.py`) and the spans it has printed so far.
struct Receiver {
    child: std::process::Child,
    endpoint: String,
    spans: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let mut child = std::process::Command::new("python3")
            .arg(crate::helpers::project_dir().join("tests/support/otlp_receiver.py"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs the receiver (scripts/test installs opentelemetry-proto)");
        let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines.next().expect("the receiver starts").expect("a line");
        let port = first.strip_prefix("listening ").unwrap_or_else(|| panic!("the receiver said {first:?}"));
        let endpoint = format!("http://127.0.0.1:{port}");
        let spans: Arc<Mutex<Vec<Value>>> = Arc::default();
        let kept = spans.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().expect("spans").push(serde_json::from_str(&line).expect("a span as JSON"));
            }
        });
        Receiver { child, endpoint, spans }
    }

    fn spans(&self) -> Vec<Value> {
        self.spans.lock().expect("spans").clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_reaches_an_otlp_receiver_as_one_trace_whose_id_the_log_lines_carry() {
    let receiver = Receiver::start();
    let (db, repo) = (TestDb::new().await, Repo::example());
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_SERVICE_NAME", "gatehouse-under-test"),
        ("GATEHOUSE_ENCRYPTION_KEY", ENCRYPTION_KEY),
    ];
    // A process of its own: the exporter is the process's, and the test reads its log.
    let server = ServeProcess::start_with(repo.path(), &db.url, "60s", &env);
    server.ready().await;
    activate(&db, &["dan@acme.example"]).await;
    let signed_in = login(&server, "dan@acme.example", PASSWORD).await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.text);

    let sign_in = |spans: &[Value]| -> Option<Value> {
        spans
            .iter()
            .find(|s| s["name"] == "POST /v1/auth/login" && s["attributes"]["http.response.status_code"] == 200)
            .cloned()
    };
    within(Duration::from_secs(10), "the sign-in's request span is received", || {
        std::future::ready(sign_in(&receiver.spans()).is_some())
    })
    .await;
    let request = sign_in(&receiver.spans()).expect("the request span");
    assert_eq!(request["service"], "gatehouse-under-test");
    assert_eq!(request["attributes"]["http.request.method"], "POST");
    assert_eq!(request["attributes"]["http.route"], "/v1/auth/login");
    assert_eq!(request["parentSpanId"], "", "the request is the trace's root");
    let trace = request["traceId"].as_str().expect("trace id").to_owned();

    // Its children arrive in the same or an earlier batch (they end first).
    let children = |spans: &[Value]| -> Vec<String> {
        spans
            .iter()
            .filter(|s| s["traceId"] == trace.as_str())
            .filter_map(|s| s["name"].as_str().map(str::to_owned))
            .collect()
    };
    let in_trace = children(&receiver.spans());
    for expected in ["password.verify", "db.sign_in", "db.create_session"] {
        assert!(
            in_trace.iter().any(|name| name == expected),
            "no `{expected}` span in the sign-in's trace: {in_trace:?}"
        );
    }
    let session_check = {
        let access = signed_in.body["access_token"].as_str().expect("access token");
        crate::helpers::request(
            "GET",
            format!("{}/v1/auth/session", server.base),
            vec![("authorization", format!("Bearer {access}"))],
            vec![],
        )
        .await
    };
    assert_eq!(session_check.status, 200);
    within(Duration::from_secs(10), "the session check's span names the caller's kind", || {
        std::future::ready(
            receiver
                .spans()
                .iter()
                .any(|s| s["name"] == "GET /v1/auth/session" && s["attributes"]["actor.kind"] == "user"),
        )
    })
    .await;

    // The request's log lines (its sign-in row is written inside it) carry the trace id.
    let logged = server.log.lock().expect("log").iter().any(|line| line.contains(&format!("trace_id={trace}")));
    assert!(logged, "no log line carries trace_id={trace}: {:?}", server.log.lock().expect("log"));
}
