//! Where a live resource is declared, for the people who change it in Git: the line of a tenant's
//! document, of one of its fields, or of one of its users' entries. Read on demand from the file
//! the reconciler applied (its `source_file`, under the config folder), so applying a repository
//! never pays for positions.

use std::path::Path;

use super::position::{NodeKind, PositionIndex};

/// What of a tenant's document to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared<'a> {
    /// The tenant itself: its `metadata.name`.
    Tenant,
    /// A field of its spec, such as `plan`, `sso` or `flags.max_projects`.
    Field(&'a str),
    /// The entry of the user with this email in `spec.users`.
    User(&'a str),
}

/// The 1-based line of `what` in the `Tenant` document named `tenant` of `text`.
pub fn line_in(text: &str, tenant: &str, what: Declared<'_>) -> Option<usize> {
    let index = PositionIndex::build(text);
    let document = index.document_of("Tenant", tenant)?;
    let path = match what {
        Declared::Tenant => "metadata.name".to_owned(),
        Declared::Field(field) => format!("spec.{field}"),
        Declared::User(email) => (0..)
            .map(|i| format!("spec.users[{i}]"))
            .take_while(|entry| index.node(document, entry).is_some())
            .find(|entry| {
                let written = index.node(document, &format!("{entry}.email")).map(|node| &node.kind);
                matches!(written, Some(NodeKind::Scalar { value, .. }) if value.eq_ignore_ascii_case(email))
            })?,
    };
    // A field is where its key is (a list's items start below it); one that is not written has no
    // line (its ancestors' would mislead).
    let written = index.node(document, &path)?;
    Some(index.key(document, &path).map_or(written.start.line, |key| key.line))
}

/// `file` (relative to the config folder `dir`) and the line of `what` in it, as `file:line`; the
/// file alone when the line cannot be found.
pub fn file_and_line(dir: Option<&Path>, file: &str, tenant: &str, what: Declared<'_>) -> String {
    let inside = !file.split('/').any(|part| part == ".." || part.is_empty());
    let line = dir
        .filter(|_| inside)
        .and_then(|dir| std::fs::read_to_string(dir.join(file)).ok())
        .and_then(|text| line_in(&text, tenant, what));
    match line {
        Some(line) => format!("{file}:{line}"),
        None => file.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACME: &str = "# acme
apiVersion: gatehouse.dev/v1
kind: Tenant
metadata:
  name: acme
spec:
  plan: enterprise
  flags:
    max_projects: 1000
  users:
    - { email: alice@acme.example, role: owner }
    - email: bob@acme.example
      role: admin
";

    #[test]
    fn the_tenant_its_fields_and_its_users_are_found_by_line() {
        assert_eq!(line_in(ACME, "acme", Declared::Tenant), Some(5));
        assert_eq!(line_in(ACME, "acme", Declared::Field("plan")), Some(7));
        assert_eq!(line_in(ACME, "acme", Declared::Field("flags.max_projects")), Some(9));
        assert_eq!(line_in(ACME, "acme", Declared::Field("users")), Some(10), "the key, not the first item");
        assert_eq!(line_in(ACME, "acme", Declared::User("alice@acme.example")), Some(11));
        assert_eq!(line_in(ACME, "acme", Declared::User("BOB@acme.example")), Some(12));
    }

    #[test]
    fn what_is_not_written_has_no_line() {
        assert_eq!(line_in(ACME, "acme", Declared::Field("sso")), None, "not its ancestor's line");
        assert_eq!(line_in(ACME, "acme", Declared::User("carol@acme.example")), None);
        assert_eq!(line_in(ACME, "globex", Declared::Tenant), None);
        assert_eq!(line_in("not: [yaml", "acme", Declared::Tenant), None);
    }

    #[test]
    fn a_file_outside_the_config_folder_is_not_read() {
        // A real tenant file one folder above the config folder: found from inside, never from `..`.
        let root = std::env::temp_dir().join(format!("declared-{}", std::process::id()));
        let config = root.join("config");
        std::fs::create_dir_all(&config).expect("a folder");
        std::fs::write(root.join("acme.yaml"), ACME).expect("a file");
        std::fs::write(config.join("acme.yaml"), ACME).expect("a file");
        assert_eq!(file_and_line(Some(&config), "acme.yaml", "acme", Declared::Tenant), "acme.yaml:5");
        assert_eq!(file_and_line(Some(&config), "../acme.yaml", "acme", Declared::Tenant), "../acme.yaml");
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(file_and_line(None, "tenants/acme.yaml", "acme", Declared::Tenant), "tenants/acme.yaml");
    }
}
