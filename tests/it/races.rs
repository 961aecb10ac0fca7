//! Races on the identity runtime (issue 11.1 and 11.2): many requests at once against the real
//! binary on loopback, in bounded numbers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{ENCRYPTION_KEY, InProcess, PASSWORD, ServeProcess, Served, activate, call};
use crate::helpers::{HttpResponse, Repo, TestDb};
use crate::identity::{login, session_status, str_of, totp_now};

const THRESHOLD: i64 = 5;
/// Failures before the lock, a lock that outlasts the test, and no per-IP limit in the way.
const LOCKOUT: [(&str, &str); 4] = [
    ("GATEHOUSE_LOCKOUT_THRESHOLD", "5"),
    ("GATEHOUSE_LOCKOUT_DELAY", "60s"),
    ("GATEHOUSE_LOCKOUT_MAX_DELAY", "60s"),
    ("GATEHOUSE_AUTH_IP_LIMIT", "1000"),
];

/// `gatehouse serve` in the test's process with the suite's key ring, ready.
async fn started(repo: &Repo, db: &TestDb, env: &[(&str, &str)]) -> InProcess {
    let mut env = env.to_vec();
    env.push(("GATEHOUSE_ENCRYPTION_KEY", ENCRYPTION_KEY));
    let server = InProcess::start(repo.path(), &db.url, "60s", &env);
    server.ready().await;
    server
}

/// Sends every request of `bodies` to `path` at once (each on its own connection) and returns the
/// answers in the same order.
async fn at_once(
    server: &Served,
    path: &str,
    bearer: Option<&str>,
    bodies: Vec<serde_json::Value>,
) -> Vec<HttpResponse> {
    let start = Arc::new(tokio::sync::Barrier::new(bodies.len()));
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let (start, base, path, bearer) =
                (start.clone(), server.base.clone(), path.to_owned(), bearer.map(str::to_owned));
            tokio::spawn(async move {
                start.wait().await;
                let mut headers = vec![("content-type", "application/json".to_owned())];
                if let Some(token) = bearer {
                    headers.push(("authorization", format!("Bearer {token}")));
                }
                let body = serde_json::to_vec(&body).expect("json");
                crate::helpers::request("POST", format!("{base}{path}"), headers, body).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("request task"));
    }
    answers
}

fn statuses(answers: &[HttpResponse]) -> Vec<u16> {
    answers.iter().map(|a| a.status).collect()
}

/// FR-010, issue 11.1: thirty wrong passwords and the right one sent at once: at most the threshold
/// of them are verified (each verified one leaves an audit row), the rest are refused with 429
/// before any verification, and the right one gets in only if it took one of those attempts.
#[tokio::test]
async fn thirty_wrong_passwords_and_the_right_one_at_once_verify_at_most_the_threshold() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &LOCKOUT).await;
    let user = "dan@acme.example";
    activate(&db, &[user]).await;

    let mut bodies = vec![json!({ "email": user, "password": "not the password" }); 30];
    bodies.push(json!({ "email": user, "password": PASSWORD }));
    let answers = at_once(&server, "/v1/auth/login", None, bodies).await;
    let (wrong, right) = answers.split_at(30);
    let right = &right[0];

    let verified_wrong = db
        .count("SELECT count(*) FROM audit_log WHERE action = 'auth.login' AND metadata->>'reason' = 'wrong password'")
        .await;
    let signed_in = i64::from(right.status == 200);
    assert!(
        verified_wrong + signed_in <= THRESHOLD,
        "{verified_wrong} wrong passwords verified (and the right one: {}), threshold {THRESHOLD}",
        right.status
    );
    let refused: Vec<u16> = statuses(wrong);
    assert_eq!(refused.iter().filter(|s| **s == 401).count() as i64, verified_wrong, "{refused:?}");
    assert!(refused.iter().all(|s| [401, 429].contains(s)), "{refused:?}");
    for answer in wrong.iter().filter(|a| a.status == 429) {
        let retry: u64 = answer.header("retry-after").expect("Retry-After").parse().expect("seconds");
        assert!((1..=60).contains(&retry), "{retry}");
    }
    if right.status == 200 {
        assert_eq!(right.body["session"]["email"], user);
    } else {
        assert_eq!(right.status, 429, "the right password is refused unverified: {}", right.text);
        assert_eq!(verified_wrong, THRESHOLD, "the lock started at the threshold");
        assert_eq!(login(&server, user, PASSWORD).await.status, 429, "the account stays locked");
        assert_eq!(db.count("SELECT count(*) FROM audit_log WHERE action = 'auth.lockout'").await, 1);
    }
}

