//! One integration-test binary: real PostgreSQL (a fresh database per test), real git repositories
//! in temp dirs, and the real `gatehouse` binary for the command-line tests.

mod databases;
mod helpers;

mod access;
mod admin;
mod apply;
mod audit;
mod authz_matrix;
mod budget;
mod chart;
mod cli;
mod config_fixtures;
mod console;
mod console_matrix;
mod console_sso;
mod console_staff;
mod drift;
mod evaluation;
mod exact_plans;
mod hostile;
mod hostile_audit;
mod identity;
mod login;
mod openapi;
mod operations;
mod operators;
mod races;
mod schemas;
mod serve;
mod sso;
mod sync_history;
mod traces;
mod usage;
mod web;
mod write_back;
