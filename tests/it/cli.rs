//! The command line as CI and operators use it: exit codes, output formats, clear errors.

use crate::helpers::{
    ENCRYPTION_KEY, OPERATOR, Repo, ServeProcess, Served, TestDb, activate, call, gatehouse, project_dir, request,
    stderr, stdout, within,
};

fn example() -> String {
    project_dir().join("example-config-repo").display().to_string()
}

#[test]
fn validate_accepts_the_example_repo_without_a_database() {
    let output = gatehouse(&["validate", &example()], &[("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "valid: 11 files, no problems\n");
}

#[test]
fn validate_exits_1_with_github_annotations_for_an_invalid_repo() {
    let dir = project_dir().join("tests/fixtures/invalid/missing-plan");
    let output = gatehouse(&["validate", "--format", "github", &dir.display().to_string()], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stdout(&output),
        "::error file=tenant.yaml,line=6,col=9,title=gatehouse validate::spec.plan: plan `platinum` is not declared; declared plans: pro\n"
    );
}

#[test]
fn validate_json_lists_every_problem() {
    let dir = project_dir().join("tests/fixtures/invalid/budget-not-sane");
    let output = gatehouse(&["validate", "--format", "json", &dir.display().to_string()], &[]);
    assert_eq!(output.status.code(), Some(1));
    let body: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(body["valid"], false);
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(3));
    assert_eq!(body["errors"][0]["path"], "spec.budget.monthlyLimit");
}

#[test]
fn validate_exits_2_when_it_cannot_read_the_repo() {
    let output = gatehouse(&["validate", "/nonexistent/config"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("/nonexistent/config is not a directory"), "{}", stderr(&output));
}

#[test]
fn plan_fails_with_a_clear_message_when_postgres_is_unreachable() {
    let output =
        gatehouse(&["plan", &example()], &[("DATABASE_URL", "postgres://gatehouse:s3cret@127.0.0.1:1/gatehouse")]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("cannot reach PostgreSQL at 127.0.0.1:1/gatehouse"), "{message}");
    assert!(!message.contains("s3cret"), "the password leaked: {message}");
}

#[tokio::test]
async fn plan_then_apply_then_plan_through_the_binary() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let dir = repo.path().display().to_string();
    let env = [("DATABASE_URL", db.url.as_str())];

    let first = gatehouse(&["plan", &dir], &env);
    assert_eq!(first.status.code(), Some(1), "changes pending: {}", stderr(&first));
    assert!(stdout(&first).starts_with("Plan: 51 to create, 0 to update, 0 to delete"), "{}", stdout(&first));

    let applied = gatehouse(&["apply", &dir], &env);
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
    assert!(stdout(&applied).starts_with("applied 51 changes"), "{}", stdout(&applied));

    let second = gatehouse(&["plan", &dir], &env);
    assert_eq!(second.status.code(), Some(0));
    assert_eq!(stdout(&second), "No changes: the live state matches the config repository.\n");
}

#[tokio::test]
async fn plan_as_markdown_is_a_short_pull_request_comment() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    crate::helpers::apply(&db, &repo).await;
    repo.edit(
        "tenants/acme.yaml",
        "{ email: dan@acme.example, role: user }",
        "{ email: dan@acme.example, role: admin }",
    );
    let output =
        gatehouse(&["plan", "--format", "markdown", &repo.path().display().to_string()], &[("DATABASE_URL", &db.url)]);
    assert_eq!(output.status.code(), Some(1));
    let md = stdout(&output);
    assert!(md.contains("| `acme` | 0 | 1 | 0 | 0 | 0 | out of sync |"), "{md}");
    assert!(md.contains("~ user dan@acme.example\n      role: \"user\" → \"admin\""), "{md}");
}

#[tokio::test]
async fn apply_exits_1_and_names_the_tenants_it_could_not_apply() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    repo.edit("tenants/hooli.yaml", "plan: pro", "plan: platinum");
    let output = gatehouse(&["apply", &repo.path().display().to_string()], &[("DATABASE_URL", &db.url)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("tenant hooli: invalid, keeps its last good state:\n  tenants/hooli.yaml:9:9"),
        "{}",
        stderr(&output)
    );
    assert_eq!(db.count("SELECT count(*) FROM tenants").await, 5);
}

#[test]
fn help_documents_every_command() {
    let output = gatehouse(&["--help"], &[]);
    let help = stdout(&output);
    for command in ["validate", "plan", "apply", "schema", "migrate", "tenants", "users"] {
        assert!(help.contains(command), "{command} missing from --help");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_syncs_the_example_repo_and_status_reports_it() {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let mut serve = ServeProcess::start(repo.path(), &db.url, "1s");
    let status = |args: &[&str]| {
        let mut all = vec!["status", "--server", serve.base.as_str()];
        all.extend_from_slice(args);
        gatehouse(&all, &[("GATEHOUSE_OPERATOR_TOKEN", "cli-test-token")])
    };
    let started = std::time::Instant::now();
    let synced = loop {
        let output = status(&[]);
        if output.status.code() == Some(0) {
            break output;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "not synced: {}{}",
            stdout(&output),
            stderr(&output)
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let text = stdout(&synced);
    assert!(text.starts_with("Synced  commit "), "{text}");
    assert!(text.contains("tenants: 6 synced, 0 out of sync, 0 drifted, 0 error"), "{text}");

    db.execute("UPDATE users SET role = 'admin' WHERE email = 'leon@umbrella.example'").await;
    let started = std::time::Instant::now();
    let detail = loop {
        let output = status(&["--tenant", "umbrella"]);
        if stdout(&output).contains("drift") {
            break output;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{}", stdout(&output));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(detail.status.code(), Some(1), "a drifted tenant is not synced");
    assert!(
        stdout(&detail)
            .contains("tenant/umbrella/user/leon@umbrella.example role: applied \"user\", live \"admin\" (kept"),
        "{}",
        stdout(&detail)
    );
    let json = status(&["--format", "json"]);
    let body: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(body["state"], "Drifted");

    let metrics = ureq::get(&format!("{}/metrics", serve.base)).call().expect("metrics").into_string().expect("text");
    for name in [
        "gatehouse_reconcile_duration_seconds_bucket",
        "gatehouse_last_successful_sync_timestamp_seconds",
        "gatehouse_tenants{state=\"Drifted\"} 1",
        "gatehouse_drifted_resources 1",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics:\n{metrics}");
    }
    assert_eq!(serve.terminate(), Some(0), "SIGTERM stops serve cleanly");
}

#[test]
fn status_without_a_server_exits_2_with_a_clear_message() {
    let output = gatehouse(&["status", "--server", "http://127.0.0.1:1"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains(
            "cannot reach http://127.0.0.1:1 (is `gatehouse serve` running there? set --server or GATEHOUSE_SERVER)"
        ),
        "{}",
        stderr(&output)
    );
}

#[test]
fn serve_help_never_shows_secrets_from_the_environment() {
    let secrets = [
        ("GATEHOUSE_OPERATOR_TOKEN", "op-secret-1"),
        ("GATEHOUSE_WEBHOOK_SECRET", "hook-secret-2"),
        ("GATEHOUSE_GIT_TOKEN", "git-secret-3"),
        ("DATABASE_URL", "postgres://u:db-secret-4@h/d"),
    ];
    let output = gatehouse(&["serve", "--help"], &secrets);
    let help = stdout(&output);
    for flag in ["--repo", "--ref", "--listen", "--database-url", "--interval", "--webhook-secret", "--operator-token"]
    {
        assert!(help.contains(flag), "{flag} missing from serve --help");
    }
    for env in [
        "GATEHOUSE_REPO",
        "GATEHOUSE_REF",
        "GATEHOUSE_LISTEN",
        "GATEHOUSE_INTERVAL",
        "GATEHOUSE_WEBHOOK_SECRET",
        "GATEHOUSE_OPERATOR_TOKEN",
    ] {
        assert!(help.contains(env), "{env} missing from serve --help");
    }
    for (_, secret) in secrets {
        assert!(!help.contains(secret), "serve --help shows a secret");
    }
}

#[test]
fn logs_can_be_json_lines_for_log_collectors() {
    let output = gatehouse(&["validate", &example(), "--log-format", "json"], &[("RUST_LOG", "gatehouse=debug")]);
    assert_eq!(output.status.code(), Some(0));
    let logs = stderr(&output);
    assert!(!logs.is_empty(), "debug logging produced nothing");
    for line in logs.lines() {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(entry["timestamp"].is_string() && entry["level"].is_string(), "{line}");
    }
    assert!(logs.contains("\"message\":\"config loaded\""), "{logs}");
}

/// Whether the PostgreSQL server of the tests has a database called `name`.
async fn database_exists(name: &str) -> bool {
    let pool = sqlx::PgPool::connect(&format!("{}/postgres", crate::helpers::server_url())).await.expect("server");
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&pool)
        .await
        .expect("query")
}

/// Issue 15.9: a mistyped database URL is an error for `mail list`, not a new empty database.
#[tokio::test]
async fn mail_list_never_creates_a_database() {
    let name = format!("gatehouse_typo_{}", std::process::id());
    let url = format!("{}/{name}", crate::helpers::server_url());
    let output = gatehouse(&["mail", "list"], &[("DATABASE_URL", &url)]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(stderr(&output).contains(&format!("database 127.0.0.1:5432/{name} does not exist")), "{}", stderr(&output));
    assert!(!stdout(&output).contains("no mail"));
    assert!(!database_exists(&name).await, "mail list created {name}");
}

/// Issue 15.9: `plan` only reads: against a database that does not exist yet it shows everything
/// `apply` would create, and creates nothing; an existing database is never migrated by it.
#[tokio::test]
async fn plan_neither_creates_nor_migrates_a_database() {
    let name = format!("gatehouse_plan_{}", std::process::id());
    let url = format!("{}/{name}", crate::helpers::server_url());
    let output = gatehouse(&["plan", &example()], &[("DATABASE_URL", &url)]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stdout(&output).starts_with("Plan: 51 to create"), "{}", stdout(&output));
    assert!(stderr(&output).contains("does not exist yet: planning against an empty platform"), "{}", stderr(&output));
    assert!(!database_exists(&name).await, "plan created {name}");

    let server = sqlx::PgPool::connect(&format!("{}/postgres", crate::helpers::server_url())).await.expect("server");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&server).await.expect("create");
    let output = gatehouse(&["plan", &example()], &[("DATABASE_URL", &url)]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("is not migrated to this version of Gatehouse: run `gatehouse migrate`"),
        "{}",
        stderr(&output)
    );
    let db = sqlx::PgPool::connect(&url).await.expect("db");
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        .fetch_one(&db)
        .await
        .expect("count");
    assert_eq!(tables, 0, "plan migrated the database");
    db.close().await;
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)")).execute(&server).await.expect("drop");
}

/// Issue 15.2: with `--path`, only that folder is config, and problems are named from the
/// repository root so that CI annotations point at the right file.
#[test]
fn validate_with_a_path_reads_only_that_folder_and_names_files_from_the_repo_root() {
    let root = tempfile::tempdir().expect("root");
    let config = root.path().join("deploy/gatehouse");
    copy(&project_dir().join("tests/fixtures/invalid/missing-plan"), &config).expect("copy");
    std::fs::write(root.path().join("values.yaml"), "replicas: 3\n").expect("write");
    let dir = root.path().display().to_string();
    let output = gatehouse(&["validate", &dir, "--path", "deploy/gatehouse", "--format", "github"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stdout(&output),
        "::error file=deploy/gatehouse/tenant.yaml,line=6,col=9,title=gatehouse validate::spec.plan: plan `platinum` is not declared; declared plans: pro\n"
    );
    let env = gatehouse(&["validate", &dir], &[("GATEHOUSE_PATH", "deploy/gatehouse/")]);
    assert!(stdout(&env).contains("invalid: 1 problem in 3 files"), "{}", stdout(&env));
    let outside = gatehouse(&["validate", &dir, "--path", "../etc"], &[]);
    assert_eq!(outside.status.code(), Some(2), "a path outside the repository is refused");
}

fn copy(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        std::fs::copy(entry.path(), to.join(entry.file_name()))?;
    }
    Ok(())
}

/// A server for the admin commands: on an ephemeral port, ready (the plans are synced from Git).
async fn admin_server() -> (TestDb, Repo, ServeProcess) {
    let (db, repo) = (TestDb::new().await, Repo::example());
    let server = ServeProcess::start_with(repo.path(), &db.url, "60s", &[("GATEHOUSE_ENCRYPTION_KEY", ENCRYPTION_KEY)]);
    within(std::time::Duration::from_secs(30), "server ready", || async {
        request("GET", format!("{}/readyz", server.base), vec![], vec![]).await.status == 200
    })
    .await;
    (db, repo, server)
}

/// Runs the CLI against `server`, found through GATEHOUSE_SERVER as an operator would set it.
fn admin(server: &Served, args: &[&str]) -> std::process::Output {
    gatehouse(args, &[("GATEHOUSE_SERVER", server.base.as_str()), ("GATEHOUSE_OPERATOR_TOKEN", OPERATOR)])
}

/// `admin`, which must succeed; its standard output.
fn admin_ok(server: &Served, args: &[&str]) -> String {
    let output = admin(server, args);
    assert_eq!(output.status.code(), Some(0), "{args:?}: {}", stderr(&output));
    stdout(&output)
}

/// `admin … --format json`, which must succeed; its JSON.
fn admin_json(server: &Served, args: &[&str]) -> serde_json::Value {
    let text = admin_ok(server, &[args, &["--format", "json"]].concat());
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {text}"))
}

/// The words of the table row that starts with `first`.
fn row(table: &str, first: &str) -> Vec<String> {
    let line = table.lines().find(|l| l.split_whitespace().next() == Some(first));
    line.unwrap_or_else(|| panic!("no row {first} in:\n{table}")).split_whitespace().map(str::to_owned).collect()
}

/// One field of every item of a listing's JSON.
fn column(listed: &serde_json::Value, items: &str, field: &str) -> Vec<serde_json::Value> {
    listed[items]
        .as_array()
        .unwrap_or_else(|| panic!("no {items} in {listed}"))
        .iter()
        .map(|i| i[field].clone())
        .collect()
}

/// Issue 12.6: an operator creates, lists, suspends, restores and deletes a tenant with the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_created_listed_suspended_restored_and_deleted_with_the_cli() {
    let (_db, _repo, server) = admin_server().await;
    let create = [
        "tenants",
        "create",
        "initrode",
        "--display-name",
        "Initrode Inc",
        "--plan",
        "pro",
        "--owner",
        "bill@initrode.example",
        "--owner-name",
        "Bill",
        "--app",
        "billing-app",
        "--idempotency-key",
        "create-initrode-1",
    ];
    let created = admin_ok(&server, &create);
    for line in
        ["tenant:       initrode\n", "state:        active\n", "plan:         pro\n", "applications: billing-app\n"]
    {
        assert!(created.contains(line), "{line:?} missing from:\n{created}");
    }
    let retried = admin_json(&server, &create);
    assert_eq!(retried["name"], "initrode", "the same Idempotency-Key answers the first creation again");
    let duplicate = admin(&server, &create[..create.len() - 2]);
    assert_eq!(duplicate.status.code(), Some(2), "without the key it is a second creation");
    assert!(stderr(&duplicate).contains("409"), "{}", stderr(&duplicate));

    let table = admin_ok(&server, &["tenants", "list"]);
    assert_eq!(row(&table, "initrode"), ["initrode", "active", "pro", "api", "Initrode", "Inc"]);
    assert_eq!(row(&table, "acme")[3], "git", "{table}");
    assert!(table.starts_with("NAME"), "{table}");
    let listed = admin_json(&server, &["tenants", "list", "--prefix", "initr"]);
    assert_eq!(column(&listed, "tenants", "name"), ["initrode"]);

    let shown = admin_json(&server, &["tenants", "show", "initrode"]);
    let served = call(&server, "GET", "/v1/tenants/initrode", Some(OPERATOR), None).await;
    assert_eq!(shown, served.body, "--format json prints the server's JSON unchanged");

    let suspended = admin_ok(&server, &["tenants", "suspend", "initrode", "--reason", "unpaid invoice"]);
    assert!(suspended.contains("state:        suspended\n"), "{suspended}");
    assert!(suspended.contains(" (unpaid invoice)\n"), "{suspended}");
    let listed = admin_json(&server, &["tenants", "list", "--state", "suspended"]);
    assert_eq!(column(&listed, "tenants", "name"), ["initech", "initrode"], "initech is suspended in Git");
    let restored = admin_ok(&server, &["tenants", "restore", "initrode"]);
    assert!(restored.contains("state:        active\n") && !restored.contains("suspended:"), "{restored}");
    let deleted = admin_ok(&server, &["tenants", "delete", "initrode"]);
    assert!(deleted.contains("state:        pending_deletion\n"), "{deleted}");
    assert!(deleted.contains("purged after: "), "{deleted}");

    let git = admin(&server, &["tenants", "suspend", "acme"]);
    assert_eq!(git.status.code(), Some(2));
    assert!(stderr(&git).contains("is declared in Git (tenants/acme.yaml); change it there"), "{}", stderr(&git));
    assert!(stdout(&git).is_empty(), "{}", stdout(&git));
}

/// Issue 12.6: an operator invites, re-roles, disables, enables, pages through and deletes users
/// with the CLI, and cannot demote a tenant's last active owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_invited_changed_paged_and_deleted_with_the_cli_and_the_last_owner_stays() {
    let (db, _repo, server) = admin_server().await;
    let owner = "bill+ops@initrode.example";
    let args = ["tenants", "create", "initrode", "--display-name", "Initrode", "--plan", "pro", "--owner", owner];
    admin_ok(&server, &args);
    let invited = admin_ok(&server, &["users", "invite", "initrode", "peter@initrode.example", "--role", "user"]);
    assert!(invited.contains("user:       peter@initrode.example\n"), "{invited}");
    assert!(invited.contains("status:     invited\n"), "{invited}");
    // Both accept their invitations (tested in admin.rs).
    activate(&db, &[owner, "peter@initrode.example"]).await;

    let admin_role = admin_ok(&server, &["users", "set-role", "initrode", "peter@initrode.example", "admin"]);
    assert!(admin_role.contains("role:       admin\n"), "{admin_role}");
    let disabled = admin_ok(&server, &["users", "disable", "initrode", "peter@initrode.example"]);
    assert!(disabled.contains("status:     disabled\n"), "{disabled}");
    let enabled = admin_ok(&server, &["users", "enable", "initrode", "peter@initrode.example"]);
    assert!(enabled.contains("status:     active\n"), "{enabled}");

    let demoted = admin(&server, &["users", "set-role", "initrode", owner, "admin"]);
    assert_eq!(demoted.status.code(), Some(2));
    assert!(stderr(&demoted).contains("is the last active owner of the tenant"), "{}", stderr(&demoted));
    let shown = admin_ok(&server, &["users", "show", "initrode", owner]);
    assert!(shown.contains(&format!("user:       {owner}\n")) && shown.contains("role:       owner\n"), "{shown}");

    let page = admin(&server, &["users", "list", "initrode", "--limit", "1"]);
    assert_eq!(row(&stdout(&page), owner)[1..], ["owner", "active", "no", "0", "api", "-"]);
    assert!(!stdout(&page).contains("peter@"), "{}", stdout(&page));
    assert!(stderr(&page).contains(&format!("more users after {owner}: --all")), "{}", stderr(&page));
    let all = admin_ok(&server, &["users", "list", "initrode", "--limit", "1", "--all"]);
    assert_eq!(row(&all, "peter@initrode.example")[1..], ["admin", "active", "no", "0", "api", "-"]);
    assert_eq!(row(&all, owner)[1], "owner");
    let all = admin_json(&server, &["users", "list", "initrode", "--limit", "1", "--all"]);
    assert_eq!(column(&all, "users", "email"), [owner, "peter@initrode.example"]);
    assert!(all["next"].is_null(), "{all}");

    let ended = admin_ok(&server, &["users", "end-sessions", "initrode", "peter@initrode.example"]);
    assert_eq!(ended, "ended 0 sessions of peter@initrode.example\n");
    let deleted = admin_ok(&server, &["users", "delete", "initrode", "peter@initrode.example"]);
    assert_eq!(deleted, "deleted peter@initrode.example from tenant initrode\n");
    let left = admin_json(&server, &["users", "list", "initrode"]);
    assert_eq!(left["users"].as_array().map(Vec::len), Some(1), "{left}");
}

/// Issue 22.9: `gatehouse … | head` closes the pipe early; the command then ends quietly with 0
/// instead of panicking with a backtrace.
#[test]
fn a_closed_output_pipe_ends_the_command_quietly() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["validate", "--format", "json", &example()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("gatehouse runs");
    // The reader goes away before the command writes anything.
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("it ends");
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stderr.is_empty(), "nothing on stderr: {}", String::from_utf8_lossy(&output.stderr));
}