/// FR-010, issue 11.1: forty wrong TOTP codes and the right one sent at once: at most the threshold
/// of them are checked; a correct password does not reset that count.
#[tokio::test]
async fn forty_wrong_totp_codes_at_once_check_at_most_the_threshold() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &LOCKOUT).await;
    let user = "dan@acme.example";
    activate(&db, &[user]).await;

    let first = login(&server, user, PASSWORD).await;
    let access = str_of(&first.body, "access_token").to_owned();
    let enrolment = call(&server, "POST", "/v1/auth/mfa/totp/enrol", Some(&access), None).await;
    let secret = str_of(&enrolment.body, "secret").to_owned();
    let confirmed = call(
        &server,
        "POST",
        "/v1/auth/mfa/totp/confirm",
        Some(&access),
        Some(json!({ "code": totp_now(&secret, 0) })),
    )
    .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);

    let second = login(&server, user, PASSWORD).await;
    assert_eq!(second.body["session"]["pending"], "mfa_verify");
    let pending = str_of(&second.body, "access_token").to_owned();
    let valid: Vec<String> = (-1..=1).map(|offset| totp_now(&secret, offset)).collect();
    let wrong_code = (10..).map(|offset| totp_now(&secret, offset)).find(|c| !valid.contains(c)).expect("a wrong code");
    let mut bodies = vec![json!({ "code": wrong_code }); 40];
    bodies.push(json!({ "code": totp_now(&secret, 1) }));
    let answers = at_once(&server, "/v1/auth/mfa/verify", Some(&pending), bodies).await;
    let (wrong, right) = answers.split_at(40);
    let right = &right[0];

    let checked_wrong = db
        .count(
            "SELECT count(*) FROM audit_log WHERE action = 'auth.mfa.verify' AND outcome = 'failure'
                AND metadata->>'reason' = 'wrong or used code'",
        )
        .await;
    let verified = i64::from(right.status == 200);
    assert!(
        checked_wrong + verified <= THRESHOLD,
        "{checked_wrong} wrong codes checked (and the right one: {}), threshold {THRESHOLD}",
        right.status
    );
    let refused = statuses(wrong);
    let unavailable = refused.iter().filter(|s| **s == 503).count();
    assert!(unavailable < 20, "{unavailable} of 40 found no database connection: the run checked too little");
    assert_eq!(refused.iter().filter(|s| **s == 400).count() as i64, checked_wrong, "{refused:?}");
    // Once the right code is in, the session is complete (409) and its old access token refused
    // (401), both without checking the code. Forty-one requests at once on a busy machine may also
    // find no free database connection in time: 503, refused unchecked too.
    let allowed: &[u16] = if right.status == 200 { &[400, 401, 409, 429, 503] } else { &[400, 429, 503] };
    assert!(refused.iter().all(|s| allowed.contains(s)), "{refused:?}");
    if right.status != 200 {
        assert!([429, 503].contains(&right.status), "the right code is refused unchecked: {}", right.text);
    }
    if right.status != 200 && checked_wrong == THRESHOLD {
        // Signing in again with the right password does not buy more guesses.
        let again = login(&server, user, PASSWORD).await;
        assert_eq!(again.status, 429, "{}", again.text);
    }
}

