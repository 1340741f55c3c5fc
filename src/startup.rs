//! Builds and runs the application: any mix of roles (producer, sender, tracker, API) in one
//! process, sharing one database pool, one broker connection and one metrics registry, and
//! stopping cleanly on one `CancellationToken` (SIGINT/SIGTERM in `reminder run`).

use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::configuration::Settings;
use crate::context::AppContext;
use crate::metrics::Metrics;
use crate::producer::Producer;
use crate::sender::{Sender, providers};
use crate::tracker::Tracker;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Role {
    /// Every role below.
    All,
    /// Daily scan that publishes maintenance.due events.
    Producer,
    /// Sends WhatsApp messages and publishes message.sent / message.failed.
    Sender,
    /// Counts message events into the report.
    Tracker,
    /// The read-only HTTP API and dashboard.
    Api,
    /// Hears the provider's delivery statuses and customers' replies (`webhook.bind`).
    Webhook,
}

impl Role {
    /// Expands `all` (and an empty list) into every role, without duplicates; `all` includes
    /// the webhook role only when `webhook_on` (`webhook.bind` is set).
    pub fn expand(roles: &[Role], webhook_on: bool) -> Vec<Role> {
        let every = [
            Role::Producer,
            Role::Sender,
            Role::Tracker,
            Role::Api,
            Role::Webhook,
        ];
        if roles.is_empty() || roles.contains(&Role::All) {
            return every
                .into_iter()
                .filter(|r| *r != Role::Webhook || webhook_on || roles.contains(r))
                .collect();
        }
        every.into_iter().filter(|r| roles.contains(r)).collect()
    }
    pub fn name(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Producer => "producer",
            Role::Sender => "sender",
            Role::Tracker => "tracker",
            Role::Api => "api",
            Role::Webhook => "webhook",
        }
    }
}

/// Connects the shared parts: migrations (unless disabled), the pool and the broker supervisor.
/// The broker stays up until `broker_shutdown` is cancelled.
pub async fn connect(
    settings: Settings,
    name: &str,
    broker_shutdown: CancellationToken,
) -> anyhow::Result<AppContext> {
    let pool = if settings.database.migrate_on_start {
        crate::db::migrate(&settings.database).await?
    } else {
        crate::db::check_connect(&settings.database).await?;
        crate::db::pool(&settings.database)?
    };
    let broker = Broker::start(&settings.amqp, name, broker_shutdown);
    Ok(AppContext {
        settings: Arc::new(settings),
        pool,
        broker,
        metrics: Metrics::new(),
    })
}

/// A process running some roles.
pub struct Application {
    ctx: AppContext,
    roles: Vec<Role>,
    listener: Option<TcpListener>,
    webhook_listener: Option<TcpListener>,
    /// `http.metrics_bind`, for a process without the api role.
    operations_listener: Option<TcpListener>,
    broker_shutdown: CancellationToken,
}

