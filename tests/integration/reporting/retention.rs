//! Retention: `reminder history prune` removes exactly the history past retention, and the
//! daily figures of pruned days stay what they were.

use chrono::{DateTime, Days, Utc};
use chrono_tz::Tz;
use reminder::startup::Role;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use reminder_harness::prelude::*;

use super::reminder_cli;

/// Inserts `n` history rows of one pair at `at` (half sent, half failed) and as many finished
/// dispatch records, as the tracker and the sender would have left them.
async fn history_at(pool: &PgPool, at: DateTime<Utc>, n: i64) {
    let (c, v) = (Uuid::new_v4(), Uuid::new_v4());
    sqlx::query(
        "INSERT INTO message_log (event_id, reminder_id, id_customer, id_vehicle, status, provider,
                                  provider_message_id, error_code, attempts, at)
         SELECT 'e-' || r, r, $1, $2, CASE WHEN i % 2 = 0 THEN 'sent' ELSE 'failed' END, 'log',
                CASE WHEN i % 2 = 0 THEN 'wamid.' || r END, CASE WHEN i % 2 = 1 THEN '131026' END,
                1, $3
         FROM (SELECT i, gen_random_uuid()::text AS r FROM generate_series(1, $4) i) s",
    )
    .bind(c)
    .bind(v)
    .bind(at)
    .bind(n)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO reminder_dispatch (reminder_id, id_customer, id_vehicle, phone, status,
                                        provider, outcome_at, created_at, updated_at)
         SELECT gen_random_uuid()::text, $1, $2, '6281234567890', 'sent', 'log', $3, $3, $3
         FROM generate_series(1, $4)",
    )
    .bind(c)
    .bind(v)
    .bind(at)
    .bind(n)
    .execute(pool)
    .await
    .unwrap();
}

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_prune_removes_exactly_the_history_past_retention_and_keeps_the_daily_figures() {
    let env = TestEnv::new();
    let pool = env.pool().await;
    let now = Utc::now();
    history_at(&pool, now - chrono::Duration::days(420), 40).await;
    history_at(&pool, now - chrono::Duration::days(401), 30).await;
    history_at(&pool, now - chrono::Duration::days(300), 20).await;
    history_at(&pool, now - chrono::Duration::days(2), 10).await;
    // A dispatch still retrying is live work, however old.
    sqlx::query(
        "INSERT INTO reminder_dispatch (reminder_id, id_customer, id_vehicle, phone, status,
                                        provider, created_at, updated_at)
         VALUES ('live', gen_random_uuid(), gen_random_uuid(), '6281234567890', 'retrying', 'log',
                 now() - interval '500 days', now() - interval '500 days')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let app = env.spawn(&[Role::Api]).await;
    let tz: Tz = env.settings.producer.timezone.parse().unwrap();
    let today = now.with_timezone(&tz).date_naive();
    let ranges = [
        (today - Days::new(430), today - Days::new(390)),
        (today - Days::new(430), today),
        (today - Days::new(420), today - Days::new(420)),
    ];
    let mut before = Vec::new();
    for (from, to) in ranges {
        before.push(
            app.get_json(&format!("/whatsapp-report/statistics?from={from}&to={to}"))
                .await,
        );
        before.push(
            app.get_json(&format!("/whatsapp-report/daily?from={from}&to={to}"))
                .await,
        );
    }
    assert_eq!(before[0]["total_messages"], 35);
    assert_eq!(before[0]["total_failed"], 35);

    // A dry run prints what would go and deletes nothing.
    let (ok, stdout, stderr) = reminder_cli(
        &env,
        &["history", "prune", "--older-than-days", "365", "--dry-run"],
        &[],
    );
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("would delete") && stdout.contains("message_log: 70"),
        "{stdout}"
    );
    assert!(stdout.contains("reminder_dispatch: 70"), "{stdout}");
    assert_eq!(count(&pool, "message_log").await, 100);
    assert_eq!(count(&pool, "reminder_dispatch").await, 101);

    // The configured retention prunes exactly the rows older than 365 days.
    let (ok, stdout, stderr) = reminder_cli(
        &env,
        &["history", "prune"],
        &[("REMINDER__RETENTION__HISTORY_DAYS", "365")],
    );
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("deleted") && stdout.contains("message_log: 70"),
        "{stdout}"
    );
    assert!(stdout.contains("reminder_dispatch: 70"), "{stdout}");
    assert_eq!(count(&pool, "message_log").await, 30);
    let old: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM message_log WHERE at < now() - interval '365 days'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(old, 0);
    assert_eq!(
        count(&pool, "reminder_dispatch").await,
        31,
        "the retrying one stays"
    );

    let mut after = Vec::new();
    for (from, to) in ranges {
        after.push(
            app.get_json(&format!("/whatsapp-report/statistics?from={from}&to={to}"))
                .await,
        );
        after.push(
            app.get_json(&format!("/whatsapp-report/daily?from={from}&to={to}"))
                .await,
        );
    }
    assert_eq!(before, after);

    // The message list counts only what it can still list.
    for query in ["limit=1000", "limit=1000&status=failed"] {
        let r = app.get(&format!("/whatsapp-report/messages?{query}")).await;
        let total: i64 = r.headers()["x-total-count"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let listed = r.json::<Value>().await.unwrap().as_array().unwrap().len() as i64;
        assert_eq!(total, listed, "{query}");
    }
    let r = app.get("/whatsapp-report/messages?limit=1").await;
    assert_eq!(r.headers()["x-total-count"], "30");

    // Retention off and no --older-than-days: nothing to do, said plainly.
    let (ok, _, stderr) = reminder_cli(&env, &["history", "prune"], &[]);
    assert!(!ok && stderr.contains("retention.history_days"), "{stderr}");
    app.stop().await;
}
