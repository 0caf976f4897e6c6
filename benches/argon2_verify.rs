//! Argon2id verifies with the production parameters (m=19456 KiB, t=2,
//! p=1), through Gatehouse's own hasher: the mean time of one verify
//! alone, and how many verifies per second one worker per core completes
//! together (cores share caches and memory bandwidth, so this is below
//! `cores / one verify`). Prints `<ms> <per second>` on one line, and
//! nothing else, so `bench/suite.sh` can read it.
//!
//! `cargo bench --bench argon2_verify`

use std::time::Instant;

use gatehouse::auth::password::{Argon2Params, Passwords};
use secrecy::SecretString;

const VERIFIES: u32 = 20;

fn password() -> SecretString {
    SecretString::from("correct horse battery staple")
}

#[tokio::main]
async fn main() {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let alone = Passwords::new(Argon2Params::default(), 1, 1).expect("production parameters");
    let stored = alone.hash(password()).await.expect("a hash");
    // One unmeasured: the worker's first use of its memory block.
    assert!(
        alone
            .verify(password(), Some(stored.clone()))
            .await
            .expect("a verify")
    );
    let started = Instant::now();
    for _ in 0..VERIFIES {
        assert!(
            alone
                .verify(password(), Some(stored.clone()))
                .await
                .expect("a verify")
        );
    }
    let millis = started.elapsed().as_secs_f64() * 1000.0 / f64::from(VERIFIES);

    let together = Passwords::new(Argon2Params::default(), cores, cores).expect("parameters");
    let verify_all = |count: usize| {
        let handles: Vec<_> = (0..count)
            .map(|_| {
                let (together, stored) = (together.clone(), stored.clone());
                tokio::spawn(async move { together.verify(password(), Some(stored)).await })
            })
            .collect();
        async move {
            for handle in handles {
                assert!(handle.await.expect("a task").expect("a verify"));
            }
        }
    };
    verify_all(cores).await;
    let count = cores * VERIFIES as usize;
    let started = Instant::now();
    for _ in 0..VERIFIES {
        verify_all(cores).await;
    }
    let per_second = count as f64 / started.elapsed().as_secs_f64();
    println!("{millis:.2} {per_second:.1}");
}
