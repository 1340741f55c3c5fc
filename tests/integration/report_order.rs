//! The report's sort orders and maxima, which no index on `whatsapp_report` keeps (so counting
//! a message updates its report row in place): pages most recently messaged first are read
//! through the message history, and must equal the pages a sort of the whole report gives,
//! whatever the history looks like (ties, late events, pairs with long histories, resets,
//! deleted and re-created reports); `/statistics`' maxima are kept by triggers and must equal
//! the table's. Data goes in through the tracker's own statement.

use chrono::{DateTime, Duration, TimeZone, Utc};
use reminder::db::reports::{self, Page, Report, ReportFilter, ReportSort};
use reminder::db::tracking::apply_batch;
use reminder::domain::{MessageOutcome, OutcomeStatus};
use reminder_harness::fixtures::reports::aggregate_drift;
use sqlx::PgPool;
use uuid::Uuid;

use reminder_harness::prelude::*;

/// A small deterministic generator (xorshift), so a failure replays the same history.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn outcome(pair: (Uuid, Uuid), at: DateTime<Utc>, status: OutcomeStatus) -> MessageOutcome {
    let reminder_id = Uuid::new_v4().to_string();
    MessageOutcome {
        event_id: format!("{reminder_id}:{}", status.as_str()),
        reminder_id,
        customer_id: pair.0,
        vehicle_id: pair.1,
        status,
        provider: "cloud_api".into(),
        provider_message_id: (status == OutcomeStatus::Sent).then(|| "wamid.x".into()),
        error_code: (status == OutcomeStatus::Failed).then(|| "131026".into()),
        error: (status == OutcomeStatus::Failed).then(|| "undeliverable".into()),
        attempts: 1,
        at,
        phone: None,
        customer_name: None,
        plate_number: None,
    }
}

/// `n` outcomes over `pairs`, at whole minutes of one day (so many share a time), one in ten
/// failed, applied in batches of 97 as the tracker would.
async fn record(pool: &PgPool, dice: &mut Dice, pairs: &[(Uuid, Uuid)], n: usize) {
    let day = Utc.with_ymd_and_hms(2026, 11, 24, 0, 0, 0).unwrap();
    let outcomes: Vec<MessageOutcome> = (0..n)
        .map(|_| {
            let pair = pairs[dice.below(pairs.len() as u64) as usize];
            let at = day + Duration::minutes(dice.below(600) as i64);
            let status = if dice.below(10) == 0 {
                OutcomeStatus::Failed
            } else {
                OutcomeStatus::Sent
            };
            outcome(pair, at, status)
        })
        .collect();
    for batch in outcomes.chunks(97) {
        apply_batch(pool, batch).await.unwrap();
    }
}

