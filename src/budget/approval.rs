//! Who may approve a budget override (issue 25.4, ADR 0014). Two people other than the requester
//! must approve, and no single person may get an override granted by any sequence of calls, so:
//! - **independent people**: no approver may be in the requester's lineage or the other
//!   approver's, nor they in its (a lineage is who invited a user or raised their role, and theirs
//!   before them; operators and users declared in Git have none). An owner who invites two more
//!   owners of their own cannot approve their request with them;
//! - **the approver's own fresh second factor**: a tenant user approves from a session that
//!   passed Gatehouse's own TOTP within the last 15 minutes. A federated sign-in (whose provider
//!   the tenant's owner may control) or an old session is not enough.
//!
//! Operators sign in at the platform's identity provider, which the tenant does not control.

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::store::budget::{self as db, OverrideRecord, Person};
use crate::store::{self, AuditEntry, Rule, StoreError};

/// How recent the approver's own second factor must be.
pub const FRESH_FACTOR: TimeDelta = TimeDelta::minutes(15);

/// A person of an override: their name and lineage (with their own id, for a tenant user; empty
/// for an operator).
#[derive(Debug, Clone)]
pub struct Party<'a> {
    pub name: &'a str,
    pub lineage: &'a [Uuid],
}

/// How the approver's session was authenticated (`None` for an operator).
#[derive(Debug, Clone)]
pub struct Factor {
    pub amr: Vec<String>,
    pub auth_time: DateTime<Utc>,
}

