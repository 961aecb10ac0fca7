//! Usage (issue 13.4, 13.5; FR-BILL-001..003): the billable events applications report. `event`
//! checks one as it arrives; `store::usage` keeps them, counted once per (tenant, source, id), and
//! their daily totals; `api::usage` ingests and exports them.

pub mod event;