/// Issue 11.2, FR-AUTH-005: 64 refreshes of one token at once: exactly one rotation wins and every
/// answer is that pair (or a clean 401), never a 5xx or a deadlock; the session lives on with the
/// winning pair, and other requests are answered meanwhile.
#[tokio::test]
async fn sixty_four_concurrent_refreshes_of_one_token_leave_one_working_pair() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    // A process of its own: the test reads its log.
    let env = [("GATEHOUSE_ENCRYPTION_KEY", ENCRYPTION_KEY), ("GATEHOUSE_AUTH_IP_LIMIT", "1000")];
    let server = ServeProcess::start_with(repo.path(), &db.url, "60s", &env);
    server.ready().await;
    let user = "dan@acme.example";
    activate(&db, &[user, "erin@acme.example"]).await;
    let signed_in = login(&server, user, PASSWORD).await;
    let refresh = str_of(&signed_in.body, "refresh_token").to_owned();
    let other = login(&server, "erin@acme.example", PASSWORD).await;
    let other_access = str_of(&other.body, "access_token").to_owned();

    let bystander = {
        let (base, access) = (server.base.clone(), other_access.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let started = Instant::now();
            let headers = vec![("authorization", format!("Bearer {access}"))];
            let answer = crate::helpers::request("GET", format!("{base}/v1/auth/session"), headers, vec![]).await;
            (answer.status, started.elapsed())
        })
    };
    let answers = at_once(&server, "/v1/auth/refresh", None, vec![json!({ "refresh_token": refresh }); 64]).await;
    let (bystander_status, bystander_took) = bystander.await.expect("bystander");

    let all = statuses(&answers);
    assert!(all.iter().all(|s| [200, 401].contains(s)), "{all:?}");
    let log_text = server.log.lock().expect("log").join("\n");
    assert!(!log_text.contains("deadlock"), "{log_text}");
    let winners: Vec<&HttpResponse> = answers.iter().filter(|a| a.status == 200).collect();
    assert!(!winners.is_empty(), "{all:?}");
    let pair =
        |a: &HttpResponse| (str_of(&a.body, "access_token").to_owned(), str_of(&a.body, "refresh_token").to_owned());
    let (access, next_refresh) = pair(winners[0]);
    assert!(winners.iter().all(|w| pair(w) == (access.clone(), next_refresh.clone())), "one rotation won");
    assert_eq!((bystander_status, bystander_took < Duration::from_secs(2)), (200, true), "{bystander_took:?}");

    assert_eq!(session_status(&server, &access).await, 200, "the winning access token works");
    let again = call(&server, "POST", "/v1/auth/refresh", None, Some(json!({ "refresh_token": next_refresh }))).await;
    assert_eq!(again.status, 200, "the winning refresh token refreshes: {}", again.text);
    assert_eq!(session_status(&server, str_of(&again.body, "access_token")).await, 200);
    assert_eq!(db.count("SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL").await, 0, "nothing revoked");
    assert_eq!(
        db.count("SELECT count(*) FROM audit_log WHERE action = 'auth.refresh' AND outcome = 'success'").await,
        winners.len() as i64 + 1,
        "every answered refresh is audited"
    );
}

/// Review of issue 11.1: years of one guess per lock window (thousands of failures) must not break
/// the lock's arithmetic: the next attempt is still an ordinary 429 or 401, never a 500, and the
/// lock stays at its maximum.
#[tokio::test]
async fn thousands_of_failures_still_lock_at_the_maximum_rather_than_failing() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    let server = started(&repo, &db, &LOCKOUT).await;
    let user = "dan@acme.example";
    activate(&db, &[user]).await;
    db.execute(&format!(
        "INSERT INTO account_lockouts (email, failures, last_failure_at, locked_until)
         VALUES ('{user}', 2000, now(), now() - interval '1 second')"
    ))
    .await;
    let answer = login(&server, user, "not the password").await;
    assert_eq!(answer.status, 401, "the reserved attempt is verified and refused: {}", answer.text);
    let locked = login(&server, user, PASSWORD).await;
    assert_eq!(locked.status, 429, "{}", locked.text);
    let retry: u64 = locked.header("retry-after").expect("Retry-After").parse().expect("seconds");
    assert!((1..=60).contains(&retry), "the lock is capped at the 60 s maximum: {retry}");
}
