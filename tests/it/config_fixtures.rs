//! Every semantic and structural rule has an invalid fixture repo under `tests/fixtures/invalid/`;
//! each must produce exactly the diagnostics in its `expected.txt`.

use gatehouse::config::{self, DiagnosticFormat};

use crate::helpers::project_dir;

fn fixtures() -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(project_dir().join("tests/fixtures/invalid"))
        .expect("fixtures dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_invalid_fixture_reports_exactly_its_expected_problems() {
    let dirs = fixtures();
    assert!(dirs.len() >= 17, "fixtures missing: {dirs:?}");
    for dir in dirs {
        let validated = config::load_repo(&dir).expect("readable");
        assert!(!validated.is_valid(), "{} should be invalid", dir.display());
        let text = config::diagnostic::render(&validated.diagnostics(), validated.files_read, DiagnosticFormat::Text);
        let expected = std::fs::read_to_string(dir.join("expected.txt")).expect("expected.txt");
        assert_eq!(text, expected, "diagnostics of {}", dir.display());
    }
}

#[test]
fn the_example_repo_is_valid_and_realistic() {
    let validated = config::load_repo(&project_dir().join("example-config-repo")).expect("readable");
    assert_eq!(validated.diagnostics(), vec![]);
    let desired = &validated.desired;
    assert!(desired.plans.len() >= 3);
    assert!(desired.applications.len() >= 2);
    assert!(desired.tenants.len() >= 6);
    let users: Vec<_> = desired.tenants.iter().flat_map(|t| &t.users).collect();
    assert!(users.len() >= 30);
    use gatehouse::model::{FlagType, Role, TenantStatus, UserStatus};
    for role in Role::ALL {
        assert!(users.iter().any(|u| u.role == *role), "no user with role {role}");
    }
    assert!(users.iter().any(|u| u.status == UserStatus::Disabled));
    assert!(desired.tenants.iter().any(|t| t.status == TenantStatus::Suspended));
    assert!(desired.tenants.iter().any(|t| !t.sync.self_heal));
    assert!(desired.tenants.iter().any(|t| !t.sync.prune));
    let overrides: Vec<FlagType> =
        desired.tenants.iter().flat_map(|t| t.flags.values().map(|v| v.flag_type())).collect();
    for flag_type in [FlagType::Boolean, FlagType::Integer, FlagType::Number, FlagType::String, FlagType::Object] {
        assert!(overrides.contains(&flag_type), "no tenant overrides a {flag_type} flag");
    }
}

#[test]
fn problems_in_many_files_are_all_reported_in_one_run() {
    let repo = crate::helpers::Repo::example();
    repo.edit("tenants/stark.yaml", "displayName: Stark Industries", "displayName: \"Stark Industries");
    repo.edit("tenants/globex.yaml", "plan: pro", "plan: pro\n  colour: blue");
    repo.edit("tenants/hooli.yaml", "plan: pro", "plan: platinum");
    repo.edit("tenants/umbrella.yaml", "ada@umbrella.example", "alice@acme.example");
    repo.edit("tenants/acme.yaml", "role: owner }", "role: admin }");
    repo.edit("tenants/acme.yaml", "role: owner }", "role: admin }");
    let diagnostics = repo.validated().diagnostics();
    let found: Vec<String> = diagnostics.iter().map(|d| format!("{}:{}:{}", d.file, d.line, d.column)).collect();
    assert_eq!(
        found,
        [
            "tenants/acme.yaml:16:3",
            "tenants/globex.yaml:9:3",
            "tenants/hooli.yaml:9:9",
            "tenants/stark.yaml:7:16",
            "tenants/umbrella.yaml:14:16"
        ],
        "{diagnostics:#?}"
    );
    assert!(diagnostics[0].message.contains("no active owner"));
    assert!(diagnostics[1].message.contains("unknown field `colour`"));
    assert!(diagnostics[2].message.contains("plan `platinum` is not declared"));
    assert!(diagnostics[3].message.contains("quoted scalar"));
    assert!(diagnostics[4].message.contains("already a user of tenant `acme`"));
}

#[test]
fn hidden_files_and_folders_are_not_config() {
    let repo = crate::helpers::Repo::example();
    repo.write(".github/workflows/ci.yaml", "on: push\njobs: {}\n");
    repo.write(".gitlab-ci.yml", "stages: [test]\n");
    let validated = repo.validated();
    assert!(validated.is_valid(), "{:?}", validated.diagnostics());
}

