//! The mock Cloud API's HTTP server: HTTP/1.1 and HTTP/2 (prior knowledge, as a client speaks
//! it to an `http://` address) on each connection, on the caller's runtime or on a thread of
//! its own, until stopped; stopping drops the connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Behaviour;

/// Streams one HTTP/2 connection may carry at once by default: more than any sender's
/// concurrency, so the mock never queues a send the way hyper's default of 200 would.
pub const MAX_STREAMS: u32 = 16_384;

enum Running {
    Task(tokio::task::JoinHandle<()>),
    Thread(std::thread::JoinHandle<()>),
}

pub(super) struct Server {
    pub url: String,
    stop: CancellationToken,
    running: Running,
}

impl Server {
    pub async fn start(
        app: Router,
        behaviour: &Behaviour,
        connections: Arc<AtomicU64>,
    ) -> anyhow::Result<Server> {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("binding the mock Cloud API")?;
        listener.set_nonblocking(true)?;
        let url = format!("http://{}", listener.local_addr()?);
        let stop = CancellationToken::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http2()
            .max_concurrent_streams(behaviour.max_streams);
        let serving = serve(listener, app, builder, connections, stop.clone());
        let running = if behaviour.own_thread {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("a runtime for the mock Cloud API")?;
            Running::Thread(std::thread::spawn(move || runtime.block_on(serving)))
        } else {
            Running::Task(tokio::spawn(serving))
        };
        Ok(Server { url, stop, running })
    }

    pub async fn stop(self) {
        self.stop.cancel();
        match self.running {
            Running::Task(handle) => {
                let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;
            }
            Running::Thread(handle) => {
                let _ = tokio::task::spawn_blocking(move || handle.join()).await;
            }
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    app: Router,
    builder: auto::Builder<TokioExecutor>,
    accepted: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => break,
            accept = listener.accept() => match accept {
                Ok((stream, _)) => stream,
                // Out of file descriptors, say: give the connections a moment to close.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        accepted.fetch_add(1, Ordering::SeqCst);
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        connections.spawn(async move {
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        // Reap finished connections so the set does not grow with every one ever accepted.
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
}