impl Application {
    pub async fn build(settings: Settings, roles: &[Role]) -> anyhow::Result<Application> {
        let webhook_bind = settings.webhook.socket_addr()?;
        let roles = Role::expand(roles, webhook_bind.is_some());
        let webhook_listener = if roles.contains(&Role::Webhook) {
            let addr = webhook_bind.ok_or_else(|| crate::configuration::ConfigError::Invalid {
                key: "webhook.bind",
                message: "must be set to run the webhook role".into(),
            })?;
            Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (webhook.bind)"))?,
            )
        } else {
            None
        };
        let listener = if roles.contains(&Role::Api) {
            settings.http.check_public_token()?;
            let addr = settings.http.socket_addr()?;
            Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (http.bind)"))?,
            )
        } else {
            None
        };
        let operations_listener = match settings.http.metrics_socket_addr()? {
            Some(addr) if !roles.contains(&Role::Api) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (http.metrics_bind)"))?,
            ),
            _ => None,
        };
        let names: Vec<&str> = roles.iter().map(|r| r.name()).collect();
        let broker_shutdown = CancellationToken::new();
        let ctx = connect(
            settings,
            &format!("reminder {}", names.join("+")),
            broker_shutdown.clone(),
        )
        .await?;
        Ok(Application {
            ctx,
            roles,
            listener,
            webhook_listener,
            operations_listener,
            broker_shutdown,
        })
    }

    /// The port the webhook role listens on, when it runs.
    pub fn webhook_port(&self) -> Option<u16> {
        self.webhook_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port())
    }

    pub fn context(&self) -> &AppContext {
        &self.ctx
    }

    /// The port the API listens on, when it runs.
    pub fn port(&self) -> Option<u16> {
        self.listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port())
    }

    /// The port of `http.metrics_bind`, when this process serves it (no api role).
    pub fn metrics_port(&self) -> Option<u16> {
        self.operations_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port())
    }

    /// Runs the roles until `shutdown`, then gives in-flight work
    /// `runtime.shutdown_timeout_secs` to finish and closes the broker connection.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Application {
            ctx,
            roles,
            mut listener,
            mut webhook_listener,
            operations_listener,
            broker_shutdown,
        } = self;
        let operations = operations_listener.map(|l| {
            tokio::spawn(crate::api::serve_operations(
                ctx.clone(),
                l,
                shutdown.clone(),
            ))
        });
        let mut tasks: JoinSet<(Role, anyhow::Result<()>)> = JoinSet::new();
        for role in &roles {
            let ctx = ctx.clone();
            let shutdown = shutdown.clone();
            let role = *role;
            match role {
                Role::Producer => {
                    ctx.metrics.init_producer();
                    let producer = Arc::new(Producer::new(ctx)?);
                    tasks.spawn(async move { (role, producer.run_scheduled(shutdown).await) });
                }
                Role::Sender => {
                    let provider = providers::from_settings(&ctx.settings.whatsapp)?;
                    ctx.metrics.init_sender(provider.name());
                    let sender = Arc::new(Sender::new(ctx, provider)?);
                    tasks.spawn(async move { (role, sender.run(shutdown).await) });
                }
                Role::Tracker => {
                    ctx.metrics.init_tracker();
                    let tracker = Arc::new(Tracker::new(ctx));
                    tasks.spawn(async move { (role, tracker.run(shutdown).await) });
                }
                Role::Api => {
                    let listener = listener.take().context("the API listener was not bound")?;
                    tasks.spawn(
                        async move { (role, crate::api::serve(ctx, listener, shutdown).await) },
                    );
                }
                Role::Webhook => {
                    let listener = webhook_listener
                        .take()
                        .context("the webhook listener was not bound")?;
                    tasks.spawn(async move {
                        (role, crate::webhook::serve(ctx, listener, shutdown).await)
                    });
                }
                Role::All => unreachable!("expanded"),
            }
        }
        let mut failure = None;
        let grace = ctx.settings.runtime.shutdown_timeout() + std::time::Duration::from_secs(5);
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let timeout = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled(), if deadline.is_none() => {
                    tracing::info!("shutting down: finishing in-flight work");
                    deadline = Some(tokio::time::Instant::now() + grace);
                }
                // Its own branch, so a time-out (a frozen broker, say) is never mistaken for
                // "no task left" and always ends the process with this warning.
                _ = timeout => {
                    tracing::warn!(
                        "shutdown timeout reached; abandoning unfinished work (it will be redelivered)"
                    );
                    tasks.abort_all();
                    break;
                }
                joined = tasks.join_next() => match joined {
                    None => break,
                    Some(Ok((role, Ok(())))) => {
                        tracing::info!(role = role.name(), "stopped");
                    }
                    Some(Ok((role, Err(e)))) => {
                        tracing::error!(role = role.name(), error = %format!("{e:#}"), "role failed; stopping the process");
                        failure.get_or_insert(e.context(format!("{} failed", role.name())));
                        shutdown.cancel();
                    }
                    Some(Err(e)) => {
                        failure.get_or_insert(anyhow::anyhow!("a role panicked: {e}"));
                        shutdown.cancel();
                    }
                },
            }
        }
        shutdown.cancel();
        if let Some(operations) = operations {
            match operations.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %format!("{e:#}"), "the metrics endpoint failed")
                }
                Err(e) => tracing::warn!(error = %e, "the metrics endpoint panicked"),
            }
        }
        broker_shutdown.cancel();
        ctx.pool.close().await;
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// A token cancelled on SIGINT (Ctrl-C) or SIGTERM.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => tracing::info!("SIGINT received"),
            _ = term => tracing::info!("SIGTERM received"),
        }
        t.cancel();
    });
    token
}
