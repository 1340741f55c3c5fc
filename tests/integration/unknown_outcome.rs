//! No second send on a lost answer, end to end: a Cloud API mock accepts the first call of every
//! reminder and never answers it, so each call times out after the message went out. With the
//! mock reporting statuses to the webhook role and `whatsapp.unknown_outcome_wait_secs` set,
//! every reminder waits for its status and is recorded sent from it: one provider call each.
//! Without statuses the documented window stays open: every lost answer is retried, and the
//! provider sends that reminder twice, although the report still counts it once.

use std::time::{Duration, Instant};

use reminder::configuration::Secret;
use reminder::startup::Role;
use reminder_harness::mock_provider::{Behaviour, MockCloudApi, StatusWebhooks};
use reminder_harness::prelude::*;
use reminder_harness::tally::{Tally, tally};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

const REMINDERS: usize = 1000;
const APP_SECRET: &str = "unknown-outcome-app-secret";

/// A mock that accepts and reports every first call but never answers it, on a thread of its
/// own so the test's runtime never slows its answers down.
async fn losing_provider() -> MockCloudApi {
    MockCloudApi::start_with(Behaviour {
        hold_first_answer: true,
        own_thread: true,
        ..Behaviour::default()
    })
    .await
    .expect("the mock Cloud API starts")
}

/// Settings that make the run quick: a short time-out (the answer never comes anyway) and no
/// rate limit worth the name, so the run measures the lost answers, not the throttle.
fn env_for(mock: &MockCloudApi) -> TestEnv {
    let mut env = TestEnv::new();
    env.use_cloud_api(mock);
    let w = &mut env.settings.whatsapp;
    w.request_timeout_ms = 1000;
    w.max_per_second = 5000;
    env
}

/// `n` reminders, each for its own customer, vehicle and phone (so no per-recipient gap holds
/// one back).
fn reminders(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let mut e =
                maintenance_due(&Uuid::new_v4().to_string(), Uuid::new_v4(), Uuid::new_v4());
            e["data"]["phone"] = json!(format!("0813{i:08}"));
            e
        })
        .collect()
}

async fn publish_all(env: &TestEnv, events: &[Value]) {
    let amqp = env.amqp().await;
    for chunk in events.chunks(200) {
        futures::future::join_all(chunk.iter().map(|e| amqp.publish_event(e))).await;
    }
}

/// Waits until the report counted `n` sends, then checks that nothing more arrives after a
/// quiet moment and that every message was counted once, for its own pair.
async fn assert_counted_exactly(pool: &PgPool, n: i64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let c = tally(pool).await.expect("the report reads");
        if c.frequency >= n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {c:?} of {n} counted within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(tally(pool).await.unwrap(), Tally::each_once(n));
}

fn metric(app: &TestApp, series: &str) -> f64 {
    let text = app.ctx.metrics.render();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn with_statuses_a_lost_answer_is_settled_by_its_status_and_never_sent_twice() {
    let mock = losing_provider().await;
    let mut env = env_for(&mock);
    let s = &mut env.settings;
    // Well above how late a status comes under this load (6,000 webhooks through a debug build
    // on a small machine): a status later than the wait is a retry, and that one sends twice.
    s.whatsapp.unknown_outcome_wait_secs = 10;
    s.webhook.bind = "127.0.0.1:0".into();
    s.whatsapp.cloud_api.app_secret = Secret::new(APP_SECRET);
    let app = env
        .spawn(&[Role::Sender, Role::Tracker, Role::Webhook])
        .await;
    // Meta's habits: each status twice, the last one first.
    mock.report_statuses_to(StatusWebhooks {
        url: format!("{}/webhooks/whatsapp", app.webhook.as_deref().unwrap()),
        app_secret: APP_SECRET.into(),
        duplicate: true,
        out_of_order: true,
        before_answer: false,
    });
    let started = Instant::now();
    publish_all(&env, &reminders(REMINDERS)).await;

    assert_counted_exactly(app.pool(), REMINDERS as i64, Duration::from_secs(60)).await;
    let took = started.elapsed();

    let n = REMINDERS as u64;
    assert_eq!(mock.held(), n, "every first answer was lost");
    assert_eq!(mock.accepted(), (n, 0), "no reminder was sent twice");
    assert_eq!(mock.repeated(), vec![]);
    assert_eq!(
        metric(
            &app,
            "reminder_unknown_outcomes_total{outcome=\"reconciled\"}"
        ),
        n as f64
    );
    // A call that timed out before the provider took it (stuck in a busy mock under this load)
    // looks the same to the sender; no status comes for it, so it is retried after the wait.
    // Every retry is such a call (none is usually left): the provider accepted one call each.
    let retried = metric(&app, "reminder_unknown_outcomes_total{outcome=\"retried\"}");
    assert_eq!(
        metric(
            &app,
            "reminder_sends_total{provider=\"cloud_api\",outcome=\"unknown\"}"
        ),
        n as f64 + retried
    );
    let calls = mock.calls();
    assert!(
        calls >= n && calls <= n + retried as u64,
        "one provider call per reminder, and at most one per retried call: {calls}"
    );
    // Each message carries the provider's id from its status, and the statuses were recorded.
    let recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM message_log m JOIN message_statuses s
             ON s.reminder_id = m.reminder_id AND s.status = 'read'
         WHERE m.provider_message_id = s.provider_message_id AND m.delivery = 'read'",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(recorded, REMINDERS as i64);
    eprintln!(
        "{REMINDERS} lost answers settled by statuses in {took:?}; {} status webhooks taken; \
         {retried} calls that never reached the provider retried",
        mock.statuses_posted()
    );
    app.stop().await;
    mock.stop().await;
}

#[tokio::test]
async fn without_statuses_a_lost_answer_is_retried_and_the_provider_sends_it_twice() {
    let mock = losing_provider().await;
    let mut env = env_for(&mock);
    env.settings.whatsapp.unknown_outcome_wait_secs = 0;
    let app = env.spawn(&[Role::Sender, Role::Tracker]).await;
    let started = Instant::now();
    publish_all(&env, &reminders(REMINDERS)).await;

    assert_counted_exactly(app.pool(), REMINDERS as i64, Duration::from_secs(60)).await;
    let took = started.elapsed();

    let n = REMINDERS as u64;
    assert_eq!(mock.held(), n);
    assert!(
        mock.calls() > n,
        "lost answers are retried: {}",
        mock.calls()
    );
    // The documented window: the first call went out, so its retry is a second message.
    let (accepted, twice) = mock.accepted();
    assert_eq!(accepted, n);
    assert_eq!(
        twice, n,
        "every reminder whose answer was lost was sent twice"
    );
    assert_eq!(
        metric(
            &app,
            "reminder_unknown_outcomes_total{outcome=\"reconciled\"}"
        ),
        0.0
    );
    eprintln!(
        "{REMINDERS} lost answers retried in {took:?}: {} provider calls",
        mock.calls()
    );
    app.stop().await;
    mock.stop().await;
}
