//! A TCP forwarder between the application and a server (a private PostgreSQL, a RabbitMQ
//! node), for faults of the network rather than of the server: `freeze` turns it into a black
//! hole (connections stay open, no byte passes either way, as when a link or a firewall drops
//! every packet), `cut` closes every connection (as a reset would). It runs on a thread of its
//! own, so a test blocked on something else cannot stall the bytes it forwards.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct TcpProxy {
    port: u16,
    frozen: Arc<watch::Sender<bool>>,
    /// Bumped by `cut`: every connection open at that moment closes.
    cuts: Arc<watch::Sender<u64>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TcpProxy {
    /// Listens on a free port of 127.0.0.1 and forwards each connection to `target`.
    pub fn start(target: SocketAddr) -> std::io::Result<TcpProxy> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let port = std_listener.local_addr()?.port();
        let frozen = Arc::new(watch::channel(false).0);
        let cuts = Arc::new(watch::channel(0u64).0);
        let (shutdown, mut shutdown_rx) = tokio::sync::oneshot::channel();
        let (f, c) = (frozen.clone(), cuts.clone());
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
                                tokio::spawn(forward(client, target, f.clone(), c.clone()));
                            }
                        }
                    }
                });
                // Dropping the runtime drops every connection task, closing their sockets.
            })?;
        Ok(TcpProxy {
            port,
            frozen,
            cuts,
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

    /// No more bytes pass, either way, on any connection (new ones are accepted and hang too);
    /// nothing is closed.
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Bytes flow again; what the kernel buffered while frozen is delivered.
    pub fn thaw(&self) {
        self.frozen.send_replace(false);
    }

    /// Closes every connection open now (both sides see the close); new ones are forwarded.
    pub fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
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

/// Copies both ways until either side closes or the connection is cut.
async fn forward(
    client: TcpStream,
    target: SocketAddr,
    frozen: Arc<watch::Sender<bool>>,
    cuts: Arc<watch::Sender<u64>>,
) {
    let mut cut = cuts.subscribe();
    cut.mark_unchanged();
    // A frozen proxy does not even connect onwards: a new connection hangs like the others.
    if wait_thawed(&mut frozen.subscribe()).await.is_none() {
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
        _ = pump(cr, sw, frozen.subscribe()) => {}
        _ = pump(sr, cw, frozen.subscribe()) => {}
        _ = cut.changed() => {}
    }
    // Dropping the halves closes both sockets.
}

/// One direction: reads a chunk, waits while frozen, writes it.
async fn pump(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    mut frozen: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if wait_thawed(&mut frozen).await.is_none() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Frozen while the read was pending: hold the bytes until thawed.
        if wait_thawed(&mut frozen).await.is_none() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Returns once not frozen; None when the proxy is gone.
async fn wait_thawed(frozen: &mut watch::Receiver<bool>) -> Option<()> {
    frozen.wait_for(|f| !*f).await.ok().map(|_| ())
}
