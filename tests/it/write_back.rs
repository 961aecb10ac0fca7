//! Issue 24: interactive changes of a Git-owned tenant written back to Git, against a bare remote
//! reached over `file://` and over a real git server (`git daemon` with receive-pack).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{InProcess, OPERATOR, PASSWORD, Repo, TestDb, activate, call, within};

/// The example repository with acme's file saying `sync` as given, committed and pushed to a bare
/// remote; served from that remote.
struct Setup {
    db: TestDb,
    repo: Repo,
    remote: tempfile::TempDir,
    _caches: Vec<tempfile::TempDir>,
    servers: Vec<InProcess>,
}

const SYNC_LINE: &str = "sync: { selfHeal: true, prune: true }";

impl Setup {
    async fn new(sync: &str, replicas: usize) -> Setup {
        let db = TestDb::new().await;
        let repo = Repo::example();
        repo.edit("tenants/acme.yaml", SYNC_LINE, sync);
        repo.commit_all("initial");
        let remote = tempfile::tempdir().expect("remote");
        let bare = remote.path().join("config.git");
        git2::Repository::init_bare(&bare).expect("bare");
        push_head(&repo, &bare.display().to_string());
        let url = format!("file://{}", bare.display());
        let mut setup = Setup { db, repo, remote, _caches: Vec::new(), servers: Vec::new() };
        for _ in 0..replicas {
            setup.serve(&url).await;
        }
        setup
    }

    async fn serve(&mut self, url: &str) {
        let cache = tempfile::tempdir().expect("cache");
        let cache_dir = cache.path().join("repo").display().to_string();
        let env = [("GATEHOUSE_CACHE_DIR", cache_dir.as_str()), ("GATEHOUSE_OWNERS_NEED_MFA", "false")];
        let server = InProcess::start(Path::new(url), &self.db.url, "600s", &env);
        server.ready().await;
        within(Duration::from_secs(30), "first sync", || async {
            call(&server, "GET", "/v1/sync/status", Some(OPERATOR), None).await.body["state"] == "Synced"
        })
        .await;
        if self.servers.is_empty() {
            activate(&self.db, &["alice@acme.example"]).await;
        }
        self._caches.push(cache);
        self.servers.push(server);
    }

    async fn owner(&self) -> String {
        let body = json!({ "email": "alice@acme.example", "password": PASSWORD });
        let signed = call(&self.servers[0], "POST", "/v1/auth/login", None, Some(body)).await;
        assert_eq!(signed.status, 200, "{}", signed.text);
        signed.body["access_token"].as_str().expect("token").to_owned()
    }

    /// The bare repository, `config.git` in a folder of its own (which a git server exports).
    fn bare(&self) -> PathBuf {
        self.remote.path().join("config.git")
    }

    fn remote(&self) -> git2::Repository {
        git2::Repository::open_bare(self.bare()).expect("remote")
    }

    /// The head commit of the remote's default branch.
    fn head(&self) -> String {
        self.remote().head().expect("head").peel_to_commit().expect("commit").id().to_string()
    }
}

fn push_head(repo: &Repo, url: &str) {
    let work = git2::Repository::open(repo.path()).expect("work repo");
    let head = work.head().expect("head").name().expect("branch").to_owned();
    let mut origin = work.remote_anonymous(url).expect("remote");
    origin.push(&[format!("+{head}:{head}")], None).expect("push");
}

/// `file` at `commit` in `repo`, and its diff against the commit's parent as `+`/`-` lines.
fn change_of(repo: &git2::Repository, commit: &str, file: &str) -> Vec<String> {
    let commit = repo.find_commit(git2::Oid::from_str(commit).expect("id")).expect("commit");
    let parent = commit.parent(0).expect("parent");
    let read = |c: &git2::Commit| {
        let entry = c.tree().expect("tree").get_path(Path::new(file)).expect("file");
        String::from_utf8(entry.to_object(repo).expect("blob").as_blob().expect("blob").content().to_vec())
            .expect("utf8")
    };
    let (before, after) = (read(&parent), read(&commit));
    let diff = similar::TextDiff::from_lines(&before, &after);
    diff.iter_all_changes()
        .filter(|c| c.tag() != similar::ChangeTag::Equal)
        .map(|c| format!("{}{}", if c.tag() == similar::ChangeTag::Insert { "+" } else { "-" }, c.value().trim_end()))
        .collect()
}

