//! The semantic change a write-back makes to a config file (issue 24.4): a field of a tenant or of
//! one of its users set, a user added or removed. It is made through `config::rewrite`, so only the
//! changed values change and comments, order, quoting and flow style stay; and it is redone on the
//! file as it is now, so a commit made in Git since the caller read the value is a conflict rather
//! than overwritten.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::position::PositionIndex;
use crate::config::rewrite::{self, ByHand};
use crate::plan::adopt::user_path;

/// One change of one tenant's document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Edit {
    /// A field of the tenant (`spec.plan`, `spec.displayName`, `spec.flags.beta`): Git must still
    /// say `expected` (null: not written); `value` null removes it.
    #[serde(rename_all = "camelCase")]
    Tenant { tenant: String, path: String, expected: Value, value: Value },
    /// A field of one of its users (`role`, `name`, `status`).
    #[serde(rename_all = "camelCase")]
    User { tenant: String, email: String, field: String, expected: Value, value: Value },
    /// A new item of `spec.users`, in its siblings' style.
    #[serde(rename_all = "camelCase")]
    AddUser { tenant: String, item: Vec<(String, Value)> },
    /// A user's item removed from `spec.users`.
    #[serde(rename_all = "camelCase")]
    RemoveUser { tenant: String, email: String },
}

/// Why an edit cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Git changed what the caller read (or declares what they add): `409 git_conflict`.
    Conflict(String),
    /// The file is written in a way that cannot be edited in place; the message says what to do.
    ByHand(String),
}

impl From<ByHand> for Refusal {
    fn from(e: ByHand) -> Self {
        Refusal::ByHand(e.0)
    }
}

impl Edit {
    pub fn tenant(&self) -> &str {
        match self {
            Edit::Tenant { tenant, .. }
            | Edit::User { tenant, .. }
            | Edit::AddUser { tenant, .. }
            | Edit::RemoveUser { tenant, .. } => tenant,
        }
    }

    /// A commit's subject line: what changes, in the words of the file.
    pub fn summary(&self) -> String {
        match self {
            Edit::Tenant { tenant, path, value, .. } => {
                let field = path.strip_prefix("spec.").unwrap_or(path);
                match value {
                    Value::Null => format!("Remove {field} of tenant {tenant}"),
                    value => format!("Set {field} of tenant {tenant} to {}", shown(value)),
                }
            }
            Edit::User { tenant, email, field, value, .. } => match (field.as_str(), value) {
                ("status", Value::Null) => format!("Enable {email} in tenant {tenant}"),
                ("status", _) => format!("Disable {email} in tenant {tenant}"),
                (field, Value::Null) => format!("Remove the {field} of {email} in tenant {tenant}"),
                (field, value) => format!("Set the {field} of {email} in tenant {tenant} to {}", shown(value)),
            },
            Edit::AddUser { tenant, item } => {
                let get = |key: &str| item.iter().find(|(k, _)| k == key).map(|(_, v)| shown(v)).unwrap_or_default();
                format!("Invite {} to tenant {tenant} as {}", get("email"), get("role"))
            }
            Edit::RemoveUser { tenant, email } => format!("Remove {email} from tenant {tenant}"),
        }
    }

    /// Whether `text` already says what the edit asks for (a proposal merged another way).
    pub fn holds(&self, text: &str) -> bool {
        match (self.apply(text), self) {
            (Ok(edited), _) => edited == text,
            (Err(_), Edit::AddUser { item, tenant }) => {
                let index = PositionIndex::build(text);
                let email = item.iter().find(|(k, _)| k == "email").and_then(|(_, v)| v.as_str()).unwrap_or_default();
                index.document_of("Tenant", tenant).is_some_and(|doc| user_path(&index, doc, email).is_some())
            }
            (Err(_), _) => false,
        }
    }

