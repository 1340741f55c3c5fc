//! A TCP proxy a test controls, to take a service away from one process without touching the
//! service itself: point the process at the proxy, then
//! - `cut`: every connection closed and new ones refused until `restore` (a service that went
//!   down, as far as this process can tell);
//! - `reset`: every connection open now closed, new ones forwarded (a reset on the way);
//! - `freeze`: no byte passes either way and nothing is closed, new connections hang too (a
//!   black hole: a link or a firewall dropping every packet), until `thaw`;
//! - `drop_answers`: what the process sends still reaches the service, what the service answers
//!   is thrown away (a connection that dies on the way back), until `restore`.
//!
//! It runs on a thread of its own, so a test blocked on something else cannot stall the bytes it
//! forwards.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Open,
    Cut,
    Frozen,
    DropAnswers,
}

pub struct TcpProxy {
    port: u16,
    mode: watch::Sender<Mode>,
    /// Bumped to close every connection open at that moment.
    closes: watch::Sender<u64>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TcpProxy {
    /// Listens on a free port of 127.0.0.1 and forwards each connection to `target`
    /// (`host:port`, resolved once now).
    pub fn start(target: &str) -> std::io::Result<TcpProxy> {
        let target: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(target)?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("{target} resolves to nothing")))?;
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let port = std_listener.local_addr()?.port();
        let mode = watch::channel(Mode::Open).0;
        let closes = watch::channel(0u64).0;
        let (shutdown, mut shutdown_rx) = oneshot::channel();
        let (m, c) = (mode.clone(), closes.clone());
        let thread = std::thread::Builder::new()
            .name("tcp-proxy".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tcp-proxy runtime");
                rt.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).expect("tcp-proxy listener");
                    loop {
                        tokio::select! {
                            _ = &mut shutdown_rx => break,
                            accepted = listener.accept() => {
                                let Ok((client, _)) = accepted else { continue };
                                if *m.borrow() == Mode::Cut {
                                    continue;
                                }
                                tokio::spawn(forward(client, target, m.subscribe(), c.subscribe()));
                            }
                        }
                    }
                });
                // Dropping the runtime drops every connection task, closing their sockets.
            })?;
        Ok(TcpProxy {
            port,
            mode,
            closes,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, where clients connect instead of the target.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Closes every connection and refuses new ones until `restore`.
    pub fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
        self.closes.send_modify(|n| *n += 1);
    }

    /// Closes every connection open now (both sides see the close); new ones are forwarded.
    pub fn reset(&self) {
        self.closes.send_modify(|n| *n += 1);
    }

    /// No more bytes pass, either way, on any connection; nothing is closed.
    pub fn freeze(&self) {
        self.mode.send_replace(Mode::Frozen);
    }

    /// Bytes flow again; what the kernel buffered while frozen is delivered.
    pub fn thaw(&self) {
        self.mode.send_replace(Mode::Open);
    }

    /// Keeps forwarding what clients send but discards what the service answers.
    pub fn drop_answers(&self) {
        self.mode.send_replace(Mode::DropAnswers);
    }

    /// Forwards both ways again, whatever the proxy was doing. Connections that lost answers are
    /// closed first: a stream with bytes missing from its middle cannot be resumed.
    pub fn restore(&self) {
        if self.mode.send_replace(Mode::Open) == Mode::DropAnswers {
            self.closes.send_modify(|n| *n += 1);
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copies both ways until either side closes or the connection is closed by the test.
async fn forward(
    client: TcpStream,
    target: SocketAddr,
    mut mode: watch::Receiver<Mode>,
    mut closes: watch::Receiver<u64>,
) {
    closes.mark_unchanged();
    // A frozen proxy does not even connect onwards: a new connection hangs like the others.
    if wait_thawed(&mut mode).await.is_none() {
        return;
    }
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    tokio::select! {
        _ = pump(cr, sw, mode.clone(), false) => {}
        _ = pump(sr, cw, mode, true) => {}
        _ = closes.changed() => {}
    }
    // Dropping the halves closes both sockets.
}

/// One direction: reads a chunk, waits while frozen, writes it (or, for answers while they are
/// being dropped, throws it away).
async fn pump(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    mut mode: watch::Receiver<Mode>,
    answers: bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if wait_thawed(&mut mode).await.is_none() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Frozen while the read was pending: hold the bytes until thawed.
        if wait_thawed(&mut mode).await.is_none() {
            return;
        }
        if answers && *mode.borrow() == Mode::DropAnswers {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Returns once not frozen; None when the proxy is gone.
async fn wait_thawed(mode: &mut watch::Receiver<Mode>) -> Option<()> {
    mode.wait_for(|m| *m != Mode::Frozen).await.ok().map(|_| ())
}
