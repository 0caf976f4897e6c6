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

use std::cell::RefCell;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHasher as _, Version};
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
        let dummy_hash = argon2
            .hash_password(dummy.expose_secret().as_bytes())
            .map_err(HashError::Hash)?;
        let workers = workers.max(1);
        Ok(Self {
            argon2,
            workers: start_workers(workers, workers + queue),
            admitted: Arc::new(Semaphore::new(workers + queue)),
            wait,
            capacity: workers + queue,
            dummy_hash: dummy_hash.to_string().into(),
        })
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
        let hash: Arc<str> = stored.map_or_else(|| self.dummy_hash.clone(), Arc::from);
        let matches = self
            .run(move || {
                Ok(verify_in_place(
                    &argon2,
                    password.expose_secret().as_bytes(),
                    &hash,
                ))
            })
            .await?;
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

/// A hash (or verification) to run on a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

/// How much less priority hashing threads get than the rest (a nice value:
/// the scheduler gives a thread at +10 about a tenth of the CPU of one at
/// 0 when both want it).
const WORKER_NICENESS: i32 = 10;

thread_local! {
    // The hashing thread's verify memory (see the module's description).
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Whether `password` hashes to `stored` (a PHC string) with the stored
/// string's own algorithm, version and parameters, in this thread's reused
/// memory; compared in constant time. A stored hash that does not parse is
/// a mismatch. One whose parameters need more than twice the configured
/// memory (an old, costlier setting) gets a block of its own, freed after.
fn verify_in_place(configured: &Argon2<'_>, password: &[u8], stored: &str) -> bool {
    let Ok(hash) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(version), Ok(params)) = (
        Algorithm::try_from(hash.algorithm.as_str()),
        hash.version
            .map_or(Ok(Version::default()), Version::try_from),
        Params::try_from(&hash),
    ) else {
        return false;
    };
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let mut computed = [0u8; Output::MAX_LENGTH];
    let Some(computed) = computed.get_mut(..expected.len()) else {
        return false;
    };
    let hashed = if blocks > 2 * configured.params().block_count() {
        argon2.hash_password_into(password, salt, computed)
    } else {
        MEMORY.with_borrow_mut(|memory| {
            if memory.len() < blocks {
                memory.resize(blocks, Block::default());
            }
            // Every block is written before it is read: what an earlier
            // hash left there does not matter.
            argon2.hash_password_into_with_memory(password, salt, computed, &mut memory[..blocks])
        })
    };
    // `Output`'s equality is constant-time.
    hashed.is_ok() && Output::new(computed).is_ok_and(|computed| computed == *expected)
}

/// Starts `count` hashing threads that take jobs from a queue of `bound`,
/// each at [`WORKER_NICENESS`]; they stop when the queue's sender is gone.
fn start_workers(count: usize, bound: usize) -> SyncSender<Job> {
    let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(bound);
    let queue = Arc::new(Mutex::new(queue));
    for index in 0..count {
        let queue = queue.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("gatehouse-argon2-{index}"))
            .spawn(move || {
                lower_this_threads_priority();
                while let Some(job) = next_job(&queue) {
                    // A panic in one hash fails that request, not the worker.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            });
        if let Err(err) = spawned {
            tracing::error!(error = %err, "could not start a password hashing thread");
        }
    }
    jobs
}

fn next_job(queue: &Mutex<Receiver<Job>>) -> Option<Job> {
    let queue = queue
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    queue.recv().ok()
}

/// Linux keeps a nice value per thread: this one yields to the async
/// threads. Where it cannot (another OS, a refused call) it runs as is.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on the calling thread's own id.
        let lowered = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, WORKER_NICENESS)
        };
        if lowered != 0 {
            tracing::debug!("could not lower the priority of a password hashing thread");
        }
    }
}

/// Longest password accepted, in bytes. Longer input is refused, never truncated.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a new password is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyViolation {
    #[error("password must be at least {0} characters long")]
    TooShort(usize),
    #[error("password must be at most {MAX_PASSWORD_BYTES} bytes long")]
    TooLong,
    #[error("password must not contain control characters")]
    ControlCharacter,
    #[error("password must not be the username")]
    SameAsUsername,
    #[error("password is too weak: it repeats a single character")]
    SingleCharacter,
    #[error("password is too easy to guess: {0}")]
    Guessable(String),
}

/// How much of a password the guessability estimate looks at (its cost
/// grows with length; a longer password is no dictionary word).
const ESTIMATED_CHARS: usize = 100;