/// Why an approval is refused: the code and the message.
pub type Refusal = (&'static str, String);

/// Adds `person`'s approval to override `id` of `tenant_id`, in the caller's transaction, if the
/// rules allow it: the override is pending, the approver is neither its requester nor an approver
/// already, and `check` passes. The second approval grants it. `audit` makes the row of the result.
pub async fn approve(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
    person: &Person<'_>,
    audit: impl FnOnce(&OverrideRecord, bool) -> AuditEntry,
) -> store::Result<OverrideRecord> {
    let refuse = |code, message: String| Err(StoreError::Rule { rule: Rule::Conflict, code, message });
    let Some(facts) = db::lock_for_approval(conn, tenant_id, id, person).await? else {
        return Err(StoreError::Rule {
            rule: Rule::NotFound,
            code: "not_found",
            message: format!("no override {id} for this tenant"),
        });
    };
    let (current, approver) = (&facts.current, person.name);
    if current.status != "pending" {
        return refuse(
            "override_not_pending",
            format!("override {id} is {}; only a pending one is approved", current.status),
        );
    }
    if current.requested_by == approver {
        return refuse(
            "self_approval",
            format!("{approver} requested override {id}; two other people must approve it"),
        );
    }
    if current.approvals.iter().any(|a| a == approver) {
        return refuse("already_approved", format!("{approver} already approved override {id}; a second person must"));
    }
    let requester = Party { name: &current.requested_by, lineage: &facts.requester_lineage };
    let others: Vec<Party<'_>> = facts.approvals.iter().map(|(name, lineage)| Party { name, lineage }).collect();
    let party = Party { name: approver, lineage: &facts.lineage };
    let factor = facts.factor.clone().map(|(amr, auth_time)| Factor { amr, auth_time });
    if let Err((code, message)) = check(&requester, &others, &party, factor.as_ref(), Utc::now()) {
        return refuse(code, message);
    }
    let grants = current.approvals.len() + 1 >= 2;
    db::add_approval(conn, tenant_id, id, (approver, &facts.lineage), grants, audit).await
}

/// Whether `approver` may add an approval to the `approvals` of `requester`'s override.
pub fn check(
    requester: &Party<'_>,
    approvals: &[Party<'_>],
    approver: &Party<'_>,
    factor: Option<&Factor>,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    for other in std::iter::once(requester).chain(approvals) {
        if other.lineage.iter().any(|id| approver.lineage.contains(id)) {
            return Err((
                "approver_not_independent",
                format!(
                    "{} cannot approve: they and {} are not independent (one invited or promoted the other, or one \
                     person invited or promoted both); an override needs two approvers independent of the requester \
                     and of each other: operators, owners declared in Git, or owners none of the others made",
                    approver.name, other.name
                ),
            ));
        }
    }
    if let Some(factor) = factor {
        // A federated session never counts, even with a TOTP enrolled from it: whoever controls the
        // tenant's provider could open it as anyone and enrol their own authenticator.
        let federated = factor.amr.iter().any(|m| m == "fed");
        let own_code = !federated && factor.amr.iter().any(|m| m == "otp");
        if !own_code || now - factor.auth_time > FRESH_FACTOR {
            return Err((
                "fresh_second_factor_required",
                format!(
                    "{} must sign in again with their own authenticator code (TOTP) to approve: an approval needs a \
                     sign-in with it in the last {} minutes, and a sign-in through the organisation's identity \
                     provider does not count",
                    approver.name,
                    FRESH_FACTOR.num_minutes()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn fresh() -> Factor {
        Factor { amr: vec!["pwd".into(), "otp".into()], auth_time: Utc::now() }
    }

    #[test]
    fn people_the_requester_made_cannot_approve_its_request() {
        // The owner (1) invited owners 2 and 3, and 3 invited 4: none of them is independent.
        let (owner, two, three, four) = ([id(1)], [id(1), id(2)], [id(1), id(3)], [id(1), id(3), id(4)]);
        let requester = Party { name: "owner", lineage: &owner };
        for approver in [Party { name: "two", lineage: &two }, Party { name: "four", lineage: &four }] {
            let refused = check(&requester, &[], &approver, Some(&fresh()), Utc::now()).expect_err("refused");
            assert_eq!(refused.0, "approver_not_independent", "{}", approver.name);
        }
        // A requester made by the owner, approved by two more the owner made: siblings share the owner.
        let requester = Party { name: "two", lineage: &two };
        let first = Party { name: "three", lineage: &three };
        assert!(check(&requester, &[], &first, Some(&fresh()), Utc::now()).is_err(), "they share the owner");
    }

    #[test]
    fn independent_people_with_a_fresh_own_factor_approve() {
        let (alice, bob, carol) = ([id(1)], [id(2)], [id(3)]);
        let requester = Party { name: "alice", lineage: &alice };
        let first = Party { name: "bob", lineage: &bob };
        assert_eq!(check(&requester, &[], &first, Some(&fresh()), Utc::now()), Ok(()));
        let second = Party { name: "carol", lineage: &carol };
        assert_eq!(check(&requester, std::slice::from_ref(&first), &second, Some(&fresh()), Utc::now()), Ok(()));
        let operator = Party { name: "ada@ops.example", lineage: &[] };
        assert_eq!(check(&requester, &[first], &operator, None, Utc::now()), Ok(()), "operators have no lineage");
    }

    #[test]
    fn a_federated_or_old_sign_in_is_not_the_approvers_own_fresh_factor() {
        let (alice, bob) = ([id(1)], [id(2)]);
        let (requester, approver) = (Party { name: "alice", lineage: &alice }, Party { name: "bob", lineage: &bob });
        let federated = Factor { amr: vec!["fed".into()], auth_time: Utc::now() };
        let old = Factor { amr: vec!["pwd".into(), "otp".into()], auth_time: Utc::now() - TimeDelta::minutes(16) };
        let password = Factor { amr: vec!["pwd".into()], auth_time: Utc::now() };
        // Review finding: a federated session that enrols a TOTP of its own gets `otp` too.
        let enrolled_after_federation = Factor { amr: vec!["fed".into(), "otp".into()], auth_time: Utc::now() };
        for factor in [federated, old, password, enrolled_after_federation] {
            let refused = check(&requester, &[], &approver, Some(&factor), Utc::now()).expect_err("refused");
            assert_eq!(refused.0, "fresh_second_factor_required", "{factor:?}");
        }
    }
}