fn commit_header(response: &crate::helpers::HttpResponse) -> String {
    response.header("gatehouse-commit").unwrap_or_else(|| panic!("no Gatehouse-Commit: {}", response.text)).to_owned()
}

/// Issue 24 acceptance: the owner of a Git-declared tenant invites a user and changes the plan
/// through the API; both are commits by that owner (exactly the line a person would write), both
/// applied at once, and nothing is reverted by the next pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owners_invitation_and_plan_change_become_their_commits_and_are_applied() {
    let setup = Setup::new("sync: { selfHeal: true, prune: true, interactiveEdits: writeBack }", 1).await;
    let (server, owner) = (&setup.servers[0], setup.owner().await);
    let body = json!({ "email": "gina@acme.example", "role": "user" });
    let invited = call(server, "POST", "/v1/tenants/acme/users", Some(&owner), Some(body)).await;
    assert_eq!(invited.status, 201, "{}", invited.text);
    assert_eq!((invited.body["status"].as_str(), invited.body["managedBy"].as_str()), (Some("invited"), Some("git")));
    let commit = commit_header(&invited);
    assert_eq!(setup.head(), commit, "pushed to the tracked branch");
    let remote = setup.remote();
    assert_eq!(change_of(&remote, &commit, "tenants/acme.yaml"), ["+    - { email: gina@acme.example, role: user }"]);
    let found = remote.find_commit(git2::Oid::from_str(&commit).expect("id")).expect("commit");
    assert_eq!((found.author().name(), found.author().email()), (Some("Alice Archer"), Some("alice@acme.example")));
    assert_eq!(found.committer().name(), Some("Gatehouse"));
    let message = found.message().expect("message").to_owned();
    assert!(message.starts_with("Invite gina@acme.example to tenant acme as user\n"), "{message}");
    let audit_id = message.split("Gatehouse-Audit-Id: ").nth(1).expect("trailer").trim().to_owned();
    let row = setup.db.text(&format!("SELECT actor || ' ' || action || ' ' || (metadata->'writeBack'->>'commit') FROM audit_log WHERE id = '{audit_id}'")).await;
    assert_eq!(row, format!("alice@acme.example user.invite {commit}"));

    let changed = call(server, "PATCH", "/v1/tenants/acme", Some(&owner), Some(json!({ "plan": "pro" }))).await;
    assert_eq!((changed.status, changed.body["plan"].as_str()), (200, Some("pro")), "{}", changed.text);
    let plan_commit = commit_header(&changed);
    assert_eq!(change_of(&remote, &plan_commit, "tenants/acme.yaml"), ["-  plan: enterprise", "+  plan: pro"]);

    // Another pass changes nothing back: the rows are Git's, at the write-back commit.
    assert_eq!(call(server, "POST", "/v1/sync", Some(OPERATOR), None).await.status, 202);
    within(Duration::from_secs(20), "synced at the plan's commit", || async {
        let acme = call(server, "GET", "/v1/sync/tenants/acme", Some(OPERATOR), None).await.body;
        acme["state"] == "Synced" && acme["syncedCommit"] == plan_commit.as_str()
    })
    .await;
    let db = &setup.db;
    assert_eq!(
        db.text("SELECT p.name FROM tenants t JOIN plans p ON p.id = t.plan_id WHERE t.name = 'acme'").await,
        "pro"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM users WHERE email = 'gina@acme.example' AND managed_by = 'git'").await,
        1
    );
    let history = call(server, "GET", "/v1/sync/history", Some(OPERATOR), None).await;
    assert!(!history.text.contains("\"reverted\":1"), "nothing reverted: {}", history.text);
    assert!(history.text.contains("Alice Archer"), "the history names the commit's author: {}", history.text);
}

