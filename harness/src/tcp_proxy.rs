//! A TCP proxy a test controls, to take a service away from one process without touching the
//! service every other test shares: point the process at the proxy, then `cut` (every
//! connection closed, new ones refused, as a broker that went down), `drop_answers` (what the
//! process sends still reaches the service, what the service answers is thrown away, as a
//! connection that dies on the way back) and `restore`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const OPEN: u8 = 0;
const CUT: u8 = 1;
const DROP_ANSWERS: u8 = 2;

pub struct TcpProxy {
    /// `127.0.0.1:<port>` to connect to instead of the service.
    pub address: String,
    mode: Arc<AtomicU8>,
    /// Bumped on every `cut`, so the live connections close.
    cuts: watch::Sender<u64>,
    stop: CancellationToken,
}

impl TcpProxy {
    /// Starts forwarding connections to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> anyhow::Result<TcpProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let mode = Arc::new(AtomicU8::new(OPEN));
        let (cuts, _) = watch::channel(0u64);
        let stop = CancellationToken::new();
        tokio::spawn(accept(
            listener,
            upstream.to_string(),
            mode.clone(),
            cuts.clone(),
            stop.clone(),
        ));
        Ok(TcpProxy {
            address,
            mode,
            cuts,
            stop,
        })
    }

    /// Closes every connection and refuses new ones until `restore`.
    pub fn cut(&self) {
        self.mode.store(CUT, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Keeps forwarding what clients send but discards what the service answers.
    pub fn drop_answers(&self) {
        self.mode.store(DROP_ANSWERS, Ordering::SeqCst);
    }

    /// Forwards both ways again. Connections that lost answers are closed first: a stream with
    /// bytes missing from its middle cannot be resumed.
    pub fn restore(&self) {
        if self.mode.swap(OPEN, Ordering::SeqCst) == DROP_ANSWERS {
            self.cuts.send_modify(|n| *n += 1);
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cuts.send_modify(|n| *n += 1);
    }
}

async fn accept(
    listener: TcpListener,
    upstream: String,
    mode: Arc<AtomicU8>,
    cuts: watch::Sender<u64>,
    stop: CancellationToken,
) {
    loop {
        let client = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => client,
                Err(_) => continue,
            },
        };
        if mode.load(Ordering::SeqCst) == CUT {
            drop(client);
            continue;
        }
        let Ok(server) = TcpStream::connect(&upstream).await else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let mut cut = cuts.subscribe();
        cut.mark_unchanged();
        let mode = mode.clone();
        tokio::spawn(async move {
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            let outbound = async {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = client_read.read(&mut buf).await?;
                    if n == 0 {
                        return Ok::<(), std::io::Error>(());
                    }
                    server_write.write_all(&buf[..n]).await?;
                }
            };
            let inbound = async {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = server_read.read(&mut buf).await?;
                    if n == 0 {
                        return Ok::<(), std::io::Error>(());
                    }
                    if mode.load(Ordering::SeqCst) == DROP_ANSWERS {
                        continue;
                    }
                    client_write.write_all(&buf[..n]).await?;
                }
            };
            // Whichever ends first (either side closing, or a cut) drops both halves of both
            // sockets, closing the connection on both sides.
            tokio::select! {
                _ = outbound => {}
                _ = inbound => {}
                _ = cut.changed() => {}
            }
        });
    }
}