    /// `text` (a file declaring the tenant) with the edit made; unchanged when the file already says
    /// what the edit asks for.
    pub fn apply(&self, text: &str) -> Result<String, Refusal> {
        let index = PositionIndex::build(text);
        let tenant = self.tenant();
        let document = index
            .document_of("Tenant", tenant)
            .ok_or_else(|| Refusal::Conflict(format!("the file no longer declares tenant `{tenant}`")))?;
        match self {
            Edit::Tenant { path, expected, value, .. } => {
                // A tenant that lists no applications has none.
                let default = if path == "spec.applications" { Value::Array(Vec::new()) } else { Value::Null };
                set(text, document, path, expected, value, &default)
            }
            Edit::User { email, field, expected, value, .. } => {
                let user = user_path(&index, document, email).ok_or_else(|| {
                    Refusal::Conflict(format!("user {email} is no longer declared in tenant `{tenant}`"))
                })?;
                // A status not written is `active`.
                let default = if field == "status" { Value::from("active") } else { Value::Null };
                set(text, document, &format!("{user}.{field}"), expected, value, &default)
            }
            Edit::AddUser { item, .. } => {
                let email = item.iter().find(|(k, _)| k == "email").and_then(|(_, v)| v.as_str()).unwrap_or_default();
                if let Some(path) = user_path(&index, document, email) {
                    let line = index.locate(document, &path).map_or(0, |p| p.line);
                    return Err(Refusal::Conflict(format!("user {email} is already declared, on line {line}")));
                }
                Ok(rewrite::add_item(text, document, "spec.users", item)?)
            }
            Edit::RemoveUser { email, .. } => match user_path(&index, document, email) {
                None => Ok(text.to_owned()),
                Some(path) => {
                    let item = path.trim_start_matches("spec.users[").trim_end_matches(']').parse().unwrap_or(0);
                    Ok(rewrite::remove_item(text, document, "spec.users", item)?)
                }
            },
        }
    }
}

/// Sets `path` from `expected` to `value` (either null: not written; `default`: what not writing it
/// means), refusing when the file says neither.
fn set(
    text: &str,
    document: usize,
    path: &str,
    expected: &Value,
    value: &Value,
    default: &Value,
) -> Result<String, Refusal> {
    let or_default = |v: &Value| if v.is_null() { default.clone() } else { v.clone() };
    let written = rewrite::value_at(text, document, path).unwrap_or(Value::Null);
    if same(&or_default(&written), &or_default(value)) {
        return Ok(text.to_owned());
    }
    if !same(&or_default(&written), &or_default(expected)) {
        let line = PositionIndex::build(text).locate(document, path).map_or(0, |p| p.line);
        return Err(Refusal::Conflict(format!(
            "`{path}` (line {line}) is {} in Git now, not {} as it was read",
            shown(&or_default(&written)),
            shown(&or_default(expected))
        )));
    }
    Ok(rewrite::set(text, document, path, &written, value)?)
}

/// Whether two values say the same: numbers by value (YAML's `3` is the API's `3.0`), lists as
/// sets (the database keeps a tenant's applications sorted, the file in its author's order).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len()
                && x.iter().all(|v| y.iter().any(|w| same(v, w)))
                && y.iter().all(|w| x.iter().any(|v| same(v, w)))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "not set".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ACME: &str = "\
# The Acme tenant.
apiVersion: gatehouse.dev/v1
kind: Tenant
metadata:
  name: acme
spec:
  displayName: \"Acme Corp\"   # shown in consoles
  plan: starter
  flags: { beta: false }
  users:
    - email: alice@acme.example
      name: Alice
      role: owner
    - email: bob@acme.example
      role: user
      status: disabled   # left in March
