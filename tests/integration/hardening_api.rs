//! The API under clients that are slow or go away: a whole export reaches a client reading it
//! slowly past the request time limit, and shared queries every client abandoned give their
//! pooled connections back.

use std::time::Duration;

use reminder::startup::Role;
use tokio::time::Instant;

use reminder_harness::prelude::*;
use reminder_harness::test_env::TestApp;

const ROWS: i64 = 20_000;

async fn fill_reports(pool: &sqlx::PgPool, rows: i64) {
    sqlx::query(
        "INSERT INTO whatsapp_report (id_customer, id_vehicle, last_message_date, frequency,
                                      customer_name, customer_phone, plate_number)
         SELECT gen_random_uuid(), gen_random_uuid(), now() - make_interval(secs => g), 1,
                'Pelanggan ' || g || repeat(' x', 40), '6281234567890', 'B ' || g || ' XYZ'
         FROM generate_series(1, $1) g",
    )
    .bind(rows)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_client_reading_the_export_slowly_past_the_request_time_limit_gets_every_row() {
    let mut env = TestEnv::new();
    env.settings.http.request_timeout_ms = 300;
    let pool = env.pool().await;
    fill_reports(&pool, ROWS).await;
    let app = env.spawn(&[Role::Api]).await;

    let started = Instant::now();
    let mut r = app.get("/whatsapp-report/export.csv").await;
    assert_eq!(r.status(), 200);
    let mut body = Vec::new();
    while let Some(chunk) = r.chunk().await.expect("the body is not cut") {
        body.extend_from_slice(&chunk);
        // Reads slowly: the server's writes, and so its query, wait for the client.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        started.elapsed() > Duration::from_millis(3 * 300),
        "the read did outlast the request time limit"
    );
    let text = String::from_utf8(body).unwrap();
    assert_eq!(
        text.matches("\r\n").count() as i64,
        ROWS + 1,
        "header and every row"
    );
    app.stop().await;
    pool.close().await;
}

#[tokio::test]
async fn shared_queries_every_client_abandoned_do_not_exhaust_the_api_pool() {
    let mut env = TestEnv::new();
    env.settings.http.request_timeout_ms = 1000;
    env.settings.http.db_connections = 4;
    let pool = env.pool().await;
    let app = env.spawn(&[Role::Api]).await;

    // The detail view reads whatsapp_report: with the table locked, its queries wait.
    let mut blocker = pool.acquire().await.unwrap();
    sqlx::query("BEGIN").execute(&mut *blocker).await.unwrap();
    sqlx::query("LOCK TABLE whatsapp_report IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();

    // Four different keys, each a query holding a connection, each client giving up early.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    for limit in 1..=4 {
        let url = app.url(&format!("/whatsapp-report/detail?limit={limit}"));
        assert!(
            impatient.get(url).send().await.is_err(),
            "the client gave up"
        );
    }

    // The lock is still held: only a route on another table can answer, and only if the
    // abandoned queries gave their connections back.
    let mut answered = false;
    for _ in 0..40 {
        let r = app.get("/whatsapp-report/daily").await;
        if r.status() == 200 {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(answered, "a later request found a free connection");
    sqlx::query("ROLLBACK")
        .execute(&mut *blocker)
        .await
        .unwrap();
    drop(blocker);
    app.stop().await;
    pool.close().await;
}

#[tokio::test]
async fn an_api_on_a_public_address_without_a_token_refuses_to_start() {
    let mut env = TestEnv::new();
    env.settings.http.bind = "0.0.0.0:0".into();
    let err = reminder::startup::Application::build(env.settings.clone(), &[Role::Api])
        .await
        .err()
        .expect("refused");
    assert!(format!("{err:#}").contains("http.api_token"), "{err:#}");
    // Other roles do not listen there and start as before.
    let app = env.spawn(&[Role::Tracker]).await;
    app.stop().await;
}

fn socket_of(app: &TestApp) -> String {
    app.url("").trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection; `None` if it is still open after `within`.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()
    .map(|_| seen)
}

#[tokio::test]
async fn a_client_sending_its_headers_a_byte_at_a_time_is_cut_off_at_the_header_time_limit() {
    use tokio::io::AsyncWriteExt;
    let mut env = TestEnv::new();
    env.settings.http.header_read_timeout_ms = 500;
    let app = env.spawn(&[Role::Api]).await;

    let mut slow = tokio::net::TcpStream::connect(socket_of(&app))
        .await
        .unwrap();
    let started = Instant::now();
    let dribble = async {
        for byte in
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        {
            if slow.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    // Forty bytes at 100 ms each would take four seconds; the server stops listening at 0.5.
    let _ = tokio::time::timeout(Duration::from_secs(6), dribble).await;
    let answer = closed_within(&mut slow, Duration::from_secs(2)).await;
    assert!(answer.is_some(), "the server closed the connection");
    assert!(
        !String::from_utf8_lossy(&answer.unwrap()).contains("200 OK"),
        "the request was never served"
    );
    assert!(started.elapsed() >= Duration::from_millis(400));

    // An idle kept-alive connection is closed the same way after its last response.
    let mut idle = tokio::net::TcpStream::connect(socket_of(&app))
        .await
        .unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = closed_within(&mut idle, Duration::from_secs(3))
        .await
        .expect("closed after the idle time limit");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    app.stop().await;
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_one_closes() {
    let mut env = TestEnv::new();
    env.settings.http.header_read_timeout_ms = 1500;
    env.settings.http.max_connections = 2;
    let app = env.spawn(&[Role::Api]).await;

    // Two clients hold a connection each without sending anything.
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(
            tokio::net::TcpStream::connect(socket_of(&app))
                .await
                .unwrap(),
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    assert!(
        quick.get(app.url("/healthz")).send().await.is_err(),
        "a third connection is not served while two are open"
    );

    // The header time limit closes the silent ones; then the next client is served.
    for stream in &mut held {
        assert!(
            closed_within(stream, Duration::from_secs(3))
                .await
                .is_some()
        );
    }
    let r = app.get("/healthz").await;
    assert_eq!(r.status(), 200);
    app.stop().await;
}
