//! One Argon2id verify with the production parameters (m=19456 KiB, t=2,
//! p=1), through Gatehouse's own hasher: the machine's login ceiling is
//! `cores / this time`. Prints the mean in milliseconds, and nothing else,
//! so `bench/suite.sh` can read it.
//!
//! `cargo bench --bench argon2_verify`

use std::time::Instant;

use gatehouse::auth::password::{Argon2Params, Passwords};
use secrecy::SecretString;

const VERIFIES: u32 = 20;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let passwords = Passwords::new(Argon2Params::default(), 1, 1).expect("production parameters");
    let password = || SecretString::from("correct horse battery staple");
    let stored = passwords.hash(password()).await.expect("a hash");
    // One unmeasured: the first allocation of the 19 MiB block.
    assert!(
        passwords
            .verify(password(), Some(stored.clone()))
            .await
            .expect("a verify")
    );
    let started = Instant::now();
    for _ in 0..VERIFIES {
        assert!(
            passwords
                .verify(password(), Some(stored.clone()))
                .await
                .expect("a verify")
        );
    }
    let millis = started.elapsed().as_secs_f64() * 1000.0 / f64::from(VERIFIES);
    println!("{millis:.2}");
}
