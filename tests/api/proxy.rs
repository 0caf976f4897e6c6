//! A TCP proxy between the app and the MySQL server that can fail on
//! command: pass, refuse new connections, reset every connection, black-hole
//! (accept and never answer), or lose the answers to COMMIT. Faults are
//! injected here, never on the shared server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How the proxy treats traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything.
    None,
    /// Close new connections at once.
    Refuse,
    /// Accept and forward nothing, either way, on every connection.
    BlackHole,
    /// Forward everything, but never the answer to a `COMMIT` (nor anything
    /// after it on that connection): the transaction commits, the client
    /// never learns it.
    LoseCommitAnswers,
    /// Answer the next `COMMIT` itself with a deadlock error (1213), as a
    /// cluster does for a certification failure, without forwarding it;
    /// then forward everything again.
    AbortNextCommit,
}

#[derive(Debug, Clone, Copy)]
struct State {
    fault: Fault,
    /// Bumped to close every open connection.
    epoch: u64,
}

/// A running proxy; it stops with the test's runtime.
pub struct DbProxy {
    addr: SocketAddr,
    state: Arc<watch::Sender<State>>,
}

impl DbProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().unwrap();
        let (state, watcher) = watch::channel(State {
            fault: Fault::None,
            epoch: 0,
        });
        let state = Arc::new(state);
        let control = state.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, upstream, control.clone(), watcher.clone()));
            }
        });
        Self { addr, state }
    }

    /// `host:port` to connect to instead of the server.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Fails traffic from now on as `fault`; connections open now stay open.
    pub fn inject(&self, fault: Fault) {
        self.state.send_modify(|state| state.fault = fault);
    }

    /// Closes every open connection (mid-statement, mid-COMMIT, idle).
    pub fn reset(&self) {
        self.state.send_modify(|state| state.epoch += 1);
    }

    /// Forwards everything again. Connections that lived through a fault
    /// are closed: what they swallowed left them out of step.
    pub fn heal(&self) {
        self.state.send_modify(|state| {
            state.fault = Fault::None;
            state.epoch += 1;
        });
    }
}

async fn serve(
    client: TcpStream,
    upstream: SocketAddr,
    control: Arc<watch::Sender<State>>,
    mut state: watch::Receiver<State>,
) {
    let State { fault, epoch } = *state.borrow_and_update();
    match fault {
        Fault::Refuse => return,
        Fault::BlackHole => return closed(&mut state, epoch).await,
        Fault::None | Fault::LoseCommitAnswers | Fault::AbortNextCommit => {}
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    // Set once a COMMIT went through while answers to it are lost.
    let answers_lost = Arc::new(AtomicBool::new(false));
    let (mut from_client, to_client) = client.into_split();
    let to_client = Arc::new(tokio::sync::Mutex::new(to_client));
    let (mut from_server, mut to_server) = server.into_split();
    let requests = {
        let (state, answers_lost) = (state.clone(), answers_lost.clone());
        let (control, to_client) = (control.clone(), to_client.clone());
        async move {
            let mut buf = vec![0; 64 * 1024];
            while let Ok(n @ 1..) = from_client.read(&mut buf).await {
                let fault = state.borrow().fault;
                match fault {
                    Fault::BlackHole => continue,
                    Fault::LoseCommitAnswers if is_commit(&buf[..n]) => {
                        answers_lost.store(true, Ordering::SeqCst);
                    }
                    Fault::AbortNextCommit if is_commit(&buf[..n]) && take_abort(&control) => {
                        if to_client
                            .lock()
                            .await
                            .write_all(&deadlock_packet())
                            .await
                            .is_err()
                        {
                            return;
                        }
                        continue;
                    }
                    _ => {}
                }
                if to_server.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    };
    let answers = {
        let state = state.clone();
        async move {
            let mut buf = vec![0; 64 * 1024];
            while let Ok(n @ 1..) = from_server.read(&mut buf).await {
                if state.borrow().fault == Fault::BlackHole || answers_lost.load(Ordering::SeqCst) {
                    continue;
                }
                if to_client.lock().await.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    };
    // Whichever ends first closes both sides.
    tokio::select! {
        () = requests => {}
        () = answers => {}
        () = closed(&mut state, epoch) => {}
    }
}

/// Until the proxy closes the connections of `epoch` (or stops).
async fn closed(state: &mut watch::Receiver<State>, epoch: u64) {
    while state.borrow_and_update().epoch == epoch {
        if state.changed().await.is_err() {
            return;
        }
    }
}

/// Whether `chunk` (client to server) is a `COM_QUERY` that commits: a
/// `COMMIT`, or a script of statements whose last is `COMMIT`.
fn is_commit(chunk: &[u8]) -> bool {
    chunk.get(4) == Some(&0x03) && chunk.ends_with(b"COMMIT")
}

/// The ERR packet MySQL answers a deadlock with: error 1213, SQLSTATE
/// 40001, as the answer (sequence 1) to a one-packet command.
fn deadlock_packet() -> Vec<u8> {
    let mut payload = vec![0xff];
    payload.extend_from_slice(&1213u16.to_le_bytes());
    payload.extend_from_slice(b"#40001");
    payload
        .extend_from_slice(b"Deadlock found when trying to get lock; try restarting transaction");
    let length = u32::try_from(payload.len()).unwrap().to_le_bytes();
    let mut packet = vec![length[0], length[1], length[2], 1];
    packet.extend(payload);
    packet
}

/// Whether this connection is the one whose COMMIT is aborted: only the
/// first to ask, after which the proxy forwards everything again.
fn take_abort(control: &watch::Sender<State>) -> bool {
    control.send_if_modified(|state| {
        let take = state.fault == Fault::AbortNextCommit;
        if take {
            state.fault = Fault::None;
        }
        take
    })
}
