//! Delivery to managed applications: their API keys, and the flags they read. Every replica serves
//! from memory (`cache`), kept current by the database's change feed (`sync`).

pub mod cache;
pub mod flags;
pub mod key;
pub mod sync;

pub use cache::{DeliveryCache, KeyRefusal, Principal, ScopeSet};
