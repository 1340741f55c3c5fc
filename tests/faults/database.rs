//! A test's private PostgreSQL goes away under load (stopped, or killed with SIGKILL and
//! recovered), or stops answering behind a black-holing proxy: the sender and the tracker stop
//! taking new messages, hold (never dead-letter) what they have, retry with back-off and resume
//! by themselves; every reminder is still sent once and counted once.

use std::time::Duration;

use reminder::startup::Role;

use crate::support::*;
use reminder_harness::prelude::*;

#[tokio::test]
#[ignore = "starts private PostgreSQL and RabbitMQ: cargo test --test faults -- --ignored --test-threads=1"]
async fn consumers_pause_while_postgresql_is_down_and_resume_without_losing_or_repeating_anything()
{
    outage_mid_flow(false).await;
}

#[tokio::test]
#[ignore = "starts private PostgreSQL and RabbitMQ: cargo test --test faults -- --ignored --test-threads=1"]
async fn consumers_pause_while_postgresql_is_killed_and_resume_after_its_recovery_without_losing_or_repeating_anything()
 {
    outage_mid_flow(true).await;
}

/// 300 reminders; PostgreSQL stopped (`-m fast`) or killed (SIGKILL of every server process,
/// recovered from the WAL at start) once 50 went out.
async fn outage_mid_flow(kill: bool) {
    let (private, sends, env) = env_with_provider(Duration::from_millis(20), true).await;
    let app = env.spawn(&[Role::Sender, Role::Tracker]).await;
    let amqp = env.amqp().await;
    let events = reminders(300);
    publish_all(&amqp, &events).await;
    wait_until(Duration::from_secs(30), || async { sends.calls() >= 50 }).await;

    if kill {
        private.pg.kill_hard();
    } else {
        private.pg.stop().await;
    }
    // Sends already past their claim finish; then nothing more goes out.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls_while_down = sends.calls();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        sends.calls(),
        calls_while_down,
        "no provider call while the database is unreachable"
    );
    assert_eq!(
        amqp.depth(&env.topology().dead_queue).await,
        0,
        "an outage dead-letters nothing"
    );
    assert!(
        calls_while_down < 300,
        "the outage began before the work was done"
    );
    private.pg.start_again().await;

    assert_each_sent_once_despite_failures(app.pool(), &sends, 300).await;
    assert_eq!(amqp.depth(&env.topology().dead_queue).await, 0);
    app.stop().await;
}

/// A connection to the test's database straight to the private server, past the proxy, for
/// the test's own checks while the proxy black-holes the application's connections.
async fn direct_pool(private: &Private, env: &TestEnv) -> sqlx::PgPool {
    let database = env.settings.database.url.rsplit('/').next().unwrap();
    sqlx::PgPool::connect(&format!("{}/{database}", private.pg.url()))
        .await
        .expect("the private PostgreSQL answers")
}

#[tokio::test]
#[ignore = "starts private PostgreSQL and RabbitMQ: cargo test --test faults -- --ignored --test-threads=1"]
async fn a_black_holed_database_connection_stalls_the_roles_until_thawed_or_cut_and_nothing_is_lost_or_repeated()
 {
    let private = Private::start(1).await;
    let proxy =
        TcpProxy::start(&format!("127.0.0.1:{}", private.pg.port())).expect("the proxy starts");
    let sends = provider(Duration::from_millis(20), false).await;
    let pg_url = format!("postgres://postgres@{}", proxy.address());
    let mut env = TestEnv::on(&pg_url, &private.rabbit.urls()).without_teardown();
    env.use_cloud_api(&sends);
    let concurrency = 16;
    drop(env.pool().await);
    let pool = direct_pool(&private, &env).await;
    let n = 600;
    {
        let amqp = env.amqp().await;
        publish_all(&amqp, &reminders(n)).await;
    }
    let mut child = reminder(
        &env,
        &["sender", "tracker"],
        &[("REMINDER__SENDER__CONCURRENCY", &concurrency.to_string())],
    );
    wait_until(Duration::from_secs(30), || async { sends.calls() >= 100 }).await;

    // A black hole: every connection stays open and nothing comes back. Sends already past
    // their claim finish; then nothing more goes out, and nothing is dead-lettered.
    proxy.freeze();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let calls_while_frozen = sends.calls();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        sends.calls(),
        calls_while_frozen,
        "no provider call while the database does not answer"
    );
    assert!(calls_while_frozen < n as u64, "the freeze came mid-flow");
    proxy.thaw();
    wait_until(Duration::from_secs(60), || async {
        sends.calls() >= calls_while_frozen + 150
    })
    .await;

    // Frozen again, and this time the connections are cut instead of thawed: the roles
    // reconnect and carry on.
    proxy.freeze();
    tokio::time::sleep(Duration::from_secs(5)).await;
    proxy.reset();
    proxy.thaw();

    assert_counted_exactly(&pool, n as i64, Duration::from_secs(180)).await;
    assert_eq!(sends.accepted().0, n as u64, "every reminder was sent");
    let repeated = sends.repeated();
    println!(
        "database black-holed twice: {n} reminders, {} provider calls, {} accepted twice",
        sends.calls(),
        repeated.len()
    );
    // A send whose record was cut off with its connection is sent again once its lease is
    // over: at most the sends in flight, each twice at most.
    assert!(
        repeated.len() <= concurrency && repeated.iter().all(|(_, k)| *k == 2),
        "repeated sends beyond the in-flight window: {repeated:?}"
    );
    assert!(
        child.exit_within(Duration::ZERO).await.is_none(),
        "the process rode both freezes out without exiting"
    );
}
