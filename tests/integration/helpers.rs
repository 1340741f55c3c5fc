//! Test helpers: every test gets its own PostgreSQL database and its own RabbitMQ exchange and
//! queue prefix (random names), so tests run in parallel and leave nothing behind: dropping the
//! `TestEnv` drops the database and deletes the exchanges and queues. Only the WhatsApp
//! provider is replaced, by a local mock server speaking the Cloud API.

#![allow(dead_code)]

use std::time::Duration;

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeDeleteOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use reminder::broker::Topology;
use reminder::configuration::{ProviderKind, Secret, Settings};
use reminder::context::AppContext;
use reminder::startup::{Application, Role};
use serde_json::{Value, json};
use sqlx::{ConnectOptions, PgPool};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const PHONE_NUMBER_ID: &str = "106540352242922";
pub const ACCESS_TOKEN: &str = "EAAtest-token";

pub fn init_logs() {
    let mut t = Settings::defaults().telemetry;
    t.level = std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into());
    reminder::telemetry::init(&t);
}

/// One test's private database, exchange and queues.
pub struct TestEnv {
    pub id: String,
    pub settings: Settings,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        init_logs();
        let id = Uuid::new_v4().simple().to_string()[..12].to_string();
        let mut s = Settings::defaults();
        s.database.url = format!("postgres://postgres@127.0.0.1:5432/reminder_test_{id}");
        s.database.max_connections = 10;
        s.amqp.url = AMQP_URL.into();
        s.amqp.exchange = format!("test-{id}.events");
        s.amqp.queue_prefix = format!("test-{id}.");
        s.amqp.reconnect_initial_ms = 50;
        s.amqp.reconnect_max_ms = 1000;
        s.producer.catch_up_on_start = false;
        s.whatsapp.provider = ProviderKind::Log;
        s.whatsapp.max_per_second = 0;
        s.sender.recipient_interval_ms = 0;
        s.sender.retry_initial_ms = 100;
        s.sender.retry_max_ms = 2000;
        s.tracker.batch_linger_ms = 10;
        s.http.bind = "127.0.0.1:0".into();
        s.runtime.shutdown_timeout_secs = 5;
        TestEnv { id, settings: s }
    }

    /// Points the sender at a mock Cloud API.
    pub fn use_cloud_api(&mut self, mock: &MockServer) {
        let s = &mut self.settings.whatsapp;
        s.provider = ProviderKind::CloudApi;
        s.cloud_api.base_url = mock.uri();
        s.cloud_api.phone_number_id = PHONE_NUMBER_ID.into();
        s.cloud_api.access_token = Secret::new(ACCESS_TOKEN);
        s.request_timeout_ms = 2000;
    }

    pub fn topology(&self) -> Topology {
        Topology::new(&self.settings.amqp)
    }

    /// Starts the given roles in this process.
    pub async fn spawn(&self, roles: &[Role]) -> TestApp {
        self.spawn_with(self.settings.clone(), roles).await
    }

    pub async fn spawn_with(&self, settings: Settings, roles: &[Role]) -> TestApp {
        let app = self.spawn_unready(settings, roles).await;
        app.wait_for_broker().await;
        app
    }

    /// Starts the roles without waiting for the broker (for tests where it is unreachable).
    pub async fn spawn_unready(&self, settings: Settings, roles: &[Role]) -> TestApp {
        let app = Application::build(settings, roles)
            .await
            .expect("the application starts");
        let ctx = app.context().clone();
        let port = app.port();
        let webhook = app.webhook_port().map(|p| format!("http://127.0.0.1:{p}"));
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(app.run(shutdown.clone()));
        TestApp {
            ctx,
            address: port.map(|p| format!("http://127.0.0.1:{p}")),
            webhook,
            http: reqwest::Client::new(),
            shutdown,
            handle: Some(handle),
        }
    }

    /// A pool on this test's database (migrated).
    pub async fn pool(&self) -> PgPool {
        reminder::db::migrate(&self.settings.database)
            .await
            .expect("the test database migrates")
    }

    pub async fn amqp(&self) -> Amqp {
        Amqp::connect(&self.settings).await
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let settings = self.settings.clone();
        // Drop cannot await; a short-lived runtime on its own thread does the clean-up.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(cleanup(settings));
        })
        .join();
    }
}

async fn cleanup(settings: Settings) {
    if let Ok(conn) = Connection::connect(AMQP_URL, ConnectionProperties::default()).await {
        let topology = Topology::new(&settings.amqp);
        let mut queues = topology.queue_names();
        for n in 1..=16 {
            queues.push(topology.retry_queue(settings.sender.retry_delay(n)));
        }
        queues.sort();
        queues.dedup();
        for q in queues {
            if let Ok(ch) = conn.create_channel().await {
                let _ = ch
                    .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                    .await;
                let _ = ch.close(200, "".into()).await;
            }
        }
        for x in [&topology.exchange, &topology.dead_letter_exchange] {
            if let Ok(ch) = conn.create_channel().await {
                let _ = ch
                    .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
                    .await;
                let _ = ch.close(200, "".into()).await;
            }
        }
        let _ = conn.close(200, "".into()).await;
    }
    let db = settings
        .database
        .url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let admin = PG_ADMIN_URL
        .parse::<sqlx::postgres::PgConnectOptions>()
        .expect("admin url")
        .log_slow_statements(tracing::log::LevelFilter::Off, Duration::from_secs(60));
    if let Ok(pool) = PgPool::connect_with(admin).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"
        )))
        .execute(&pool)
        .await;
        pool.close().await;
    }
}