/// Issue 24.4: a field Git changed since the caller read it is a 409 naming the commit; nothing is
/// pushed and nothing live changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_changed_in_git_since_it_was_read_is_a_conflict_naming_the_commit() {
    let setup = Setup::new("sync: { selfHeal: true, prune: true, interactiveEdits: writeBack }", 1).await;
    let owner = setup.owner().await;
    setup.repo.edit(
        "tenants/acme.yaml",
        "{ email: dan@acme.example, role: user }",
        "{ email: dan@acme.example, role: admin }",
    );
    let theirs = setup.repo.commit_all("dan becomes admin");
    push_head(&setup.repo, &setup.bare().display().to_string());
    let asked = json!({ "role": "owner" });
    let refused =
        call(&setup.servers[0], "PATCH", "/v1/tenants/acme/users/dan@acme.example", Some(&owner), Some(asked)).await;
    assert_eq!(
        (refused.status, refused.body["error"]["code"].as_str()),
        (409, Some("git_conflict")),
        "{}",
        refused.text
    );
    assert!(refused.text.contains(&theirs[..7]), "names the commit: {}", refused.text);
    assert!(refused.text.contains("is admin in Git now, not user"), "{}", refused.text);
    assert_eq!(setup.head(), theirs, "nothing pushed");
    assert_eq!(setup.db.text("SELECT role FROM users WHERE email = 'dan@acme.example'").await, "user");
    let failed = "SELECT count(*) FROM audit_log WHERE action = 'user.update' AND outcome = 'failure' AND metadata->'writeBack' ? 'error'";
    assert_eq!(setup.db.count(failed).await, 1, "the refusal is audited");
}

/// Issue 24.4: two replicas writing back to the same file at once both land; neither is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_writing_back_to_one_file_at_once_both_land() {
    let setup = Setup::new("sync: { selfHeal: true, prune: true, interactiveEdits: writeBack }", 2).await;
    let owner = setup.owner().await;
    let invite = |i: usize| {
        let (server, owner) = (&setup.servers[i], owner.clone());
        async move {
            let body = json!({ "email": format!("new{i}@acme.example"), "role": "user" });
            call(server, "POST", "/v1/tenants/acme/users", Some(&owner), Some(body)).await
        }
    };
    let (a, b) = tokio::join!(invite(0), invite(1));
    for response in [&a, &b] {
        assert!(matches!(response.status, 201 | 202), "{}", response.text);
    }
    let remote = setup.remote();
    let head = remote.head().expect("head").peel_to_commit().expect("commit");
    let file = head.tree().expect("tree").get_path(Path::new("tenants/acme.yaml")).expect("file");
    let text = String::from_utf8(file.to_object(&remote).expect("blob").as_blob().expect("blob").content().to_vec())
        .expect("utf8");
    for i in 0..2 {
        assert_eq!(text.matches(&format!("new{i}@acme.example")).count(), 1, "{text}");
    }
    assert_eq!(head.parent(0).expect("parent").parent_count(), 1, "two commits in a row, no merge");
}

/// A git server on loopback: `git daemon` serving `base` with pushes enabled.
struct GitDaemon {
    child: std::process::Child,
    port: u16,
}

