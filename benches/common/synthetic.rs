//! The synthetic config repository both benchmarks use: `tenants` tenant files of 10 users and 5 flag
//! overrides each, three plans, committed to a git repository.

#![allow(dead_code)] // each benchmark uses its own part

use std::fmt::Write as _;
use std::path::Path;

pub const USERS_PER_TENANT: usize = 10;
pub const FLAGS_PER_TENANT: usize = 5;
pub const ROLES: [&str; 3] = ["owner", "admin", "user"];

/// Plan flag defaults: every type a flag can have.
pub const PLAN_FLAGS: [(&str, &str); 8] = [
    ("ai_enabled", "false"),
    ("max_projects", "10"),
    ("storage_gb", "2.5"),
    ("tier", "standard"),
    ("dashboard", "{ theme: light }"),
    ("beta", "false"),
    ("seats", "5"),
    ("region", "eu"),
];

/// A tenant's override of plan flag number `flag`, as JSON (which is also YAML), for the repo and
/// the COPY baseline alike.
pub fn override_value(tenant: usize, flag: usize) -> String {
    let value = match flag {
        0 => serde_json::json!(tenant.is_multiple_of(2)),
        1 => serde_json::json!(10 + tenant % 90),
        2 => serde_json::json!((tenant % 100) as f64 + 0.5),
        3 => serde_json::json!(format!("tier-{}", tenant % 7)),
        _ => serde_json::json!({ "theme": "dark", "size": tenant % 3 }),
    };
    value.to_string()
}

pub fn tenant_yaml(t: usize, owner_role_of_user_1: &str) -> String {
    let mut y = format!(
        "apiVersion: gatehouse.dev/v1\nkind: Tenant\nmetadata:\n  name: t{t:05}\nspec:\n  displayName: Tenant {t}\n  plan: {}\n  users:\n",
        ["free", "pro", "enterprise"][t % 3]
    );
    for u in 0..USERS_PER_TENANT {
        let role = if u == 0 {
            "owner"
        } else if u == 1 {
            owner_role_of_user_1
        } else {
            ROLES[u % 3]
        };
        let _ = writeln!(y, "    - {{ email: user{u}@t{t:05}.example, role: {role} }}");
    }
    y.push_str("  flags:\n");
    for (f, (key, _)) in PLAN_FLAGS.iter().enumerate().take(FLAGS_PER_TENANT) {
        let _ = writeln!(y, "    {key}: {}", override_value(t, f));
    }
    y
}

pub fn generate(dir: &Path, tenants: usize) {
    std::fs::create_dir_all(dir.join("tenants")).expect("mkdir");
    for plan in ["free", "pro", "enterprise"] {
        let mut y =
            format!("apiVersion: gatehouse.dev/v1\nkind: Plan\nmetadata: {{ name: {plan} }}\nspec:\n  flags:\n");
        for (key, value) in PLAN_FLAGS {
            let _ = writeln!(y, "    {key}: {value}");
        }
        std::fs::write(dir.join(format!("plan-{plan}.yaml")), y).expect("write plan");
    }
    for t in 0..tenants {
        std::fs::write(dir.join(format!("tenants/t{t:05}.yaml")), tenant_yaml(t, "admin")).expect("write tenant");
    }
    let repo = git2::Repository::init(dir).expect("git init");
    let _ = commit(&repo, "synthetic config");
}

/// Commits everything in the work tree; returns the commit id.
pub fn commit(repo: &git2::Repository, message: &str) -> String {
    let mut index = repo.index().expect("index");
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None).expect("add");
    index.write().expect("index write");
    let tree = repo.find_tree(index.write_tree().expect("tree")).expect("tree");
    let signature = git2::Signature::now("bench", "bench@gatehouse.invalid").expect("signature");
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(Some("HEAD"), &signature, &signature, message, &tree, &parents).expect("commit").to_string()
}

/// Declares the application `bench-app` (with `flags:read`) and opens every tenant to it.
pub fn open_to_application(dir: &Path, tenants: usize) {
    open_to_application_with(dir, tenants, &["flags:read"]);
}

/// Declares the application `bench-app` allowed `scopes` and opens every tenant to it.
pub fn open_to_application_with(dir: &Path, tenants: usize, scopes: &[&str]) {
    std::fs::write(
        dir.join("application-bench.yaml"),
        format!(
            "apiVersion: gatehouse.dev/v1\nkind: Application\nmetadata: {{ name: bench-app }}\nspec:\n  displayName: Bench\n  owner: bench@corp.example\n  status: active\n  scopes: [{}]\n",
            scopes.join(", ")
        ),
    )
    .expect("write application");
    for t in 0..tenants {
        let path = dir.join(format!("tenants/t{t:05}.yaml"));
        let yaml = std::fs::read_to_string(&path).expect("read tenant");
        let opened = yaml.replacen("\n  users:\n", "\n  applications: [bench-app]\n  users:\n", 1);
        std::fs::write(&path, opened).expect("write tenant");
    }
}
