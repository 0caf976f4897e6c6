//! Password hashing (Argon2id) and the password policy.
//!
//! Hashing is CPU- and memory-bound (19 MiB per hash by default), so it runs
//! on the blocking pool behind a semaphore sized to the cores: the async
//! threads keep serving while at most one hash per core is in flight.

use std::sync::Arc;

use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

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
    #[error("every core is hashing and the queue is full")]
    Busy,
}

/// Hashes and verifies passwords off the async threads.
#[derive(Clone)]
pub struct Passwords {
    argon2: Argon2<'static>,
    /// One per core: the hashes running at once.
    permits: Arc<Semaphore>,
    /// Cores plus the queue bound: the hashes running or waiting. A request
    /// past it is refused at once (503) rather than piling up.
    admitted: Arc<Semaphore>,
    capacity: usize,
    /// A hash of a random password, verified against when the user is
    /// unknown so that the answer takes as long as for a wrong password.
    dummy_hash: Arc<str>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("permits", &self.permits.available_permits())
            .finish()
    }
}

impl Passwords {
    /// Builds the hasher; computes the dummy hash once (blocking, ~one hash).
    /// At most one hash per core runs at once, and at most `queue` more wait.
    pub fn new(params: Argon2Params, queue: usize) -> Result<Self, HashError> {
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
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(Self {
            argon2,
            permits: Arc::new(Semaphore::new(cores)),
            admitted: Arc::new(Semaphore::new(cores + queue)),
            capacity: cores + queue,
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
                Ok(argon2
                    .verify_password(password.expose_secret().as_bytes(), &*hash)
                    .is_ok())
            })
            .await?;
        Ok(known && matches)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let _admitted = self.admitted.try_acquire().map_err(|_| HashError::Busy)?;
        // The semaphore is never closed, so acquiring cannot fail.
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("password semaphore is never closed");
        tokio::task::spawn_blocking(work).await?
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
    use super::*;

    fn cheap() -> Passwords {
        let params = Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        Passwords::new(params, 8).unwrap()
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
            .flat_map(|i: u32| crate::auth::refresh::hash(&i.to_string()).into_bytes())
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
