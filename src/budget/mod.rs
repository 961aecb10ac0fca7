//! Budgets (issue 13.6, FR-006, US2-2): a tenant's monthly limit (its own, else its plan's) on the
//! usage it reports in the current calendar month (UTC), optionally of listed event types only.
//! `decide` is the whole rule, pure: what a check of `quantity` more is answered, from the usage so
//! far, the budget and an override granted for it. `book` keeps every tenant's usage in memory on
//! every replica, so a check never waits for the database.

pub mod approval;
pub mod book;
pub mod notify;
pub mod thresholds;

use serde::{Deserialize, Serialize};

use crate::model::OnLimit;

/// A budget as Git declares it (`spec.budget` of a plan or tenant, stored as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limit {
    pub monthly_limit: i64,
    pub on_limit: OnLimit,
    #[serde(default)]
    pub warn_at: Vec<u8>,
    /// Empty: every event type counts.
    #[serde(default)]
    pub event_types: Vec<String>,
}

impl Limit {
    pub fn counts(&self, kind: &str) -> bool {
        self.event_types.is_empty() || self.event_types.iter().any(|t| t == kind)
    }

    /// Whether a check of `kind` counts against this budget; a check that names no type counts
    /// when every type does, and is refused (the types it must name) when only some do.
    pub fn counts_check(&self, kind: Option<&str>) -> Result<bool, TypeRequired> {
        match kind {
            Some(kind) => Ok(self.counts(kind)),
            None if self.event_types.is_empty() => Ok(true),
            None => Err(TypeRequired(self.event_types.clone())),
        }
    }
}

/// A check that names no event type, of a budget that counts only the types listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeRequired(pub Vec<String>);

impl std::fmt::Display for TypeRequired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "type: required, since this tenant's budget counts only the event types {}", self.0.join(", "))
    }
}

/// Where a tenant stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// No budget applies.
    Unlimited,
    Ok,
    /// At or past the first `warnAt` threshold.
    Warning,
    /// At or past the limit.
    Exceeded,
}

/// An override in force: the limit it sets, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub id: uuid::Uuid,
    pub limit: i64,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// The answer to a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub allowed: bool,
    pub state: State,
    /// Usage counted this month, before the checked quantity.
    pub usage: i64,
    /// The limit in force (an override's, while one is), absent without a budget.
    pub limit: Option<i64>,
    pub remaining: Option<i64>,
    /// Why not (`budget_exceeded`, `override_required`), or why allowed past the limit (`warn`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The state of `usage` against `limit`.
pub fn state(limit: &Limit, usage: i64, effective: i64) -> State {
    if usage >= effective {
        State::Exceeded
    } else if limit.warn_at.first().is_some_and(|p| reached(usage, *p, limit.monthly_limit)) {
        State::Warning
    } else {
        State::Ok
    }
}

/// The thresholds (`warnAt` percentages) `usage` has reached.
pub fn crossed(limit: &Limit, usage: i64) -> Vec<u8> {
    limit.warn_at.iter().copied().filter(|p| reached(usage, *p, limit.monthly_limit)).collect()
}

/// Whether `usage` is at least `percent` % of `limit` (in 128 bits: no product overflows).
fn reached(usage: i64, percent: u8, limit: i64) -> bool {
    i128::from(usage) * 100 >= i128::from(percent) * i128::from(limit)
}