/// The page as a sort of the whole report gives it.
async fn sorted(pool: &PgPool, page: Page) -> Vec<Uuid> {
    sqlx::query_scalar(
        "SELECT id FROM whatsapp_report ORDER BY last_message_date DESC, id LIMIT $1 OFFSET $2",
    )
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn report_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM whatsapp_report")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Pages of sizes 1, 7, 50 and 1000 at offsets all along the report (and beyond its end),
/// through `list` and `detail`, against the sort; and the total.
async fn assert_recent_pages_match_the_sort(pool: &PgPool, stage: &str) {
    let total = report_count(pool).await;
    let recent = ReportFilter::default();
    for limit in [1, 7, 50, 1000] {
        let mut offset = 0;
        while offset <= total + limit {
            let page = Page { limit, offset };
            let expected = sorted(pool, page).await;
            let (rows, listed_total) = reports::list(pool, &recent, page).await.unwrap();
            let ids: Vec<Uuid> = rows.iter().map(|r: &Report| r.id).collect();
            assert_eq!(
                ids, expected,
                "{stage}: list, limit {limit} offset {offset}"
            );
            assert_eq!(
                listed_total, total,
                "{stage}: total, limit {limit} offset {offset}"
            );
            let (rows, _) = reports::detail(pool, &recent, page).await.unwrap();
            let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
            assert_eq!(
                ids, expected,
                "{stage}: detail, limit {limit} offset {offset}"
            );
            // Offsets that are not multiples of the page size too.
            offset += match limit {
                1 => 29,
                7 => 23,
                50 => 37,
                _ => limit / 3 + 1,
            };
        }
    }
}

async fn assert_maxima_match_the_table(pool: &PgPool, stage: &str) {
    assert_eq!(aggregate_drift(pool).await.unwrap(), vec![], "{stage}");
    let stats = reports::statistics(pool, None, (None, None)).await.unwrap();
    let (max_frequency, last): (Option<i32>, Option<DateTime<Utc>>) =
        sqlx::query_as("SELECT max(frequency), max(last_message_date) FROM whatsapp_report")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(stats.max_frequency, max_frequency.unwrap_or(0), "{stage}");
    assert_eq!(stats.last_message_date, last, "{stage}");
}

#[tokio::test]
async fn pages_most_recent_first_equal_a_sort_of_the_whole_report_through_resets_and_deletes() {
    let env = TestEnv::new();
    let pool = env.pool().await;
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15);
    let customers: Vec<Uuid> = (0..40).map(|_| Uuid::new_v4()).collect();
    let pairs: Vec<(Uuid, Uuid)> = (0..300)
        .map(|i| (customers[i % customers.len()], Uuid::new_v4()))
        .collect();
    // A few pairs with long histories in the newest hour, so the first walks through the
    // history find few reports and have to widen.
    let busy = &pairs[..5];
    record(&pool, &mut dice, &pairs, 1500).await;
    let late = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
    let burst: Vec<MessageOutcome> = (0..400)
        .map(|i| {
            outcome(
                busy[i % busy.len()],
                late + Duration::seconds(i as i64 / 3),
                OutcomeStatus::Sent,
            )
        })
        .collect();
    apply_batch(&pool, &burst).await.unwrap();
    // And 200 reports last messaged at the same instant, the newest of all, each with older
    // messages too: a walk that stops inside the tie must not take part of it for all of it.
    let tie = Utc.with_ymd_and_hms(2026, 11, 24, 13, 0, 0).unwrap();
    let tied: Vec<MessageOutcome> = (0..200)
        .flat_map(|i| {
            let pair = (customers[i % customers.len()], Uuid::new_v4());
            (0..4).map(move |k| outcome(pair, tie - Duration::minutes(k * 50), OutcomeStatus::Sent))
        })
        .collect();
    for batch in tied.chunks(97) {
        apply_batch(&pool, batch).await.unwrap();
    }
    assert_recent_pages_match_the_sort(&pool, "after the first messages").await;
    assert_maxima_match_the_table(&pool, "after the first messages").await;

    // Resets keep last_message_date; the busiest pair's frequency, the maximum, drops to 0.
    reports::reset_frequency(&pool, Some(busy[0].0), None)
        .await
        .unwrap();
    assert_maxima_match_the_table(&pool, "after a reset").await;

    // Deleting the most recent report, then messaging its pair again with an older time than
    // its history's newest: the new row's date is older than the history's latest message.
    let (newest, _) = reports::list(
        &pool,
        &ReportFilter::default(),
        Page {
            limit: 3,
            offset: 0,
        },
    )
    .await
    .unwrap();
    for report in &newest {
        reports::delete(&pool, report.id).await.unwrap().unwrap();
    }
    assert_recent_pages_match_the_sort(&pool, "after deletes").await;
    assert_maxima_match_the_table(&pool, "after deletes").await;
    let again: Vec<MessageOutcome> = newest
        .iter()
        .map(|r| {
            outcome(
                (r.id_customer, r.id_vehicle),
                r.last_message_date - Duration::hours(20),
                OutcomeStatus::Sent,
            )
        })
        .collect();
    apply_batch(&pool, &again).await.unwrap();
    record(&pool, &mut dice, &pairs, 500).await;
    assert_recent_pages_match_the_sort(&pool, "after re-created reports").await;
    assert_maxima_match_the_table(&pool, "after re-created reports").await;

    reports::reset_frequency(&pool, None, None).await.unwrap();
    assert_maxima_match_the_table(&pool, "after resetting every report").await;
    assert_recent_pages_match_the_sort(&pool, "after resetting every report").await;
}

#[tokio::test]
async fn pages_by_frequency_and_pages_of_one_customer_keep_their_order() {
    let env = TestEnv::new();
    let pool = env.pool().await;
    let mut dice = Dice(0xD1B5_4A32_D192_ED03);
    let customer = Uuid::new_v4();
    let pairs: Vec<(Uuid, Uuid)> = (0..60)
        .map(|i| {
            let c = if i % 4 == 0 { customer } else { Uuid::new_v4() };
            (c, Uuid::new_v4())
        })
        .collect();
    record(&pool, &mut dice, &pairs, 700).await;

    let by_frequency = ReportFilter {
        sort: ReportSort::Frequency,
        ..ReportFilter::default()
    };
    let page = Page {
        limit: 25,
        offset: 10,
    };
    let (rows, total) = reports::list(&pool, &by_frequency, page).await.unwrap();
    let expected: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM whatsapp_report ORDER BY frequency DESC, id LIMIT 25 OFFSET 10",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), expected);
    assert_eq!(total, report_count(&pool).await);

    let (rows, total) = reports::by_customer(
        &pool,
        customer,
        Page {
            limit: 50,
            offset: 0,
        },
    )
    .await
    .unwrap();
    let expected: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM whatsapp_report WHERE id_customer = $1
         ORDER BY last_message_date DESC, id",
    )
    .bind(customer)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), expected);
    assert_eq!(total, 15);
}

#[tokio::test]
async fn counting_a_message_updates_its_report_row_in_place() {
    let env = TestEnv::new();
    let pool = env.pool().await;
    let pair = (Uuid::new_v4(), Uuid::new_v4());
    let t = Utc.with_ymd_and_hms(2026, 11, 24, 1, 0, 0).unwrap();
    apply_batch(&pool, &[outcome(pair, t, OutcomeStatus::Sent)])
        .await
        .unwrap();
    for i in 1..=20 {
        apply_batch(
            &pool,
            &[outcome(pair, t + Duration::minutes(i), OutcomeStatus::Sent)],
        )
        .await
        .unwrap();
    }
    // The statistics collector reports with a delay; wait until it has seen all 20 updates.
    let mut counts = (0, 0);
    for _ in 0..100 {
        counts = sqlx::query_as(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
             WHERE relname = 'whatsapp_report'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if counts.0 >= 20 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (updates, hot): (i64, i64) = counts;
    assert_eq!(updates, 20, "every count after the first is an update");
    assert_eq!(hot, 20, "and every one of them stayed on its page");
    assert_eq!(
        reports::by_pair(&pool, pair.0, pair.1)
            .await
            .unwrap()
            .unwrap()
            .frequency,
        21
    );
}