";

    fn tenant(path: &str, expected: Value, value: Value) -> Edit {
        Edit::Tenant { tenant: "acme".into(), path: path.into(), expected, value }
    }

    fn diff(before: &str, after: &str) -> Vec<String> {
        let (b, a): (Vec<_>, Vec<_>) = (before.lines().collect(), after.lines().collect());
        let mut out: Vec<String> = b.iter().filter(|l| !a.contains(l)).map(|l| format!("-{l}")).collect();
        out.extend(a.iter().filter(|l| !b.contains(l)).map(|l| format!("+{l}")));
        out
    }

    #[test]
    fn a_tenant_field_changes_only_its_value() {
        let edited = tenant("spec.plan", json!("starter"), json!("pro")).apply(ACME).expect("edited");
        assert_eq!(diff(ACME, &edited), ["-  plan: starter", "+  plan: pro"]);
        let named = tenant("spec.displayName", json!("Acme Corp"), json!("Acme AG")).apply(ACME).expect("edited");
        assert_eq!(
            diff(ACME, &named),
            [
                "-  displayName: \"Acme Corp\"   # shown in consoles",
                "+  displayName: \"Acme AG\"   # shown in consoles"
            ]
        );
        let flag = tenant("spec.flags.beta", json!(false), json!(true)).apply(ACME).expect("edited");
        assert_eq!(diff(ACME, &flag), ["-  flags: { beta: false }", "+  flags: { beta: true }"]);
    }

    #[test]
    fn a_field_changed_in_git_since_it_was_read_is_a_conflict() {
        let refused = tenant("spec.plan", json!("free"), json!("pro")).apply(ACME).expect_err("refused");
        assert_eq!(
            refused,
            Refusal::Conflict("`spec.plan` (line 8) is starter in Git now, not free as it was read".into())
        );
        // What Git already says is no change at all.
        assert_eq!(tenant("spec.plan", json!("free"), json!("starter")).apply(ACME).expect("edited"), ACME);
    }

    #[test]
    fn a_new_user_is_written_like_its_siblings_and_only_once() {
        let item = vec![("email".into(), json!("carol@acme.example")), ("role".into(), json!("admin"))];
        let add = Edit::AddUser { tenant: "acme".into(), item };
        let edited = add.apply(ACME).expect("edited");
        assert_eq!(diff(ACME, &edited), ["+    - email: carol@acme.example", "+      role: admin"]);
        assert!(edited.ends_with("      role: admin\n"), "appended after the last user:\n{edited}");
        assert!(matches!(add.apply(&edited), Err(Refusal::Conflict(m)) if m.contains("line 17")));
    }

    #[test]
    fn a_removed_user_takes_its_lines_and_comment_with_it() {
        let remove = Edit::RemoveUser { tenant: "acme".into(), email: "BOB@acme.example".into() };
        let edited = remove.apply(ACME).expect("edited");
        assert_eq!(
            diff(ACME, &edited),
            ["-    - email: bob@acme.example", "-      role: user", "-      status: disabled   # left in March"]
        );
        assert_eq!(remove.apply(&edited).expect("edited"), edited, "already gone: nothing to do");
    }

    #[test]
    fn a_user_status_written_or_not() {
        let user = |email: &str, expected: Value, value: Value| Edit::User {
            tenant: "acme".into(),
            email: email.into(),
            field: "status".into(),
            expected,
            value,
        };
        let enabled = user("bob@acme.example", json!("disabled"), Value::Null).apply(ACME).expect("edited");
        assert_eq!(diff(ACME, &enabled), ["-      status: disabled   # left in March"]);
        let disabled = user("alice@acme.example", json!("active"), json!("disabled")).apply(ACME).expect("edited");
        assert_eq!(diff(ACME, &disabled), ["+      status: disabled"]);
        assert!(matches!(
            user("carol@acme.example", Value::Null, json!("disabled")).apply(ACME),
            Err(Refusal::Conflict(_))
        ));
    }

    #[test]
    fn numbers_compare_by_value_and_lists_as_sets() {
        let flags = "apiVersion: gatehouse.dev/v1\nkind: Tenant\nmetadata: { name: acme }\nspec:\n  applications: [b-app, a-app]\n  flags:\n    ratio: 3\n";
        let ratio = tenant("spec.flags.ratio", json!(3.0), json!(4.5)).apply(flags).expect("edited");
        assert_eq!(diff(flags, &ratio), ["-    ratio: 3", "+    ratio: 4.5"]);
        let apps = tenant("spec.applications", json!(["a-app", "b-app"]), json!(["a-app", "b-app", "c-app"]));
        let edited = apps.apply(flags).expect("edited");
        assert_eq!(diff(flags, &edited), ["-  applications: [b-app, a-app]", "+  applications: [a-app, b-app, c-app]"]);
        assert!(apps.holds(&edited) && !apps.holds(flags));
        let add = Edit::AddUser { tenant: "acme".into(), item: vec![("email".into(), json!("alice@acme.example"))] };
        assert!(add.holds(ACME), "a user already declared is what an invitation asks for");
    }

    #[test]
    fn summaries_name_the_change() {
        assert_eq!(tenant("spec.plan", json!("starter"), json!("pro")).summary(), "Set plan of tenant acme to pro");
        let item = vec![("email".into(), json!("carol@acme.example")), ("role".into(), json!("admin"))];
        assert_eq!(
            Edit::AddUser { tenant: "acme".into(), item }.summary(),
            "Invite carol@acme.example to tenant acme as admin"
        );
    }
}