/// Checks a new password against the policy. Passwords are compared and
/// hashed exactly as given: never trimmed, truncated or case-folded.
pub fn check_policy(
    password: &str,
    username: &str,
    min_chars: usize,
) -> Result<(), PolicyViolation> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PolicyViolation::TooLong);
    }
    if password.chars().count() < min_chars {
        return Err(PolicyViolation::TooShort(min_chars));
    }
    if password.chars().any(char::is_control) {
        return Err(PolicyViolation::ControlCharacter);
    }
    if password.to_lowercase() == username.to_lowercase() {
        return Err(PolicyViolation::SameAsUsername);
    }
    let mut chars = password.chars();
    if let Some(first) = chars.next()
        && chars.all(|c| c == first)
    {
        return Err(PolicyViolation::SingleCharacter);
    }
    // Common and breached passwords, dictionary words, keyboard patterns,
    // dates and the username itself score 0 or 1 ("too guessable").
    let head: String = password.chars().take(ESTIMATED_CHARS).collect();
    let estimate = zxcvbn::zxcvbn(&head, &[username]);
    if estimate.score() < zxcvbn::Score::Two {
        let why = estimate
            .feedback()
            .and_then(|feedback| feedback.warning())
            .map_or_else(
                || "it is a common password or pattern".to_owned(),
                |w| w.to_string().to_lowercase(),
            );
        return Err(PolicyViolation::Guessable(why));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn cheap() -> Passwords {
        let params = Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        Passwords::new(params, 2, 8).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashing_runs_on_the_configured_workers_at_a_lower_priority() {
        let params = Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let passwords = Passwords::new(params, 3, 8).unwrap();
        // Three jobs that finish only once all three run at once.
        let together = Arc::new(std::sync::Barrier::new(3));
        let jobs = (0..3).map(|_| {
            let together = together.clone();
            passwords.run(move || {
                together.wait();
                let name = std::thread::current().name().map(str::to_owned);
                // SAFETY: plain system calls on the calling thread's own id.
                let nice = unsafe {
                    *libc::__errno_location() = 0;
                    libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t)
                };
                Ok((name, nice))
            })
        });
        let ran = futures_util::future::try_join_all(jobs).await.unwrap();
        let mut names: Vec<_> = ran.iter().map(|(name, _)| name.clone().unwrap()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "gatehouse-argon2-0",
                "gatehouse-argon2-1",
                "gatehouse-argon2-2"
            ]
        );
        assert!(
            ran.iter().all(|(_, nice)| *nice == WORKER_NICENESS),
            "{ran:?}"
        );
    }

    /// A request cancelled while its hash waits in the queue: its place
    /// stays taken until a worker reaches the job, which it then skips; a
    /// later request waits for a place and is served.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_hash_keeps_its_place_until_a_worker_skips_it() {
        let params = Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let passwords = Passwords::with_wait(params, 1, 1, Duration::from_secs(30)).unwrap();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (started, running) = oneshot::channel::<()>();
        let first = tokio::spawn({
            let passwords = passwords.clone();
            async move {
                passwords
                    .run(move || {
                        let _ = started.send(());
                        released.recv().ok();
                        Ok(())
                    })
                    .await
            }
        });
        // The only worker is busy with it.
        running.await.unwrap();
        let skipped = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let cancelled = {
            let skipped = skipped.clone();
            passwords.run(move || {
                skipped.store(false, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            })
        };
        // Queued, then abandoned.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), cancelled)
                .await
                .is_err()
        );
        assert_eq!(
            passwords.in_flight(),
            2,
            "the abandoned job keeps its place"
        );
        let later = tokio::spawn({
            let passwords = passwords.clone();
            async move { passwords.run(|| Ok(())).await }
        });
        release.send(()).unwrap();
        first.await.unwrap().unwrap();
        later.await.unwrap().unwrap();
        assert!(
            skipped.load(std::sync::atomic::Ordering::SeqCst),
            "the abandoned hash never ran"
        );
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_no_other() {
        let passwords = cheap();
        let hash = passwords.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(
            passwords
                .verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !passwords
                .verify("Correct horse".into(), Some(hash))
                .await
                .unwrap()
        );
    }

    /// Made by argon2-cffi (the reference C implementation), with other
    /// parameters, lane counts and algorithms than the configured ones.
    const REFERENCE_HASHES: [&str; 3] = [
        "$argon2id$v=19$m=64,t=1,p=1$pzX0Ch0f5qaB8bJ6osSUww$P2tC6WZNSW+gAFdzhVufDWsMsL8lA/YZCA9itWi2EVs",
        "$argon2id$v=19$m=256,t=2,p=2$jbV+a6qNHYMmUBjE+HdKOA$nY2qqa5qA4olMGQS1psAxTD2UW6THkhtl+9GOObKIiE",
        "$argon2i$v=19$m=128,t=1,p=1$WXR2pQWv5Bk9BiuTBVD4eQ$rNt5HB/c/7nfX7ShHmVhF72ArbH/D1jWuwevID45duI",
    ];

    #[test]
    fn hashes_of_the_reference_implementation_verify_in_reused_memory_and_others_do_not() {
        let configured = |memory_kib| {
            let params = Params::new(memory_kib, 1, 1, None).unwrap();
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        };
        // Over and over in one thread's memory, larger and smaller blocks
        // in turn, right and wrong passwords alternating; configured for 64
        // KiB, the 256 KiB hash gets a block of its own.
        for memory_kib in [128, 64, 128] {
            let configured = configured(memory_kib);
            for stored in REFERENCE_HASHES {
                assert!(
                    verify_in_place(&configured, b"correct horse", stored),
                    "{stored}"
                );
                assert!(
                    !verify_in_place(&configured, b"correct horsf", stored),
                    "{stored}"
                );
            }
        }
        let configured = configured(128);
        let altered = REFERENCE_HASHES[0].replace("$P2t", "$Q2t");
        assert!(!verify_in_place(&configured, b"correct horse", &altered));
        assert!(!verify_in_place(
            &configured,
            b"correct horse",
            "$2b$12$a.bcrypt.hash"
        ));
        assert!(!verify_in_place(&configured, b"correct horse", ""));
    }

    #[tokio::test]
    async fn only_hashes_with_other_parameters_need_a_rehash() {
        let passwords = cheap();
        let hash = passwords.hash("correct horse".into()).await.unwrap();
        assert!(!passwords.needs_rehash(&hash));
        assert!(passwords.needs_rehash(&hash.replace("m=64,", "m=128,")));
        assert!(passwords.needs_rehash(&hash.replace("argon2id", "argon2i")));
        assert!(passwords.needs_rehash("$2b$12$a.bcrypt.hash.from.elsewhere"));
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        assert!(!cheap().verify("anything".into(), None).await.unwrap());
    }

    /// `len` ASCII characters with no pattern a guesser would find.
    fn varied(len: usize) -> String {
        (0..)
            .flat_map(|i: u32| {
                crate::ids::TokenHash::of(&i.to_string())
                    .as_str()
                    .as_bytes()
                    .to_vec()
            })
            .take(len)
            .map(char::from)
            .collect()
    }

    #[test]
    fn common_and_guessable_passwords_are_refused_with_the_reason() {
        for weak in [
            "password1",
            "qwertyuiop",
            "iloveyou123",
            "alicealice",
            "12345678",
            "aliceSmith1",
        ] {
            let verdict = check_policy(weak, "aliceSmith", 8);
            assert!(
                matches!(verdict, Err(PolicyViolation::Guessable(_))),
                "{weak}: {verdict:?}"
            );
        }
        assert_eq!(
            check_policy("correct horse battery staple", "alice", 8),
            Ok(())
        );
        assert_eq!(check_policy(&varied(1024), "alice", 8), Ok(()));
    }

    #[test]
    fn the_default_parameters_are_owasps() {
        let Argon2Params {
            memory_kib,
            iterations,
            parallelism,
        } = Argon2Params::default();
        assert_eq!((memory_kib, iterations, parallelism), (19_456, 2, 1));
    }

    #[test]
    fn the_policy_refuses_short_long_and_trivial_passwords() {
        assert_eq!(
            check_policy("short", "u", 8),
            Err(PolicyViolation::TooShort(8))
        );
        assert_eq!(
            check_policy(&"ab".repeat(513), "u", 8),
            Err(PolicyViolation::TooLong)
        );
        assert_eq!(
            check_policy("abcdefgh\0", "u", 8),
            Err(PolicyViolation::ControlCharacter)
        );
        assert_eq!(
            check_policy("AliceSmith", "alicesmith", 8),
            Err(PolicyViolation::SameAsUsername)
        );
        assert_eq!(
            check_policy("aaaaaaaaaa", "u", 8),
            Err(PolicyViolation::SingleCharacter)
        );
        // Eight characters, not eight bytes; 1024 bytes is still allowed.
        assert_eq!(
            check_policy("ééééééé", "u", 8),
            Err(PolicyViolation::TooShort(8))
        );
        assert_eq!(check_policy(&varied(1024), "u", 8), Ok(()));
        assert_eq!(check_policy("  spaced out  ", "u", 8), Ok(()));
    }
}
