//! Passwords: argon2id hashing on a small pool of low-priority threads (so sign-ins cannot starve
//! the rest of the API), and the ASVS 5 password policy.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{mpsc, oneshot};

/// OWASP's argon2id minimum: 19 MiB, two passes, one lane.
const MEMORY_KIB: u32 = 19_456;
const PASSES: u32 = 2;
const LANES: u32 = 1;

pub const MIN_LENGTH: usize = 8;
/// ASVS asks that at least 64 be accepted; more only costs hashing time.
pub const MAX_LENGTH: usize = 128;
/// Hashing threads run at this nice value: the API's own threads win the CPU when both want it.
const HASHING_NICENESS: i32 = 10;

pub fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).expect("the argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
pub fn hash_blocking(password: &str) -> String {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the operating system's random source failed");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashing does not fail for valid parameters")
        .to_string()
}

pub fn verify_blocking(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => argon2().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(error) => {
            tracing::error!(%error, "a stored password hash is not a PHC string");
            false
        }
    }
}

enum Job {
    Hash(String, oneshot::Sender<String>),
    Verify(String, String, oneshot::Sender<bool>),
}

/// The hashing pool. Its queue is bounded: when every thread is busy and the queue is full, callers
/// wait, which bounds memory (each hash takes 19 MiB) and pushes back on floods.
#[derive(Clone)]
pub struct Hasher {
    jobs: mpsc::Sender<Job>,
    /// Verified against when the email is unknown, so an unknown account costs a known one's time.
    decoy: Arc<String>,
}

impl Hasher {
    pub fn new(threads: usize) -> Hasher {
        let (jobs, receiver) = mpsc::channel::<Job>(threads * 64);
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..threads.max(1) {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = {
                            let mut receiver = receiver.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                            receiver.blocking_recv()
                        };
                        match job {
                            Some(Job::Hash(password, reply)) => {
                                let _ = reply.send(hash_blocking(&password));
                            }
                            Some(Job::Verify(password, phc, reply)) => {
                                let _ = reply.send(verify_blocking(&password, &phc));
                            }
                            None => return,
                        }
                    }
                })
                .expect("cannot start a hashing thread");
        }
        Hasher { jobs, decoy: Arc::new(hash_blocking("decoy password that no account has")) }
    }

    #[tracing::instrument(name = "password.hash", level = "debug", skip_all)]
    pub async fn hash(&self, password: &str) -> String {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Hash(password.to_owned(), reply)).await;
        answer.await.expect("a hashing thread died")
    }

    /// Verifies against `phc`, or against the decoy when there is none (same cost, always false).
    #[tracing::instrument(name = "password.verify", level = "debug", skip_all)]
    pub async fn verify(&self, password: &str, phc: Option<&str>) -> bool {
        let (reply, answer) = oneshot::channel();
        let known = phc.is_some();
        let phc = phc.unwrap_or(&self.decoy).to_owned();
        self.submit(Job::Verify(password.to_owned(), phc, reply)).await;
        answer.await.expect("a hashing thread died") && known
    }

    async fn submit(&self, job: Job) {
        if self.jobs.send(job).await.is_err() {
            panic!("the hashing pool has stopped");
        }
    }
}

/// Lowers this thread's scheduling priority (Linux nice values are per thread).
#[allow(unsafe_code)]
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, tid, HASHING_NICENESS) != 0 {
            tracing::debug!("cannot lower the priority of a hashing thread");
        }
    }
}

static COMMON: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("common-passwords.txt").lines().filter(|l| !l.is_empty()).collect());

/// Why a new password is refused; the message is shown to the user as is.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Weak(pub String);

/// ASVS 5 (V6.2): 8 to 128 characters, no composition rules, not one of the 30,000 most common
/// passwords, not the account's email (or its name part) or the tenant's name.
pub fn check_policy(password: &str, email: &str, tenant_names: &[&str]) -> Result<(), Weak> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(Weak(format!("the password must have at least {MIN_LENGTH} characters")));
    }
    if length > MAX_LENGTH {
        return Err(Weak(format!("the password must have at most {MAX_LENGTH} characters")));
    }
    let lower = password.to_lowercase();
    if COMMON.contains(lower.as_str()) {
        return Err(Weak("this password is one of the most common passwords; choose another".into()));
    }
    let local = email.split('@').next().unwrap_or(email);
    let mut context = vec![email, local];
    context.extend_from_slice(tenant_names);
    if context.iter().any(|word| word.chars().count() >= 4 && lower.contains(&word.to_lowercase())) {
        return Err(Weak("the password must not contain your email address or your organisation's name".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_follows_asvs_5() {
        let ok = |p: &str| check_policy(p, "alice@acme.example", &["acme", "Acme Corp"]);
        assert!(ok("seven77").is_err());
        assert!(ok("correct horse battery staple").is_ok(), "no composition rules");
        assert!(ok(&"x".repeat(64)).is_ok(), "64 characters are accepted");
        assert!(ok(&"é".repeat(128)).is_ok());
        assert!(ok(&"x".repeat(129)).is_err());
        assert!(ok("password1").is_err(), "common");
        assert!(ok("LiverPool").is_err(), "common, compared without case");
        assert!(ok("alice-rocks-2026").is_err(), "contains the email's name");
        assert!(ok("i work at ACME corp").is_err(), "contains the tenant");
    }

    #[test]
    fn ships_at_least_ten_thousand_common_passwords() {
        assert!(COMMON.len() >= 10_000, "{}", COMMON.len());
    }

    #[test]
    fn hashes_are_argon2id_with_the_owasp_parameters_and_verify() {
        let phc = hash_blocking("correct horse battery staple");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_blocking("correct horse battery staple", &phc));
        assert!(!verify_blocking("wrong", &phc));
        assert!(!verify_blocking("x", "not a phc string"));
    }

    #[tokio::test]
    async fn the_pool_answers_false_for_an_unknown_account() {
        let hasher = Hasher::new(1);
        let phc = hasher.hash("correct horse battery staple").await;
        assert!(hasher.verify("correct horse battery staple", Some(&phc)).await);
        assert!(!hasher.verify("decoy password that no account has", None).await);
    }
}
