//! The thresholds of a budget a tenant crosses as its usage grows: each `warnAt` percentage, and
//! 100 at the limit. Each is recorded once per month across replicas, audited, and announced to the
//! tenant's owners and the webhook.

use chrono::{NaiveDate, Utc};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::Limit;
use super::book::{Book, month_of};
use super::notify::{Notice, Outbox};
use crate::audit::{self, Origin, Outcome, Target};
use crate::authz::{Actor, Job};
use crate::i18n::Text;
use crate::store::{self, budget as db};

/// The thresholds `usage` has reached of `limit`: the `warnAt` percentages reached, and 100 once
/// the limit is.
pub fn reached(limit: &Limit, usage: i64) -> Vec<i16> {
    let mut thresholds: Vec<i16> = super::crossed(limit, usage).into_iter().map(i16::from).collect();
    if usage >= limit.monthly_limit {
        thresholds.push(100);
    }
    thresholds
}

/// What crossing `threshold` is called, and the sentence that announces it for `tenant`.
pub fn announcement(tenant: &str, threshold: i16, usage: i64, limit: &Limit) -> (&'static str, Text) {
    let (tenant, usage, monthly) = (tenant.to_owned(), usage.to_string(), limit.monthly_limit.to_string());
    if threshold == 100 {
        let args =
            vec![("tenant", tenant), ("usage", usage), ("limit", monthly), ("onLimit", limit.on_limit.to_string())];
        ("budget.limit_reached", Text::new("budget-said-limit", args))
    } else {
        let args = vec![("tenant", tenant), ("threshold", threshold.to_string()), ("usage", usage), ("limit", monthly)];
        ("budget.threshold", Text::new("budget-said-threshold", args))
    }
}

/// After usage was stored for `tenants` (ids): their usage is read again, and each threshold newly
/// crossed this month is recorded once across replicas, with an audit row and its notices.
pub async fn after_usage(pool: &PgPool, book: &Book, outbox: Outbox<'_>, tenants: &[Uuid]) -> store::Result<()> {
    if tenants.is_empty() {
        return Ok(());
    }
    book.reload_usage(pool, tenants).await?;
    let now = Utc::now();
    let month = month_of(now);
    for (name, view) in book.views_of(tenants, now) {
        let Some(limit) = &view.limit else { continue };
        // Past a threshold, every later batch would try to record it again: only the new ones.
        let thresholds = book.unrecorded(view.id, &reached(limit, view.usage));
        if thresholds.is_empty() {
            continue;
        }
        let mut tx = pool.begin().await?;
        let new = db::crossed(&mut tx, view.id, month, &thresholds).await?;
        let rows: Vec<_> = new.iter().map(|threshold| row(&name, *threshold, view.usage, limit, month)).collect();
        store::insert_audit(&mut tx, &rows).await?;
        for threshold in new {
            let (event, summary) = announcement(&name, threshold, view.usage, limit);
            let details =
                json!({ "threshold": threshold, "usage": view.usage, "limit": limit.monthly_limit, "month": month });
            outbox.queue(&mut tx, &Notice { tenant: &name, tenant_id: view.id, event, summary, details }).await?;
        }
        tx.commit().await?;
        book.mark_recorded(view.id, &thresholds);
    }
    Ok(())
}

/// The audit row of `tenant` crossing `threshold`, written by the budgets job.
fn row(tenant: &str, threshold: i16, usage: i64, limit: &Limit, month: NaiveDate) -> store::AuditEntry {
    let (action, _) = announcement(tenant, threshold, usage, limit);
    let details: Value = json!({ "threshold": threshold, "usage": usage, "limit": limit.monthly_limit, "onLimit": limit.on_limit, "month": month });
    let target = Target::in_tenant(tenant, format!("tenant/{tenant}/budget"));
    audit::entry(&Actor::System(Job::Budgets), action, target, Outcome::Success, &Origin::default(), details)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OnLimit;

    fn limit() -> Limit {
        Limit { monthly_limit: 1000, on_limit: OnLimit::Block, warn_at: vec![50, 80], event_types: Vec::new() }
    }

    #[test]
    fn each_warning_and_the_limit_are_reached_in_turn() {
        assert_eq!(reached(&limit(), 499), Vec::<i16>::new());
        assert_eq!(reached(&limit(), 500), [50]);
        assert_eq!(reached(&limit(), 999), [50, 80]);
        assert_eq!(reached(&limit(), 1000), [50, 80, 100]);
    }

    #[test]
    fn the_limit_and_a_warning_are_announced_differently() {
        use crate::i18n::{Lang, Tr};
        let (event, summary) = announcement("acme", 100, 1000, &limit());
        assert_eq!(event, "budget.limit_reached");
        let said = summary.said(Tr::new(Lang::En));
        assert!(said.contains("reached its monthly limit: 1000 of 1000"), "{said}");
        let (event, summary) = announcement("acme", 80, 800, &limit());
        assert_eq!(event, "budget.threshold");
        assert!(summary.said(Tr::new(Lang::En)).contains("used 80 % of its monthly budget"));
        let german = summary.said(Tr::new(Lang::De));
        assert!(german.contains("80 % seines Monatsbudgets verbraucht: 800 von 1000"), "{german}");
    }

    #[test]
    fn the_row_is_the_budget_jobs_with_its_identity() {
        let entry = row("acme", 100, 1000, &limit(), NaiveDate::from_ymd_opt(2026, 12, 1).expect("a date"));
        assert_eq!((entry.actor.as_str(), entry.actor_type), ("gatehouse-budgets", "system"));
        assert_eq!((entry.action.as_str(), entry.resource.as_str()), ("budget.limit_reached", "tenant/acme/budget"));
        assert_eq!(entry.metadata.get("actor"), None, "the job is named by the row's actor");
        assert_eq!(entry.metadata["threshold"], 100);
    }
}
