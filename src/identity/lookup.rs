//! Session lookups, coalesced: concurrent requests share one query (`access_hash = ANY($1)`).
//! A request only joins a query that has not started yet, so it always sees every change committed
//! before it arrived: revocation holds from the very next request, on every replica.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use crate::model::SessionView;
use crate::store::identity::{self, SessionTimes};
use crate::store::{Result, StoreError};

/// Most hashes one query carries.
const BATCH: usize = 128;
/// Queries in flight at once (each holds a pooled connection).
const LOADERS: usize = 3;

type Reply = oneshot::Sender<Result<Option<SessionView>, Failure>>;

/// A failed query, as each request that shared it gets it: whether the database was unreachable
/// decides between 503 and 500.
#[derive(Clone)]
struct Failure {
    message: String,
    unavailable: bool,
}

impl From<Failure> for StoreError {
    fn from(failure: Failure) -> Self {
        if failure.unavailable { StoreError::Unavailable(failure.message) } else { StoreError::Task(failure.message) }
    }
}
type Requests = Arc<Mutex<mpsc::Receiver<(Vec<u8>, Reply)>>>;

#[derive(Clone)]
pub struct SessionLookup {
    requests: mpsc::Sender<(Vec<u8>, Reply)>,
}

impl SessionLookup {
    pub fn new(pool: sqlx::PgPool, times: SessionTimes) -> SessionLookup {
        let (requests, receiver) = mpsc::channel(4096);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..LOADERS {
            tokio::spawn(load(pool.clone(), times, receiver.clone()));
        }
        SessionLookup { requests }
    }

    /// The live session whose access token hashes to `hash`.
    #[tracing::instrument(name = "db.find_session", level = "debug", skip_all)]
    pub async fn find(&self, hash: Vec<u8>) -> Result<Option<SessionView>> {
        let (reply, answer) = oneshot::channel();
        self.requests.send((hash, reply)).await.map_err(|_| StoreError::Task("session lookups stopped".into()))?;
        answer.await.map_err(|_| StoreError::Task("a session lookup was dropped".into()))?.map_err(StoreError::from)
    }
}

async fn load(pool: sqlx::PgPool, times: SessionTimes, receiver: Requests) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        {
            let mut receiver = receiver.lock().await;
            if receiver.recv_many(&mut batch, BATCH).await == 0 {
                return;
            }
        }
        let hashes: Vec<Vec<u8>> = batch.iter().map(|(hash, _)| hash.clone()).collect();
        match identity::sessions_by_access(&pool, &hashes, times).await {
            Ok(found) => {
                let stale: Vec<Uuid> = found
                    .iter()
                    .filter(|s| chrono::Utc::now() - s.last_seen_at > chrono::Duration::seconds(60))
                    .map(|s| s.id)
                    .collect();
                if !stale.is_empty() {
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        if let Err(error) = identity::touch_sessions(&pool, &stale).await {
                            tracing::warn!(%error, "cannot record session use");
                        }
                    });
                }
                let by_hash: HashMap<Vec<u8>, SessionView> =
                    found.into_iter().map(|s| (s.access_hash.clone(), s)).collect();
                for (hash, reply) in batch.drain(..) {
                    let _ = reply.send(Ok(by_hash.get(&hash).cloned()));
                }
            }
            Err(error) => {
                let failure = Failure { message: error.to_string(), unavailable: error.is_unavailable() };
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(failure.clone()));
                }
            }
        }
    }
}
