//! PostgreSQL reachable but not usable (refusing writes, or not answering a statement in time)
//! is an outage: the sender and the tracker hold their messages and finish once it is back,
//! with nothing dead-lettered and no send attempt spent.

use std::time::Duration;

use reminder::db::dispatch::{self, DispatchStatus};
use reminder::startup::Role;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;
use wiremock::MockServer;

use reminder_harness::prelude::*;

const WAIT: Duration = Duration::from_secs(30);

fn database_name(env: &TestEnv) -> String {
    format!("reminder_test_{}", env.id)
}

async fn admin() -> PgConnection {
    PgConnection::connect(PG_ADMIN_URL)
        .await
        .expect("admin connection")
}

/// Sets `default_transaction_read_only` on this test's database only, then ends its sessions
/// so that the next ones pick the setting up.
async fn set_read_only(env: &TestEnv, on: bool) {
    let mut conn = admin().await;
    let db = database_name(env);
    let sql = if on {
        format!("ALTER DATABASE \"{db}\" SET default_transaction_read_only = on")
    } else {
        format!("ALTER DATABASE \"{db}\" RESET default_transaction_read_only")
    };
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&db)
    .execute(&mut conn)
    .await
    .unwrap();
}

fn unavailable(app: &TestApp, role: &str) -> u64 {
    let prefix = format!("reminder_database_unavailable_total{{role=\"{role}\"}} ");
    app.ctx
        .metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()).map(str::to_string))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn logged(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM message_log")
        .fetch_one(app.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_database_refusing_writes_is_waited_out_without_dead_letters_or_spent_attempts() {
    let mock = MockServer::start().await;
    mock_cloud_api_ok(&mock).await;
    let mut env = TestEnv::new();
    env.use_cloud_api(&mock);
    env.settings.amqp.delivery_limit = 3;
    env.pool().await.close().await;
    let app = env.spawn(&[Role::Sender, Role::Tracker]).await;
    let amqp = env.amqp().await;
    set_read_only(&env, true).await;

    let ids: Vec<String> = (0..5).map(|_| Uuid::new_v4().to_string()).collect();
    for id in &ids {
        amqp.publish_event(&maintenance_due(id, Uuid::new_v4(), Uuid::new_v4()))
            .await;
    }
    let (customer, vehicle) = (Uuid::new_v4(), Uuid::new_v4());
    amqp.publish_event(&message_sent(
        "r-upstream",
        customer,
        vehicle,
        "2026-11-24T01:00:00Z",
    ))
    .await;

    wait_until(WAIT, || async {
        unavailable(&app, "sender") >= 1 && unavailable(&app, "tracker") >= 1
    })
    .await;
    // Long enough for a requeue loop to burn a delivery limit of 3 many times over.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let dead = env.topology().dead_queue;
    assert_eq!(
        amqp.depth(&dead).await,
        0,
        "nothing dead-lettered while read-only"
    );
    assert_eq!(
        mock.received_requests().await.unwrap().len(),
        0,
        "no send without a claim"
    );

    set_read_only(&env, false).await;
    wait_until(WAIT, || async { logged(&app).await == 6 }).await;
    for id in &ids {
        let row = dispatch::get(app.pool(), id).await.unwrap().unwrap();
        assert_eq!(row.status, DispatchStatus::Sent);
        assert_eq!(row.attempts, 1, "no attempt spent on the outage");
    }
    assert_eq!(amqp.depth(&dead).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_statement_past_the_statement_timeout_is_held_and_completes_later() {
    let mut env = TestEnv::new();
    env.settings.database.statement_timeout_ms = 300;
    let pool = env.pool().await;
    let app = env.spawn(&[Role::Tracker]).await;
    let amqp = env.amqp().await;

    // Another session holds the table the tracker writes: its batch waits on the lock until
    // the statement time-out cancels it.
    let mut blocker = pool.acquire().await.unwrap();
    sqlx::query("BEGIN").execute(&mut *blocker).await.unwrap();
    sqlx::query("LOCK TABLE message_log IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let (customer, vehicle) = (Uuid::new_v4(), Uuid::new_v4());
    amqp.publish_event(&message_sent(
        "r-1",
        customer,
        vehicle,
        "2026-11-24T01:00:00Z",
    ))
    .await;
    wait_until(WAIT, || async { unavailable(&app, "tracker") >= 1 }).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let dead = env.topology().dead_queue;
    assert_eq!(amqp.depth(&dead).await, 0);

    sqlx::query("COMMIT").execute(&mut *blocker).await.unwrap();
    drop(blocker);
    wait_until(WAIT, || async { logged(&app).await == 1 }).await;
    assert_eq!(amqp.depth(&dead).await, 0);
    app.stop().await;
    pool.close().await;
}

/// Whether this session's connection to PostgreSQL is encrypted.
async fn encrypted(pool: &sqlx::PgPool) -> bool {
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The local server offers TLS with a self-signed certificate: `require` and `prefer` encrypt,
/// `disable` does not, and `verify-full` (which cannot trust that certificate) stops start-up
/// with the reason instead of retrying it as an outage.
#[tokio::test]
async fn sslmode_in_the_database_url_is_honoured_and_an_untrusted_certificate_stops_start_up() {
    let mut env = TestEnv::new();
    let plain = env.settings.database.url.clone();
    for (mode, tls) in [("require", true), ("prefer", true), ("disable", false)] {
        env.settings.database.url = format!("{plain}?sslmode={mode}");
        let app = env.spawn(&[Role::Tracker]).await;
        assert_eq!(encrypted(app.pool()).await, tls, "sslmode={mode}");
        app.stop().await;
    }

    env.settings.database.url = format!("{plain}?sslmode=verify-full");
    for migrate_on_start in [true, false] {
        env.settings.database.migrate_on_start = migrate_on_start;
        let started = tokio::time::timeout(
            Duration::from_secs(20),
            reminder::startup::Application::build(env.settings.clone(), &[Role::Tracker]),
        )
        .await
        .expect("a permanent error, not a retry loop");
        let err = format!("{:#}", started.err().expect("start-up refused"));
        assert!(err.contains("database.url"), "{err}");
    }
}
