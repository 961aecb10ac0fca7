//! The ceiling of every password sign-in: raw argon2id verifications, with Gatehouse's parameters,
//! one thread per core, in the benchmark's own process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gatehouse::identity::password;

/// Verifications of `password` per second on `threads` threads, for `seconds`.
pub fn verifications_per_second(password: &str, threads: usize, seconds: u64) -> f64 {
    let phc = password::hash_blocking(password);
    let done = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while started.elapsed() < Duration::from_secs(seconds) {
                    assert!(password::verify_blocking(password, &phc));
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}
