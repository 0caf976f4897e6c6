//! Password hashing (Argon2id) and the password policy.
//!
//! Hashing is CPU- and memory-bound (19 MiB per hash by default), so it runs
//! on a fixed set of hashing threads (`--argon2-workers`, one per core by
//! default) at a lower scheduling priority than the async threads: those
//! keep serving everything else during a login flood, and at most one hash
//! per worker is in flight. Each worker verifies in one memory block of
//! its own, allocated once and reused: a login costs the hash, not also
//! mapping, faulting in and zeroing 19 MiB (a fifth of a login's CPU when
//! every hash allocated afresh), and the hashing memory stays at one block
//! per worker however many logins arrive.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Semaphore, oneshot};

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for Argon2Params {
    /// OWASP's recommendation for Argon2id: m=19456 KiB, t=2, p=1.
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Hashing failed for a reason that is not the caller's.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("invalid Argon2 parameters: {0}")]
    Params(argon2::Error),
    #[error("password hashing failed: {0}")]
    Hash(argon2::password_hash::Error),
    #[error("password hashing task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("a password hashing worker failed")]
    Worker,
    #[error("every core is hashing and the queue is full")]
    Busy,
}

impl From<HashError> for crate::error::Error {
    fn from(err: HashError) -> Self {
        match err {
            HashError::Busy => Self::HashingBusy,
            other => Self::Hash(other.to_string()),
        }
    }
}

/// Hashes and verifies passwords off the async threads.
#[derive(Clone)]
pub struct Passwords {
    argon2: Argon2<'static>,
    /// The hashing threads' queue.
    workers: SyncSender<Job>,
    /// Workers plus the queue bound: the hashes running or queued. A
    /// request past it waits up to `wait` for a place, then is refused
    /// (503) rather than piling up.
    admitted: Arc<Semaphore>,
    wait: std::time::Duration,
    capacity: usize,
    /// A hash of a random password, verified against when the user is
    /// unknown so that the answer takes as long as for a wrong password.
    dummy_hash: Arc<str>,
    /// How long a verify with the configured parameters takes (µs, a
    /// moving average): a wrong password against a hash made with other
    /// parameters is answered no sooner, so that accounts whose hash
    /// predates a cost change do not answer faster than unknown ones.
    current_verify_micros: Arc<AtomicU64>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl Passwords {
    /// Builds the hasher and starts its `workers` threads; computes the
    /// dummy hash once (blocking, ~one hash). At most one hash per worker
    /// runs at once, and at most `queue` more wait.
    pub fn new(params: Argon2Params, workers: usize, queue: usize) -> Result<Self, HashError> {
        Self::with_wait(params, workers, queue, std::time::Duration::ZERO)
    }

    /// [`Passwords::new`], with a request beyond the queue waiting up to
    /// `wait` for a place before it is refused. Waiting holds a flood of
    /// logins to the rate the workers hash at, so that it cannot take the
    /// CPU from other requests by being refused thousands of times a second.
    pub fn with_wait(
        params: Argon2Params,
        workers: usize,
        queue: usize,
        wait: std::time::Duration,
    ) -> Result<Self, HashError> {
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(HashError::Params)?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy = crate::auth::random_token();
        let started = Instant::now();
        let dummy_hash = argon2
            .hash_password(dummy.expose_secret().as_bytes())
            .map_err(HashError::Hash)?;
        let hashed_in = micros(started.elapsed());
        let workers = workers.max(1);
        Ok(Self {
            argon2,
            workers: start_workers(workers, workers + queue),
            admitted: Arc::new(Semaphore::new(workers + queue)),
            wait,
            capacity: workers + queue,
            dummy_hash: dummy_hash.to_string().into(),
            current_verify_micros: Arc::new(AtomicU64::new(hashed_in)),
        })
    }

    /// How long a verify with the configured parameters takes, as measured.
    pub fn current_verify_time(&self) -> Duration {
        Duration::from_micros(self.current_verify_micros.load(Ordering::Relaxed))
    }

    /// Whether `stored` was made with other parameters than the configured
    /// ones (or another algorithm), and so should be replaced by a fresh hash
    /// the next time its password is known.
    pub fn needs_rehash(&self, stored: &str) -> bool {
        let params = self.argon2.params();
        let current = format!(
            "$argon2id$v=19$m={},t={},p={}$",
            params.m_cost(),
            params.t_cost(),
            params.p_cost()
        );
        !stored.starts_with(&current)
    }

    /// Hashes running or waiting for a core now.
    pub fn in_flight(&self) -> usize {
        self.capacity - self.admitted.available_permits()
    }

    /// Whether a new hash would be refused right now (every core busy and
    /// the queue full).
    pub fn is_saturated(&self) -> bool {
        self.admitted.available_permits() == 0
    }

    /// The PHC string of a fresh salted hash of `password`.
    pub async fn hash(&self, password: SecretString) -> Result<String, HashError> {
        let argon2 = self.argon2.clone();
        self.run(move || {
            argon2
                .hash_password(password.expose_secret().as_bytes())
                .map(|hash| hash.to_string())
                .map_err(HashError::Hash)
        })
        .await
    }

    /// Whether `password` matches `stored`. With no stored hash (unknown user)
    /// it verifies against the dummy hash and answers `false`, taking the
    /// same time as a wrong password.
    pub async fn verify(
        &self,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<bool, HashError> {
        let argon2 = self.argon2.clone();
        let known = stored.is_some();
        let current = stored
            .as_deref()
            .is_none_or(|hash| !self.needs_rehash(hash));
        let hash: Arc<str> = stored.map_or_else(|| self.dummy_hash.clone(), Arc::from);
        let (matches, took) = self
            .run(move || {
                let started = Instant::now();
                let matches = verify_in_place(&argon2, password.expose_secret().as_bytes(), &hash);
                Ok((matches, started.elapsed()))
            })
            .await?;
        if current {
            // A moving average over the last few dozen verifies.
            let average = &self.current_verify_micros;
            let old = average.load(Ordering::Relaxed);
            average.store(old - old / 32 + micros(took) / 32, Ordering::Relaxed);
        } else if !matches {
            // Made with other parameters: refused no sooner than with the
            // configured ones (an unknown user's dummy), whatever they cost.
            let floor = self.current_verify_time();
            if took < floor {
                tokio::time::sleep(floor - took).await;
            }
        }
        Ok(known && matches)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        // The place is held by the job, not by this future: a request that
        // is cancelled leaves its job queued, and the job keeps its place
        // until a worker has taken it.
        let admitted = match self.admitted.clone().try_acquire_owned() {
            Ok(admitted) => admitted,
            Err(_) => tokio::time::timeout(self.wait, self.admitted.clone().acquire_owned())
                .await
                .map_err(|_| HashError::Busy)?
                .map_err(|_| HashError::Worker)?,
        };
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _admitted = admitted;
            // Nobody waits for it any more (the request was cancelled):
            // spare the CPU.
            if answer.is_closed() {
                return;
            }
            let _ = answer.send(work());
        });
        match self.workers.try_send(job) {
            Ok(()) => {}
            // Admission keeps the queue from filling; the workers exit only
            // when every `Passwords` is gone.
            Err(TrySendError::Full(_)) => return Err(HashError::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(HashError::Worker),
        }
        answered.await.map_err(|_| HashError::Worker)?
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

mod policy;
mod workers;

pub use policy::{MAX_PASSWORD_BYTES, PolicyViolation, check_policy};
#[cfg(test)]
use workers::WORKER_NICENESS;
use workers::{Job, start_workers, verify_in_place};

#[cfg(test)]
mod tests;