/// A running application.
pub struct TestApp {
    pub ctx: AppContext,
    pub address: Option<String>,
    /// The webhook role's listener, when it runs.
    pub webhook: Option<String>,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub fn pool(&self) -> &PgPool {
        &self.ctx.pool
    }

    pub fn url(&self, path: &str) -> String {
        format!(
            "{}{path}",
            self.address.as_deref().expect("the api role runs")
        )
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("request")
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.expect("json body")
    }

    async fn wait_for_broker(&self) {
        wait_until(Duration::from_secs(10), || async {
            self.ctx.broker.is_connected()
        })
        .await;
    }

    /// Stops the roles gracefully and waits for them.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            h.await.expect("no panic").expect("clean shutdown");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Polls `check` until it is true; panics after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A plain lapin connection playing an upstream system or an operator.
pub struct Amqp {
    pub channel: lapin::Channel,
    pub topology: Topology,
    _conn: Connection,
}

impl Amqp {
    pub async fn connect(settings: &Settings) -> Amqp {
        let conn = Connection::connect(AMQP_URL, ConnectionProperties::default())
            .await
            .expect("RabbitMQ is up");
        let channel = conn.create_channel().await.expect("channel");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        let topology = Topology::new(&settings.amqp);
        topology.declare(&channel).await.expect("topology");
        Amqp {
            channel,
            topology,
            _conn: conn,
        }
    }

    /// Publishes raw bytes to the events exchange and waits for the confirm.
    pub async fn publish(&self, routing_key: &str, body: &[u8], properties: BasicProperties) {
        let confirm = self
            .channel
            .basic_publish(
                self.topology.exchange.as_str().into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body,
                properties.with_delivery_mode(2),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(confirm.is_ack());
    }

    /// Publishes a structured-mode CloudEvent.
    pub async fn publish_event(&self, event: &Value) {
        let ty = event["type"].as_str().expect("type");
        self.publish(
            ty,
            &serde_json::to_vec(event).unwrap(),
            BasicProperties::default().with_content_type("application/cloudevents+json".into()),
        )
        .await;
    }

    /// Takes everything currently in the dead-letter queue (acking it).
    pub async fn drain_dead(&self) -> Vec<lapin::message::Delivery> {
        let mut out = Vec::new();
        while let Some(m) = self
            .channel
            .basic_get(
                self.topology.dead_queue.as_str().into(),
                BasicGetOptions { no_ack: false },
            )
            .await
            .expect("basic.get")
        {
            m.delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .expect("ack");
            out.push(m.delivery);
        }
        out
    }

    /// Messages waiting in a queue.
    pub async fn depth(&self, queue: &str) -> u32 {
        self.channel
            .queue_declare(
                queue.into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map(|q| q.message_count())
            .unwrap_or(0)
    }
}

pub fn header_text(d: &lapin::message::Delivery, name: &str) -> Option<String> {
    d.properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(name))
        .and_then(|v| match v {
            AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
            AMQPValue::ShortString(s) => Some(s.to_string()),
            _ => None,
        })
}

pub fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

/// A valid `maintenance.due` CloudEvent.
pub fn maintenance_due(id: &str, customer: Uuid, vehicle: Uuid) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": "test/upstream",
        "type": "maintenance.due",
        "time": "2026-11-24T01:00:00Z",
        "datacontenttype": "application/json",
        "data": {
            "customer_id": customer,
            "vehicle_id": vehicle,
            "customer_name": "Budi Santoso",
            "phone": "0812-3456-7890",
            "plate_number": "B 1234 XYZ",
            "vehicle": "Honda Vario 125",
            "due_date": "2026-11-26"
        }
    })
}

/// A valid `message.sent` CloudEvent.
pub fn message_sent(reminder_id: &str, customer: Uuid, vehicle: Uuid, sent_at: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": reminder::domain::events::outcome_id("message.sent", reminder_id),
        "source": "test/sender",
        "type": "message.sent",
        "time": sent_at,
        "datacontenttype": "application/json",
        "data": {
            "reminder_id": reminder_id,
            "customer_id": customer,
            "vehicle_id": vehicle,
            "phone": "6281234567890",
            "provider": "cloud_api",
            "provider_message_id": format!("wamid.{reminder_id}"),
            "sent_at": sent_at,
            "attempts": 1
        }
    })
}

/// A Cloud API success answer.
pub fn cloud_api_ok(message_id: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": "6281234567890", "wa_id": "6281234567890"}],
        "messages": [{"id": message_id}]
    }))
}

/// A Cloud API error answer.
pub fn cloud_api_error(status: u16, code: i64, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": message},
            "fbtrace_id": "AbCdEf"
        }
    }))
}

/// The Cloud API messages endpoint of the mock.
pub fn messages_path() -> String {
    format!("/v21.0/{PHONE_NUMBER_ID}/messages")
}

/// Mounts a mock that always succeeds.
pub async fn mock_cloud_api_ok(mock: &MockServer) {
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .respond_with(cloud_api_ok("wamid.HBgLNjI4MTIzNDU2Nzg5MBUCABEYEjA"))
        .mount(mock)
        .await;
}
