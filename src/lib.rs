//! Gatehouse: the control plane of a multi-tenant B2B SaaS platform.
//!
//! A Git repository of YAML declares tenants, users, flags, plans and applications. Data flows one way:
//!
//! ```text
//! source (git work tree / remote)  →  config (parse + validate)  →  plan (diff desired vs live)
//!       →  reconcile (apply, one transaction per tenant | report drift)  →  status
//! ```
//!
//! `model` is the shared vocabulary; `store` is the only module that speaks SQL; `api` (axum) reads
//! status and store; `authz` decides who may do what (pure), `audit` records it; `operators` checks
//! the tokens of platform operators from an external identity provider; `oidc` is Gatehouse as the
//! OpenID provider of managed applications; `cli` is the edge;
//! `server::launch` starts everything `serve` runs (the tests call it too). `denials` queues the
//! audit rows of refused requests, so that a
//! refusal never waits for the database.

pub mod api;
pub mod audit;
pub mod authz;
pub mod budget;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod denials;
pub mod i18n;
pub mod identity;
pub mod mail;
pub mod model;
pub mod oidc;
pub mod operators;
pub mod outbound;
pub mod plan;
pub mod reconcile;
pub mod secret;
pub mod server;
pub mod source;
pub mod sso;
pub mod staff;
pub mod store;
pub mod telemetry;
pub mod traces;
pub mod usage;
pub mod writeback;