impl GitDaemon {
    fn start(base: &Path) -> GitDaemon {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let mut child = std::process::Command::new("git")
            .args(["daemon", "--reuseaddr", "--export-all", "--enable=receive-pack", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .spawn()
            .expect("git daemon");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return GitDaemon { child, port };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("git daemon did not listen on {port}");
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Issue 24.6: over a real git server, a push refused by a `pre-receive` hook (a protected branch)
/// answers 502 `write_back_failed` with the server's message, changes nothing live, and is audited;
/// without the hook the same server takes the push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_the_git_server_refuses_answers_502_with_its_message_and_changes_nothing() {
    let mut setup = Setup::new("sync: { selfHeal: true, prune: true, interactiveEdits: writeBack }", 0).await;
    let daemon = GitDaemon::start(setup.remote.path());
    setup.serve(&format!("git://127.0.0.1:{}/config.git", daemon.port)).await;
    let owner = setup.owner().await;
    let server = &setup.servers[0];

    let hook: PathBuf = setup.bare().join("hooks/pre-receive");
    std::fs::create_dir_all(hook.parent().expect("hooks")).expect("hooks dir");
    std::fs::write(&hook, "#!/bin/sh\necho 'main is protected: open a pull request' >&2\nexit 1\n").expect("hook");
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let before = setup.head();
    let body = json!({ "email": "gina@acme.example", "role": "user" });
    let refused = call(server, "POST", "/v1/tenants/acme/users", Some(&owner), Some(body.clone())).await;
    assert_eq!(
        (refused.status, refused.body["error"]["code"].as_str()),
        (502, Some("write_back_failed")),
        "{}",
        refused.text
    );
    assert!(refused.text.contains("main is protected"), "the server's message: {}", refused.text);
    assert_eq!(setup.head(), before);
    assert_eq!(setup.db.count("SELECT count(*) FROM users WHERE email = 'gina@acme.example'").await, 0);
    let audited = "SELECT count(*) FROM audit_log WHERE action = 'user.invite' AND outcome = 'failure'";
    assert_eq!(setup.db.count(audited).await, 1);

    std::fs::remove_file(&hook).expect("unhook");
    let invited = call(server, "POST", "/v1/tenants/acme/users", Some(&owner), Some(body)).await;
    assert_eq!(invited.status, 201, "{}", invited.text);
    assert_eq!(setup.head(), commit_header(&invited));
}

/// Issue 24.3: in review mode the change is a commit on a branch of its own and a proposal; it is
/// applied once a person merges it with git; another proposal withdrawn deletes its branch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_review_mode_a_change_waits_on_a_branch_until_merged() {
    let setup =
        Setup::new("sync: { selfHeal: true, prune: true, interactiveEdits: writeBack, writeBack: review }", 1).await;
    let (server, owner) = (&setup.servers[0], setup.owner().await);
    let before = setup.head();
    let body = json!({ "email": "gina@acme.example", "role": "user" });
    let proposed = call(server, "POST", "/v1/tenants/acme/users", Some(&owner), Some(body)).await;
    assert_eq!(proposed.status, 202, "{}", proposed.text);
    let proposal = &proposed.body["proposal"];
    let branch = proposal["branch"].as_str().expect("branch").to_owned();
    assert!(branch.starts_with("gatehouse/acme/"), "{branch}");
    assert_eq!(
        (proposal["state"].as_str(), proposal["proposedBy"].as_str()),
        (Some("open"), Some("alice@acme.example"))
    );
    assert!(
        proposal["diff"].as_str().expect("diff").contains("+    - { email: gina@acme.example, role: user }"),
        "{proposal}"
    );
    assert_eq!(setup.head(), before, "the tracked branch is untouched");
    assert_eq!(setup.db.count("SELECT count(*) FROM users WHERE email = 'gina@acme.example'").await, 0);
    let listed = call(server, "GET", "/v1/tenants/acme/proposals", Some(&owner), None).await;
    assert_eq!(listed.body["proposals"][0]["state"], "open", "{}", listed.text);

    // A second proposal, withdrawn: its branch goes.
    let plan = call(server, "PATCH", "/v1/tenants/acme", Some(&owner), Some(json!({ "plan": "pro" }))).await;
    assert_eq!(plan.status, 202, "{}", plan.text);
    let second = plan.body["proposal"]["id"].as_str().expect("id").to_owned();
    let second_branch = plan.body["proposal"]["branch"].as_str().expect("branch").to_owned();
    let withdrawn = call(server, "DELETE", &format!("/v1/tenants/acme/proposals/{second}"), Some(&owner), None).await;
    assert_eq!((withdrawn.status, withdrawn.body["state"].as_str()), (200, Some("withdrawn")), "{}", withdrawn.text);
    assert!(setup.remote().find_reference(&format!("refs/heads/{second_branch}")).is_err(), "branch deleted");

    // A person merges the first branch with git: it is applied by the normal reconcile.
    let remote = setup.remote();
    let tip = remote.find_reference(&format!("refs/heads/{branch}")).expect("branch").target().expect("tip");
    let main = remote.head().expect("head").name().expect("name").to_owned();
    remote.reference(&main, tip, true, "merge (fast-forward)").expect("merge");
    assert_eq!(call(server, "POST", "/v1/sync", Some(OPERATOR), None).await.status, 202);
    within(Duration::from_secs(20), "the merged user applied", || async {
        setup.db.count("SELECT count(*) FROM users WHERE email = 'gina@acme.example'").await == 1
    })
    .await;
    let listed = call(server, "GET", "/v1/tenants/acme/proposals", Some(&owner), None).await;
    let states: Vec<&str> = listed.body["proposals"]
        .as_array()
        .expect("list")
        .iter()
        .map(|p| p["state"].as_str().expect("state"))
        .collect();
    assert_eq!(states, ["withdrawn", "merged"], "{}", listed.text);
    let _: Value = listed.body;
}

/// Issue 24.6: a config folder that is not a git repository cannot take commits: a clear refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_that_is_not_a_git_repository_refuses_write_back_clearly() {
    let db = TestDb::new().await;
    let repo = Repo::example();
    repo.edit("tenants/acme.yaml", SYNC_LINE, "sync: { selfHeal: true, prune: true, interactiveEdits: writeBack }");
    let server = InProcess::start(repo.path(), &db.url, "600s", &[]);
    server.ready().await;
    within(Duration::from_secs(30), "first sync", || async {
        call(&server, "GET", "/v1/sync/status", Some(OPERATOR), None).await.body["state"] == "Synced"
    })
    .await;
    let refused = call(&server, "PATCH", "/v1/tenants/acme", Some(OPERATOR), Some(json!({ "plan": "pro" }))).await;
    assert_eq!(
        (refused.status, refused.body["error"]["code"].as_str()),
        (409, Some("write_back_unavailable")),
        "{}",
        refused.text
    );
    assert!(refused.text.contains("is not in a git repository"), "{}", refused.text);
}

/// Issue 24 with the API's rules kept: an address another tenant has is refused before anything is
/// committed (as the API refuses it), and removing a user from a tenant that does not prune is
/// refused rather than left live as an orphan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn written_back_changes_keep_the_apis_rules() {
    let setup = Setup::new("sync: { selfHeal: true, prune: false, interactiveEdits: writeBack }", 1).await;
    let (server, owner) = (&setup.servers[0], setup.owner().await);
    let before = setup.head();
    let taken = setup
        .db
        .text("SELECT email FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE t.name = 'globex' LIMIT 1")
        .await;
    let body = json!({ "email": taken, "role": "user" });
    let refused = call(server, "POST", "/v1/tenants/acme/users", Some(&owner), Some(body)).await;
    assert_eq!(
        (refused.status, refused.body["error"]["code"].as_str()),
        (409, Some("email_unavailable")),
        "{}",
        refused.text
    );
    assert!(!refused.text.contains("tenant `globex`"), "names no other tenant: {}", refused.text);
    let removed = call(server, "DELETE", "/v1/tenants/acme/users/dan@acme.example", Some(&owner), None).await;
    assert_eq!(
        (removed.status, removed.body["error"]["code"].as_str()),
        (409, Some("managed_by_git")),
        "{}",
        removed.text
    );
    assert!(removed.text.contains("prune: false"), "{}", removed.text);
    assert_eq!(setup.head(), before, "nothing committed");
}
