//! Runtime access of managed applications: API keys, and the flags they read. Every replica serves
//! from memory (`cache`), kept current by the database's change feed (`sync`).

pub mod cache;
pub mod flags;
pub mod key;
pub mod sync;

pub use cache::{AccessCache, KeyRefusal, Principal, ScopeSet};
