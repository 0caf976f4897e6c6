//! Introspection's reads of whether a session is live, gathered: each
//! lookup is answered by a database read that *starts after it was asked*
//! (so a revocation committed before the question is always seen), and the
//! lookups that arrive while reads are under way share the next read, one
//! statement for many sessions. Under load a resource server's
//! introspections cost the database a statement per batch, not one each;
//! alone, a lookup goes straight to the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::clock::Clock;
use crate::ids::SessionId;
use crate::store::{Account, OwnConnections, Store};

/// Reads under way at most; further lookups wait for the next batch. One:
/// batches are then largest (measured: more introspections per second than
/// with two, on both stores), and a read is bounded by `--db-timeout`.
const READS_IN_FLIGHT: usize = 1;
/// Sessions one statement reads at most.
const BATCH: usize = 64;

/// The gatherer; see the module's documentation.
#[derive(Debug)]
pub struct LiveSessionReads {
    /// A connection per reader, outside the pool (no ping before each read).
    connections: OwnConnections,
    clock: Arc<dyn Clock>,
    queue: Mutex<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    waiting: Vec<Lookup>,
    /// Reader tasks running.
    readers: usize,
}

#[derive(Debug)]
struct Lookup {
    session: SessionId,
    answer: oneshot::Sender<Result<Option<Account>, sqlx::Error>>,
}

impl LiveSessionReads {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(Self {
            connections: store.own_connections(READS_IN_FLIGHT),
            clock,
            queue: Mutex::default(),
        })
    }

    /// The owner of `session` if it is live, its account enabled, as a read
    /// begun after this call says.
    pub async fn owner(
        self: &Arc<Self>,
        session: &SessionId,
    ) -> Result<Option<Account>, sqlx::Error> {
        let (answer, answered) = oneshot::channel();
        let start_reader = {
            let mut queue = self.lock();
            queue.waiting.push(Lookup {
                session: session.clone(),
                answer,
            });
            let start = queue.readers < READS_IN_FLIGHT;
            if start {
                queue.readers += 1;
            }
            start
        };
        if start_reader {
            // A task of its own: a lookup whose request is dropped does not
            // take the batch it was reading for others with it.
            tokio::spawn(Reader::new(self.clone()).run());
        }
        // A reader that vanished (a panic) leaves the question unanswered:
        // the database's answer is unknown, which is a 503, never a guess.
        answered.await.unwrap_or(Err(sqlx::Error::WorkerCrashed))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One reader task: reads batches until none waits. Its slot in
/// `readers` is given back in the same critical section that finds the
/// queue empty (so no lookup is left waiting without a reader), or on drop
/// if the task ends otherwise.
struct Reader {
    reads: Arc<LiveSessionReads>,
    done: bool,
}

impl Reader {
    fn new(reads: Arc<LiveSessionReads>) -> Self {
        Self { reads, done: false }
    }

    async fn run(mut self) {
        loop {
            let batch = {
                let mut queue = self.reads.lock();
                if queue.waiting.is_empty() {
                    queue.readers -= 1;
                    self.done = true;
                    return;
                }
                let take = queue.waiting.len().min(BATCH);
                queue.waiting.drain(..take).collect::<Vec<_>>()
            };
            let mut sessions = batch
                .iter()
                .map(|lookup| lookup.session.clone())
                .collect::<Vec<_>>();
            sessions.sort_unstable();
            sessions.dedup();
            // Taken now, after every lookup in the batch was asked.
            let now = self.reads.clock.now();
            let read = self
                .reads
                .connections
                .live_session_owners(&sessions, now)
                .await;
            match read {
                Ok(owners) => {
                    let owners = owners.into_iter().collect::<HashMap<_, _>>();
                    for lookup in batch {
                        let owner = owners.get(&lookup.session).cloned();
                        let _ = lookup.answer.send(Ok(owner));
                    }
                }
                Err(err) => {
                    for lookup in batch {
                        let _ = lookup.answer.send(Err(copy_of(&err)));
                    }
                }
            }
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if !self.done {
            self.reads.lock().readers -= 1;
        }
    }
}

/// The same failure for another waiter (`sqlx::Error` is not `Clone`):
/// one the database could not answer stays a 503, any other a 500.
fn copy_of(err: &sqlx::Error) -> sqlx::Error {
    let text = std::io::Error::other(err.to_string());
    if crate::error::database_unavailable(err) {
        sqlx::Error::Io(text)
    } else {
        sqlx::Error::Decode(Box::new(text))
    }
}
