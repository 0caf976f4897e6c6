//! The hashing pool: workers, queue, cancellation, rehash, verify.

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

#[test]
fn the_default_parameters_are_owasps() {
    let Argon2Params {
        memory_kib,
        iterations,
        parallelism,
    } = Argon2Params::default();
    assert_eq!((memory_kib, iterations, parallelism), (19_456, 2, 1));
}

/// Issue 20, item 9: an account whose hash predates a cost increase must
/// not answer a wrong password faster than an unknown user does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_for_an_outdated_hash_takes_as_long_as_the_current_parameters() {
    let current = Argon2Params {
        memory_kib: 8 * 1024,
        iterations: 3,
        parallelism: 1,
    };
    let passwords = Passwords::new(current, 2, 8).unwrap();
    let old = cheap()
        .hash("old password".to_owned().into())
        .await
        .unwrap();
    assert!(passwords.needs_rehash(&old));
    // The unknown user's verify, with the current parameters.
    let started = std::time::Instant::now();
    assert!(
        !passwords
            .verify("guess".to_owned().into(), None)
            .await
            .unwrap()
    );
    let unknown = started.elapsed();
    let floor = passwords.current_verify_time();
    let started = std::time::Instant::now();
    let refused = passwords
        .verify("guess".to_owned().into(), Some(old.clone()))
        .await
        .unwrap();
    assert!(!refused);
    let outdated = started.elapsed();
    // The guarantee (a wait, not a measurement): no sooner than the floor.
    assert!(
        outdated >= floor,
        "{outdated:?} < {floor:?} (unknown: {unknown:?})"
    );
    // A right password is not held back.
    assert!(
        passwords
            .verify("old password".to_owned().into(), Some(old))
            .await
            .unwrap()
    );
}
