//! The hashing threads: a fixed set at a lower priority, each verifying in
//! one memory block of its own.

use std::cell::RefCell;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// A hash (or verification) to run on a hashing thread.
pub(super) type Job = Box<dyn FnOnce() + Send>;

/// How much less priority hashing threads get than the rest (a nice value:
/// the scheduler gives a thread at +10 about a tenth of the CPU of one at
/// 0 when both want it).
pub(super) const WORKER_NICENESS: i32 = 10;

thread_local! {
    // The hashing thread's verify memory (see the module's description).
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Whether `password` hashes to `stored` (a PHC string) with the stored
/// string's own algorithm, version and parameters, in this thread's reused
/// memory; compared in constant time. A stored hash that does not parse is
/// a mismatch. One whose parameters need more than twice the configured
/// memory (an old, costlier setting) gets a block of its own, freed after.
pub(super) fn verify_in_place(configured: &Argon2<'_>, password: &[u8], stored: &str) -> bool {
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
pub(super) fn start_workers(count: usize, bound: usize) -> SyncSender<Job> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
