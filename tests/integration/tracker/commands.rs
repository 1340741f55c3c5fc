//! The operator's commands on the report: `reset-frequency` and `delete` do what they print and
//! keep the message history.

use super::*;

fn reminder_cli(env: &TestEnv, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_reminder"))
        .args(args)
        .env("REMINDER__DATABASE__URL", &env.settings.database.url)
        .env("REMINDER__TELEMETRY__LEVEL", "warn")
        .output()
        .expect("the reminder binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn reset_frequency_and_delete_do_what_they_print_and_keep_the_history() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Tracker]).await;
    let amqp = env.amqp().await;
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let (car, bike, van) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    for (i, (c, v)) in [
        (alice, car),
        (alice, car),
        (alice, bike),
        (bob, van),
        (bob, van),
        (bob, van),
    ]
    .into_iter()
    .enumerate()
    {
        amqp.publish_event(&message_sent(
            &format!("r-{i}"),
            c,
            v,
            "2026-11-24T01:00:00Z",
        ))
        .await;
    }
    wait_until(Duration::from_secs(20), || async {
        logged(app.pool()).await == 6
    })
    .await;
    let pool = app.pool().clone();

    let (ok, out, err) = reminder_cli(
        &env,
        &[
            "report",
            "reset-frequency",
            "--customer",
            &alice.to_string(),
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("reset frequency to 0 on 2 report(s)"), "{out}");
    assert!(out.contains("3 message(s) cleared"), "{out}");
    let car_report = reports::by_pair(&pool, alice, car).await.unwrap().unwrap();
    assert_eq!(car_report.frequency, 0);
    assert_eq!(
        car_report.last_message_date,
        "2026-11-24T01:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(
        reports::by_pair(&pool, bob, van)
            .await
            .unwrap()
            .unwrap()
            .frequency,
        3
    );
    let stats = reports::statistics(&pool, None, (None, None))
        .await
        .unwrap();
    assert_eq!(stats.total_messages, 3);
    assert_eq!(stats.total_reports, 3);
    // The history still has all six, so period statistics still count them.
    let tz: chrono_tz::Tz = "Asia/Jakarta".parse().unwrap();
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
    let period = reports::Period {
        start: Some(reminder::api::params::start_of_day(tz, day)),
        end: Some(reminder::api::params::start_of_day(
            tz,
            day.succ_opt().unwrap(),
        )),
    };
    let in_period = reports::statistics(&pool, Some(period), (Some(day), Some(day)))
        .await
        .unwrap();
    assert_eq!(in_period.total_messages, 6);

    let van_report = reports::by_pair(&pool, bob, van).await.unwrap().unwrap();
    let (ok, out, err) = reminder_cli(&env, &["report", "delete", &van_report.id.to_string()]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("deleted report {}", van_report.id)),
        "{out}"
    );
    assert!(out.contains("frequency 3"), "{out}");
    assert!(
        reports::by_id(&pool, van_report.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(logged(&pool).await, 6);
    let stats = reports::statistics(&pool, None, (None, None))
        .await
        .unwrap();
    assert_eq!(
        (
            stats.total_reports,
            stats.total_messages,
            stats.unique_customers
        ),
        (2, 0, 1)
    );

    let (ok, _, err) = reminder_cli(&env, &["report", "delete", &van_report.id.to_string()]);
    assert!(!ok);
    assert!(err.contains("no report with id"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let (ok, out, err) = reminder_cli(&env, &["report", "reset-frequency"]);
    assert!(ok, "{err}");
    assert!(out.contains("on 0 report(s) of all reports"), "{out}");
    app.stop().await;
}
