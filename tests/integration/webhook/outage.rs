//! The webhook role when the broker goes away: refused connections, a broker lost while the
//! role runs, and confirms lost on the way back. The broker every test shares stays up: the
//! role reaches it through a proxy the test cuts.

use reminder_harness::tcp_proxy::TcpProxy;

use super::*;

#[tokio::test]
async fn a_broker_that_refuses_connections_gets_a_503_and_nothing() {
    let mut env = webhook_env();
    env.settings.amqp.url = "amqp://guest:guest@127.0.0.1:1/%2f".into();
    let app = env
        .spawn_unready(env.settings.clone(), &[Role::Webhook])
        .await;
    let r = post_signed(
        &app,
        &status("wamid.X", "delivered", Some("r-x"), 1_800_000_000),
    )
    .await;
    assert_eq!(r.status(), 503);
    let fonnte = app
        .http
        .post(hook(&app, &format!("/webhooks/fonnte/{FONNTE_TOKEN}")))
        .json(&json!({"id": "F1", "status": "sent", "state": "delivered"}))
        .send()
        .await
        .unwrap();
    assert_eq!(fonnte.status(), 503);
    assert!(app.ctx.metrics.render().contains(
        "reminder_webhook_requests_total{provider=\"cloud_api\",outcome=\"unavailable\"} 1"
    ));
    app.stop().await;
}

/// One Meta webhook reporting several statuses of `wamid` at once (Meta batches them so).
fn statuses(wamid: &str, reminder: &str, list: &[&str]) -> Value {
    let items: Vec<Value> = list
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({"id": wamid, "status": s, "timestamp": (1_800_000_000 + i).to_string(),
                   "recipient_id": "6281234567890", "biz_opaque_callback_data": reminder})
        })
        .collect();
    envelope(json!({"messaging_product": "whatsapp", "statuses": items}))
}

/// The webhook role reaches the broker through `proxy`; the tracker, in an application of its
/// own, straight, so it keeps recording while the webhook role's broker is away.
async fn through_proxy(env: &TestEnv, proxy: &TcpProxy) -> (TestApp, TestApp) {
    let mut settings = env.settings.clone();
    settings.amqp.url = AMQP_URL.replace("127.0.0.1:5672", &proxy.address());
    let webhook = env.spawn_with(settings, &[Role::Webhook]).await;
    let tracker = env.spawn(&[Role::Tracker]).await;
    (webhook, tracker)
}

async fn recorded(pool: &PgPool) -> i64 {
    scalar(pool, "SELECT count(*) FROM message_statuses").await
}

#[tokio::test]
async fn a_broker_lost_while_the_role_runs_gets_a_503_and_nothing_is_published() {
    let env = webhook_env();
    let proxy = TcpProxy::start("127.0.0.1:5672").unwrap();
    let (app, tracker) = through_proxy(&env, &proxy).await;
    let pool = tracker.pool().clone();
    let first = statuses("wamid.L1", "r-l1", &["sent"]);
    assert_eq!(post_signed(&app, &first).await.status(), 200);
    wait_until(Duration::from_secs(10), || async {
        recorded(&pool).await == 1
    })
    .await;

    // The broker goes away under a role that was publishing to it.
    proxy.cut();
    let batch = statuses("wamid.L2", "r-l2", &["sent", "delivered", "read"]);
    let started = std::time::Instant::now();
    let r = post_signed(&app, &batch).await;
    assert_eq!(r.status(), 503, "{}", r.text().await.unwrap());
    assert!(
        started.elapsed() < Duration::from_secs(11),
        "the answer waited {:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(recorded(&pool).await, 1, "none of the three was published");

    // Back: the provider's retry of the same body publishes all three.
    proxy.restore();
    wait_until(Duration::from_secs(10), || async {
        app.ctx.broker.is_connected()
    })
    .await;
    assert_eq!(post_signed(&app, &batch).await.status(), 200);
    wait_until(Duration::from_secs(10), || async {
        recorded(&pool).await == 4
    })
    .await;
    assert!(app.ctx.metrics.render().contains(
        "reminder_webhook_requests_total{provider=\"cloud_api\",outcome=\"unavailable\"} 1"
    ));
    app.stop().await;
    tracker.stop().await;
}

#[tokio::test]
async fn events_that_reached_the_broker_without_their_confirms_get_a_503_and_count_once_after_the_retry()
 {
    let env = webhook_env();
    let proxy = TcpProxy::start("127.0.0.1:5672").unwrap();
    let (app, tracker) = through_proxy(&env, &proxy).await;
    let pool = tracker.pool().clone();
    let warm = statuses("wamid.C0", "r-c0", &["sent"]);
    assert_eq!(post_signed(&app, &warm).await.status(), 200);
    wait_until(Duration::from_secs(10), || async {
        recorded(&pool).await == 1
    })
    .await;

    // The publishes reach the broker; its confirms are lost, then the connection dies: the
    // role cannot know they arrived, so the provider must be told to retry.
    proxy.drop_answers();
    let batch = statuses("wamid.C1", "r-c1", &["sent", "delivered"]);
    let posting = {
        let (http, url) = (app.http.clone(), hook(&app, "/webhooks/whatsapp"));
        let bytes = serde_json::to_vec(&batch).unwrap();
        let signature = sign(APP_SECRET.as_bytes(), &bytes);
        tokio::spawn(async move {
            http.post(url)
                .header("content-type", "application/json")
                .header("X-Hub-Signature-256", signature)
                .body(bytes)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.cut();
    assert_eq!(posting.await.unwrap(), 503);
    // Both got through to the tracker although the provider was told otherwise.
    wait_until(Duration::from_secs(10), || async {
        recorded(&pool).await == 3
    })
    .await;

    proxy.restore();
    wait_until(Duration::from_secs(10), || async {
        app.ctx.broker.is_connected()
    })
    .await;
    assert_eq!(post_signed(&app, &batch).await.status(), 200);
    // The retry published the same event ids: nothing is recorded twice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(recorded(&pool).await, 3);
    let delivery: String = sqlx::query_scalar(
        "SELECT status FROM message_statuses WHERE reminder_id = 'r-c1' ORDER BY at DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(delivery, "delivered");
    app.stop().await;
    tracker.stop().await;
}