/// What a check of `quantity` more of `kind` is answered, with `usage` counted so far this month.
pub fn decide(
    limit: Option<&Limit>,
    usage: i64,
    quantity: i64,
    kind: Option<&str>,
    granted: Option<&Granted>,
) -> Result<Decision, TypeRequired> {
    let Some(limit) = limit else {
        return Ok(Decision {
            allowed: true,
            state: State::Unlimited,
            usage,
            limit: None,
            remaining: None,
            reason: None,
            message: None,
        });
    };
    let counted = limit.counts_check(kind)?;
    let effective = granted.map_or(limit.monthly_limit, |g| g.limit.max(limit.monthly_limit));
    let after = if counted { usage.saturating_add(quantity) } else { usage };
    let mut decision = Decision {
        allowed: true,
        state: state(limit, usage, effective),
        usage,
        limit: Some(effective),
        remaining: Some((effective - usage).max(0)),
        reason: None,
        message: None,
    };
    if !counted || after <= effective {
        return Ok(decision);
    }
    match limit.on_limit {
        OnLimit::Warn => {
            decision.reason = Some("warn");
            decision.message = Some(format!(
                "usage would reach {after} of a monthly limit of {effective}: allowed, flagged (onLimit: warn)"
            ));
        }
        OnLimit::Block => {
            decision.allowed = false;
            decision.reason = Some("budget_exceeded");
            decision.message = Some(format!(
                "usage {usage} + {quantity} would pass the monthly limit of {effective} (onLimit: block)"
            ));
        }
        OnLimit::RequireOverride => {
            decision.allowed = false;
            decision.reason = Some("override_required");
            decision.message = Some(format!(
                "usage {usage} + {quantity} would pass the monthly limit of {effective}: an override approved by two people is required (onLimit: requireOverride)"
            ));
        }
    }
    Ok(decision)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(limit: Option<&Limit>, usage: i64, quantity: i64, kind: &str, granted: Option<&Granted>) -> Decision {
        super::decide(limit, usage, quantity, Some(kind), granted).expect("a type is named")
    }

    fn limit(on_limit: OnLimit) -> Limit {
        Limit { monthly_limit: 1000, on_limit, warn_at: vec![75, 90], event_types: vec![] }
    }

    // FR-006, US2-2: each onLimit at and past the limit.
    #[test]
    fn past_the_limit_warn_allows_block_refuses_and_require_override_waits_for_one() {
        let warned = decide(Some(&limit(OnLimit::Warn)), 990, 20, "api.call", None);
        assert!(warned.allowed);
        assert_eq!((warned.state, warned.reason), (State::Warning, Some("warn")));
        let blocked = decide(Some(&limit(OnLimit::Block)), 1000, 1, "api.call", None);
        assert!(!blocked.allowed);
        assert_eq!(
            (blocked.state, blocked.reason, blocked.remaining),
            (State::Exceeded, Some("budget_exceeded"), Some(0))
        );
        assert!(blocked.message.as_deref().is_some_and(|m| m.contains("1000 + 1") && m.contains("limit of 1000")));
        let waiting = decide(Some(&limit(OnLimit::RequireOverride)), 1000, 1, "api.call", None);
        assert_eq!((waiting.allowed, waiting.reason), (false, Some("override_required")));
        let granted = Granted { id: uuid::Uuid::nil(), limit: 1500, expires_at: chrono::Utc::now() };
        let lifted = decide(Some(&limit(OnLimit::RequireOverride)), 1000, 1, "api.call", Some(&granted));
        assert!(lifted.allowed);
        assert_eq!((lifted.limit, lifted.remaining), (Some(1500), Some(500)));
        let spent = decide(Some(&limit(OnLimit::RequireOverride)), 1500, 1, "api.call", Some(&granted));
        assert!(!spent.allowed, "an override is used until its amount is spent");
    }

    #[test]
    fn within_the_limit_every_check_is_allowed_and_states_follow_the_thresholds() {
        let block = limit(OnLimit::Block);
        assert!(decide(Some(&block), 999, 1, "api.call", None).allowed);
        assert_eq!(state(&block, 749, 1000), State::Ok);
        assert_eq!(state(&block, 750, 1000), State::Warning);
        assert_eq!(crossed(&block, 750), [75]);
        assert_eq!(crossed(&block, 905), [75, 90]);
        assert_eq!(decide(None, 5, 1_000_000, "x", None).state, State::Unlimited);
    }

    #[test]
    fn only_the_listed_event_types_count() {
        let mut storage = limit(OnLimit::Block);
        storage.event_types = vec!["storage.gb".into()];
        assert!(decide(Some(&storage), 1000, 5, "api.call", None).allowed, "another type is not counted");
        assert!(!decide(Some(&storage), 1000, 5, "storage.gb", None).allowed);
    }

    // Issue 22.9: `type` may be left out unless the budget counts only some types.
    #[test]
    fn a_check_without_a_type_counts_when_every_type_does_and_is_refused_when_only_some_do() {
        let every = limit(OnLimit::Block);
        let unnamed = super::decide(Some(&every), 1000, 1, None, None).expect("every type counts");
        assert_eq!((unnamed.allowed, unnamed.reason), (false, Some("budget_exceeded")));
        assert!(super::decide(None, 5, 1, None, None).expect("no budget").allowed);
        let mut storage = limit(OnLimit::Block);
        storage.event_types = vec!["storage.gb".into(), "api.call".into()];
        let refused = super::decide(Some(&storage), 0, 1, None, None).expect_err("which type?");
        assert_eq!(
            refused.to_string(),
            "type: required, since this tenant's budget counts only the event types storage.gb, api.call"
        );
    }
}
