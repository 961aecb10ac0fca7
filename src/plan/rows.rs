//! Typed rows: what apply writes for each kind of resource, one struct per table with a named field
//! per declared column. `diff` builds them from the model (and `store` from live columns), `store`
//! binds them field by field, so renaming a field fails to compile instead of writing NULL. Their
//! `Fields` (for diffs and hashes) come from the constructors in `fields`, the single place that names
//! declared fields.

use serde_json::{Value, json};

use super::fields::{self, Fields, opt};
use crate::model::{Application, Plan, Tenant, User, UserStatus};

/// A row of `plans`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRow {
    pub display_name: Option<String>,
    /// Flag defaults, an object by key.
    pub flags: Value,
    /// `null` when the plan has no budget.
    pub budget: Value,
}

/// A row of `applications`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplicationRow {
    pub display_name: String,
    pub owner: String,
    pub status: String,
    pub scopes: Vec<String>,
    /// `null` when the application is not an OIDC client.
    pub oidc: Value,
}

/// A row of `tenants` (its plan by name; the store resolves the id).
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRow {
    pub display_name: String,
    pub plan: String,
    pub status: String,
    /// `null` when the tenant has no budget.
    pub budget: Value,
    /// `null` when the tenant has no SSO.
    pub sso: Value,
    pub applications: Vec<String>,
}

/// A row of `users`: `enabled` rather than the live status, whose `invited → active` is lifecycle.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    pub email: String,
    pub name: Option<String>,
    pub role: String,
    pub enabled: bool,
}

/// A row of `tenant_flags` (its key is the resource's name).
#[derive(Debug, Clone, PartialEq)]
pub struct FlagRow {
    pub value: Value,
}

/// The declared row of one resource, of the table its kind is stored in.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    Plan(PlanRow),
    Application(ApplicationRow),
    Tenant(TenantRow),
    User(UserRow),
    Flag(FlagRow),
}

impl PlanRow {
    pub fn of(p: &Plan) -> Self {
        let flags: serde_json::Map<String, Value> =
            p.flags.iter().map(|(k, v)| (k.to_string(), v.as_json().clone())).collect();
        PlanRow { display_name: p.display_name.clone(), flags: Value::Object(flags), budget: opt(p.budget.as_ref()) }
    }

    pub fn fields(&self) -> Fields {
        fields::plan(self.display_name.as_deref(), self.flags.clone(), self.budget.clone())
    }
}

impl ApplicationRow {
    pub fn of(a: &Application) -> Self {
        ApplicationRow {
            display_name: a.display_name.clone(),
            owner: a.owner.to_string(),
            status: a.status.as_str().to_owned(),
            scopes: a.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            oidc: opt(a.oidc.as_ref()),
        }
    }

    pub fn fields(&self) -> Fields {
        fields::application(&self.display_name, &self.owner, &self.status, &self.scopes, self.oidc.clone())
    }
}

impl TenantRow {
    pub fn of(t: &Tenant) -> Self {
        TenantRow {
            display_name: t.display_name.clone(),
            plan: t.plan.to_string(),
            status: t.status.as_str().to_owned(),
            budget: opt(t.budget.as_ref()),
            sso: opt(t.sso.as_ref()),
            applications: t.applications.iter().map(|a| a.to_string()).collect(),
        }
    }

    pub fn fields(&self) -> Fields {
        fields::tenant(
            &self.display_name,
            &self.plan,
            &self.status,
            self.budget.clone(),
            self.sso.clone(),
            &self.applications,
        )
    }

    /// The applications as one JSON array, the shape a set-based write binds per row.
    pub fn applications_json(&self) -> Value {
        json!(self.applications)
    }
}

impl UserRow {
    pub fn of(u: &User) -> Self {
        UserRow {
            email: u.email.to_string(),
            name: u.name.clone(),
            role: u.role.as_str().to_owned(),
            enabled: u.status == UserStatus::Active,
        }
    }

    pub fn fields(&self) -> Fields {
        fields::user(&self.email, self.name.as_deref(), &self.role, self.enabled)
    }
}

impl FlagRow {
    pub fn fields(&self) -> Fields {
        fields::flag(&self.value)
    }
}

impl Row {
    pub fn fields(&self) -> Fields {
        match self {
            Row::Plan(r) => r.fields(),
            Row::Application(r) => r.fields(),
            Row::Tenant(r) => r.fields(),
            Row::User(r) => r.fields(),
            Row::Flag(r) => r.fields(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Email, Role};

    #[test]
    fn a_typed_user_row_hashes_like_the_fields_the_live_side_builds() {
        let user = User {
            email: Email::parse("ann@acme.example").expect("email"),
            name: Some("Ann".into()),
            role: Role::Admin,
            status: UserStatus::Disabled,
        };
        let row = UserRow::of(&user);
        assert_eq!(
            row,
            UserRow {
                email: "ann@acme.example".into(),
                name: Some("Ann".into()),
                role: "admin".into(),
                enabled: false
            }
        );
        let live = fields::user("ann@acme.example", Some("Ann"), "admin", false);
        assert_eq!(fields::hash(&Row::User(row).fields()), fields::hash(&live));
    }
}
