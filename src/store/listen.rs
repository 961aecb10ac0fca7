//! LISTEN on PostgreSQL channels, for the tasks that react to `NOTIFY` (the delivery cache, the
//! reconciler's wake-ups, the mail worker, invitations). One place connects, reconnects after a
//! lost connection with one capped exponential backoff, and says when it is listening again: a
//! notification sent while the connection was down is lost, so the caller reloads what it follows.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgNotification};
use tokio::time::Instant;

/// What `Listener::next` yields.
#[derive(Debug)]
pub enum Event {
    /// Listening (again) on every channel. Anything notified before this moment may have been
    /// missed: reload. `first` is the first connection of this listener.
    Connected {
        first: bool,
    },
    Notification(PgNotification),
}

/// The wait before reconnecting: `FIRST`, doubling after each failure in a row, at most `CAP`,
/// each scaled by a jitter in [0.5, 1] so that replicas do not reconnect in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub cap: Duration,
}

impl Backoff {
    pub const DEFAULT: Backoff = Backoff { first: Duration::from_millis(200), cap: Duration::from_secs(10) };

    /// The wait after `failures` failures in a row (1 or more), before jitter.
    pub fn delay(self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        self.first.saturating_mul(1 << doublings).min(self.cap)
    }

    /// `delay` scaled by `jitter`, a fraction in [0, 1] mapped onto [0.5, 1].
    pub fn jittered(self, failures: u32, jitter: f64) -> Duration {
        self.delay(failures).mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
    }
}

/// A LISTEN connection that never gives up. `next` is cancel-safe: a caller may race it against a
/// timer or a shutdown signal and call it again later, and a pending reconnection keeps its time.
pub struct Listener {
    pool: PgPool,
    /// Names the listener in logs, such as "access cache".
    what: &'static str,
    channels: Vec<&'static str>,
    backoff: Backoff,
    connection: Option<PgListener>,
    /// Failures since the last connection the caller acted on without `start_over`.
    failures: u32,
    /// When the next connection attempt may start (after a failure).
    retry_at: Option<Instant>,
    connected_before: bool,
    /// `Connected` was yielded; if the caller comes back without `start_over`, it has reloaded.
    settling: bool,
}

impl Listener {
    pub fn new(pool: &PgPool, what: &'static str, channels: &[&'static str]) -> Listener {
        Listener {
            pool: pool.clone(),
            what,
            channels: channels.to_vec(),
            backoff: Backoff::DEFAULT,
            connection: None,
            failures: 0,
            retry_at: None,
            connected_before: false,
            settling: false,
        }
    }

    /// The next event: connects (or reconnects, after the backoff) as needed.
    pub async fn next(&mut self) -> Event {
        if std::mem::take(&mut self.settling) {
            self.failures = 0;
        }
        loop {
            if let Some(listener) = self.connection.as_mut() {
                match listener.try_recv().await {
                    Ok(Some(notification)) => return Event::Notification(notification),
                    Ok(None) => self.failed(&"the connection was lost"),
                    Err(error) => self.failed(&error),
                }
                continue;
            }
            if let Some(at) = self.retry_at {
                tokio::time::sleep_until(at).await;
            }
            match self.connect().await {
                Ok(listener) => {
                    self.connection = Some(listener);
                    self.retry_at = None;
                    self.settling = true;
                    let first = !std::mem::replace(&mut self.connected_before, true);
                    if !first {
                        tracing::info!(listener = self.what, "listening again");
                    }
                    return Event::Connected { first };
                }
                Err(error) => self.failed(&error),
            }
        }
    }

    /// For a worker that polls: waits until a notification, a reconnection (one may have been
    /// missed) or `poll` has passed, whichever comes first. `false` once `shutdown` is cancelled.
    pub async fn wait_for_work(&mut self, poll: Duration, shutdown: &tokio_util::sync::CancellationToken) -> bool {
        let deadline = Instant::now() + poll;
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => return false,
                () = tokio::time::sleep_until(deadline) => return true,
                event = self.next() => event,
            };
            match event {
                // The worker's round ran just before it waited.
                Event::Connected { first: true } => {}
                Event::Connected { first: false } | Event::Notification(_) => return true,
            }
        }
    }

    /// A notification already received, without waiting: for handling a burst in one batch.
    pub fn next_buffered(&mut self) -> Option<PgNotification> {
        self.connection.as_mut().and_then(PgListener::next_buffered)
    }

    /// The caller could not act on an event (its reload failed): drop the connection, and after
    /// the backoff connect again and say `Connected`, so that it reloads everything.
    pub fn start_over(&mut self, error: &dyn std::fmt::Display) {
        self.settling = false;
        self.failed(error);
    }

    async fn connect(&self) -> Result<PgListener, sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        // A lost connection is re-established here, after the backoff, not inside `try_recv`.
        listener.eager_reconnect(false);
        listener.listen_all(self.channels.iter().copied()).await?;
        Ok(listener)
    }

    fn failed(&mut self, error: &dyn std::fmt::Display) {
        self.connection = None;
        self.failures = self.failures.saturating_add(1);
        let delay = self.backoff.jittered(self.failures, jitter());
        self.retry_at = Some(Instant::now() + delay);
        tracing::warn!(listener = self.what, %error, failures = self.failures, retry_in = ?delay, "not listening; reconnecting");
    }
}

/// A fraction in [0, 1] from the random bits of a UUID v7.
fn jitter() -> f64 {
    f64::from(uuid::Uuid::now_v7().as_u128() as u16) / f64::from(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reconnect_wait_doubles_from_200_ms_and_stops_at_10_s() {
        let backoff = Backoff::DEFAULT;
        let schedule: Vec<u64> = (1..=9).map(|n| backoff.delay(n).as_millis() as u64).collect();
        assert_eq!(schedule, [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]);
        assert_eq!(backoff.delay(0), Duration::from_millis(200), "no failure yet waits as the first");
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(10), "no overflow after many failures");
    }

    #[test]
    fn jitter_keeps_the_wait_between_half_and_all_of_the_schedule() {
        let backoff = Backoff::DEFAULT;
        for failures in 1..=12 {
            let full = backoff.delay(failures);
            assert_eq!(backoff.jittered(failures, 1.0), full);
            assert_eq!(backoff.jittered(failures, 0.0), full / 2);
            let random = backoff.jittered(failures, jitter());
            assert!(random >= full / 2 && random <= full, "{failures}: {random:?} outside [{:?}, {full:?}]", full / 2);
        }
        assert_eq!(backoff.jittered(1, 7.0), backoff.delay(1), "an out-of-range jitter is clamped");
    }
}
