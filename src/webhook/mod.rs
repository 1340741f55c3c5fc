//! The `webhook` role: hears what the provider reports after a send (delivery statuses,
//! customers' replies, marketing opt-outs) and turns each report into an event on the exchange.
//!
//! It listens on its own address (`webhook.bind`), never on the API's: it faces the internet,
//! the API stays internal. It writes nothing to the database. Every event of a request is
//! published with confirms before the provider gets its 200; when the broker cannot take them
//! all, the answer is 503 and the provider retries the whole request, which publishes the same
//! event ids again (derived from what was reported), so a retry after a partial publish counts
//! nothing twice.
//!
//! `routes` holds the HTTP handlers, `signature` Meta's body signature and handshake checks;
//! the parsing of bodies is `domain::webhook`.

pub mod routes;
pub mod signature;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use chrono::Utc;
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::broker::publisher::Outgoing;
use crate::broker::{PublishError, Publisher, Topology, answered};
use crate::context::AppContext;
use crate::domain::webhook::{Report, event};
use crate::domain::{CountryCode, OutgoingEvent, PhoneNumber};

/// Largest body accepted (413 above it).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long a request waits for the broker to take its events before answering 503.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// `source` of every event the role publishes.
pub const SOURCE: &str = "reminder/webhook";

/// What every request handler shares.
#[derive(Clone)]
pub struct WebhookState {
    pub ctx: AppContext,
    country: CountryCode,
    publisher: Arc<EventPublisher>,
}

impl WebhookState {
    /// The product's phone normalisation (E.164 digits with the default country code), as a
    /// parser callback: `None` for anything that is not a phone number.
    pub fn normalise(&self, raw: &str) -> Option<String> {
        PhoneNumber::parse(raw, &self.country)
            .ok()
            .map(|p| p.as_str().to_string())
    }
}

/// Why the events of a request were not all published.
#[derive(Debug, thiserror::Error)]
pub enum Unpublished {
    #[error("the broker is not connected")]
    NotConnected,
    #[error("the broker did not confirm in time")]
    TimedOut,
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("declaring the topology failed: {0}")]
    Topology(lapin::Error),
}

/// A confirm-mode channel opened on first use (declaring the topology), reopened after any
/// failure.
struct EventPublisher {
    ctx: AppContext,
    topology: Topology,
    channel: Mutex<Option<Publisher>>,
    shutdown: CancellationToken,
}

impl EventPublisher {
    async fn publisher(&self) -> Result<Publisher, Unpublished> {
        let mut slot = self.channel.lock().await;
        if let Some(p) = slot.as_ref()
            && p.channel().status().connected()
        {
            return Ok(p.clone());
        }
        let p = Publisher::open(&self.ctx.broker, &self.shutdown).await?;
        answered("declaring the topology", self.topology.declare(p.channel()))
            .await
            .map_err(Unpublished::Topology)?;
        *slot = Some(p.clone());
        Ok(p)
    }

    /// Publishes every event, then waits for every confirm.
    async fn publish_all(&self, events: &[Outgoing]) -> Result<(), Unpublished> {
        if !self.ctx.broker.is_connected() {
            return Err(Unpublished::NotConnected);
        }
        let work = async {
            let publisher = self.publisher().await?;
            let mut confirms = Vec::with_capacity(events.len());
            for e in events {
                confirms.push(publisher.start(e.clone()).await?);
            }
            for confirm in confirms {
                confirm.await?;
            }
            Ok::<(), Unpublished>(())
        };
        let result = match tokio::time::timeout(PUBLISH_TIMEOUT, work).await {
            Ok(r) => r,
            Err(_) => Err(Unpublished::TimedOut),
        };
        if result.is_err() {
            // The channel may be broken; the next request opens a fresh one.
            *self.channel.lock().await = None;
        }
        result
    }
}

impl WebhookState {
    /// Publishes the events of `reports` with confirms; `Ok` only when every one is confirmed.
    pub async fn publish(&self, reports: &[Report]) -> Result<(), Unpublished> {
        if reports.is_empty() {
            return Ok(());
        }
        let exchange = &self.ctx.settings.amqp.exchange;
        let now = Utc::now();
        let events: Vec<Outgoing> = reports
            .iter()
            .map(|r| {
                let id = event::id(r);
                let body = OutgoingEvent::new(
                    id.clone(),
                    SOURCE,
                    r.event_type(),
                    now,
                    event::event_data(r),
                )
                .to_bytes();
                Outgoing::event(exchange, r.event_type(), &id, body)
            })
            .collect();
        self.publisher.publish_all(&events).await?;
        for r in reports {
            self.ctx.metrics.published(r.event_type());
        }
        Ok(())
    }
}

/// The role's router: `/healthz` always, Meta's routes when `whatsapp.cloud_api.app_secret` is
/// set, Fonnte's when `whatsapp.fonnte.webhook_token` is.
pub fn router(ctx: AppContext, shutdown: CancellationToken) -> anyhow::Result<Router> {
    let country = CountryCode::parse(&ctx.settings.whatsapp.default_country_code)?;
    let whatsapp = &ctx.settings.whatsapp;
    let (meta, fonnte) = (
        !whatsapp.cloud_api.app_secret.is_empty(),
        !whatsapp.fonnte.webhook_token.is_empty(),
    );
    let state = WebhookState {
        publisher: Arc::new(EventPublisher {
            topology: ctx.broker.topology(),
            ctx: ctx.clone(),
            channel: Mutex::new(None),
            shutdown,
        }),
        ctx,
        country,
    };
    let mut router = Router::new().route("/healthz", get(routes::healthz));
    if meta {
        router = router.route(
            "/webhooks/whatsapp",
            get(routes::meta_handshake).post(routes::meta_notification),
        );
    }
    if fonnte {
        router = router.route(
            "/webhooks/fonnte/{token}",
            post(routes::fonnte_notification),
        );
    }
    Ok(router
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state))
}

/// Serves the webhook listener until `shutdown`, then finishes in-flight requests.
pub async fn serve(
    ctx: AppContext,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let outcomes = routes::Outcome::ALL.map(routes::Outcome::as_str);
    ctx.metrics.init_webhook(&outcomes);
    let limits = ctx.settings.http.listener_limits();
    let app = router(ctx, shutdown.clone())?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "webhook listening");
    crate::http_listener::serve(listener, app, limits, shutdown)
        .await
        .with_context(|| format!("the webhook listener on {address} failed"))
}