#[test]
fn a_reconciler_parses_only_the_files_that_changed_since_its_last_pass() {
    use gatehouse::config::ParseCache;
    use gatehouse::config::load::{find_files, read_and_parse};
    let repo = crate::helpers::Repo::example();
    let mut cache = ParseCache::default();
    let document = |loaded: &gatehouse::config::load::Loaded, name: &str| {
        loaded.documents.iter().find(|d| d.document.name() == name).map(|d| d.document.clone()).expect(name)
    };
    let first = read_and_parse(repo.path(), find_files(repo.path()).expect("files"), &mut cache).expect("read");
    repo.edit("tenants/stark.yaml", "role: admin", "role: user");
    let second = read_and_parse(repo.path(), find_files(repo.path()).expect("files"), &mut cache).expect("read");
    assert!(
        std::sync::Arc::ptr_eq(&document(&first, "acme"), &document(&second, "acme")),
        "unchanged file parsed again"
    );
    assert!(
        !std::sync::Arc::ptr_eq(&document(&first, "stark"), &document(&second, "stark")),
        "changed file not parsed again"
    );

    repo.remove("tenants/globex.yaml");
    let third = read_and_parse(repo.path(), find_files(repo.path()).expect("files"), &mut cache).expect("read");
    assert!(third.documents.iter().all(|d| d.document.name() != "globex"), "a removed file is gone from the cache");
}

/// Issue 15.1 (acceptance): a copy of the example repo broken five ways, two of them in one tenant
/// document (an unknown field and a duplicate email of one of its users), plus a plan with a bad flag
/// type: one `validate` run names every problem with file:line:col, and the tenants on the broken
/// plan are reported with their own problems too.
#[test]
fn one_validate_run_names_every_problem_of_a_repo_broken_in_many_ways() {
    let repo = crate::helpers::Repo::example();
    repo.edit("tenants/globex.yaml", "plan: pro", "plan: pro\n  colour: blue");
    repo.edit("tenants/globex.yaml", "kim@globex.example", "ivy@globex.example");
    repo.edit(
        "tenants/stark.yaml",
        "{ email: happy@stark.example, role: user }",
        "{ email: happy@stark.example, role: boss }",
    );
    repo.edit("tenants/umbrella.yaml", "ada@umbrella.example", "ada-at-umbrella.example");
    repo.edit("tenants/initech.yaml", "plan: free", "plan: platinum");
    repo.edit("plans/pro.yaml", "max_projects: 10", "max_projects: ten");
    repo.edit("tenants/hooli.yaml", "max_projects: 40", "max_projects: 40\n    no_such_flag: true");

    let output = crate::helpers::gatehouse(&["validate", &repo.path().display().to_string()], &[]);
    assert_eq!(output.status.code(), Some(1));
    let text = crate::helpers::stdout(&output);
    let found: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|line| {
            let (at, rest) = line.split_once(": ")?;
            Some((at, rest))
        })
        .filter(|(at, _)| at.contains(".yaml:"))
        .collect();
    let expected = [
        (
            "plans/pro.yaml:12:19",
            "spec.flags.max_projects: flag `max_projects` is string here but integer in plan `enterprise`",
        ),
        ("tenants/globex.yaml:8:9", "spec.plan: plan `pro` has problems (see plans/pro.yaml); fix them first"),
        ("tenants/globex.yaml:9:3", "spec: unknown field `colour`"),
        ("tenants/globex.yaml:15:16", "spec.users[3].email: ivy@globex.example is already a user of this tenant"),
        ("tenants/hooli.yaml:9:9", "spec.plan: plan `pro` has problems (see plans/pro.yaml); fix them first"),
        ("tenants/hooli.yaml:21:19", "spec.flags.no_such_flag: flag `no_such_flag` is not declared by plan `pro`"),
        ("tenants/initech.yaml:9:9", "spec.plan: plan `platinum` is not declared"),
        ("tenants/stark.yaml:12:43", "spec.users[2].role: unknown variant `boss`"),
        ("tenants/umbrella.yaml:14:16", "spec.users[1].email: `ada-at-umbrella.example` is not a valid email address"),
    ];
    assert_eq!(found.len(), expected.len(), "{text}");
    for ((at, message), (want_at, want_message)) in found.iter().zip(expected) {
        assert_eq!(*at, want_at, "{text}");
        assert!(message.starts_with(want_message), "{at}: {message}\nshould start with {want_message}");
    }
    assert!(text.ends_with("invalid: 9 problems in 11 files\n"), "{text}");
}
