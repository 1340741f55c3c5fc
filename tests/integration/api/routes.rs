//! The report's routes over the shared scenario: the list and its paging, single reports, the
//! period statistics (also after a reset) and the detail view's fallback to what the events said.

use super::*;

#[tokio::test]
async fn the_report_list_pages_with_limit_offset_and_x_total_count() {
    let s = scenario().await;
    let (headers, all) = json_with(&s.app, "/whatsapp-report/", StatusCode::OK).await;
    assert_eq!(total_count(&headers), 3);
    let all = all.as_array().unwrap().clone();
    assert_eq!(all.len(), 3);
    // Latest message first: A1 (19:00), A2 (16:59:59), B1 (11-10).
    let order: Vec<&str> = all
        .iter()
        .map(|r| r["id_vehicle"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [s.a1.to_string(), s.a2.to_string(), s.b1.to_string()]
    );
    let a1 = &all[0];
    let mut keys: Vec<&str> = a1.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "created_at",
            "frequency",
            "id",
            "id_customer",
            "id_vehicle",
            "last_message_date",
            "updated_at"
        ]
    );
    assert_eq!(a1["id_customer"], s.a.to_string());
    assert_eq!(a1["frequency"], 3);
    assert_eq!(
        at(a1["last_message_date"].as_str().unwrap()),
        at("2026-11-24T19:00:00Z")
    );

    let (headers, page) =
        json_with(&s.app, "/whatsapp-report/?limit=1&offset=1", StatusCode::OK).await;
    assert_eq!(total_count(&headers), 3);
    assert_eq!(page, json!([all[1]]));
    let (headers, page) = json_with(&s.app, "/whatsapp-report?limit=2", StatusCode::OK).await;
    assert_eq!(
        total_count(&headers),
        3,
        "the path without the slash is the same list"
    );
    assert_eq!(page, json!(all[..2]));
    let (headers, page) = json_with(
        &s.app,
        "/whatsapp-report/?offset=9223372036854775807",
        StatusCode::OK,
    )
    .await;
    assert_eq!(total_count(&headers), 3);
    assert_eq!(page, json!([]));

    let (headers, page) = json_with(
        &s.app,
        &format!("/whatsapp-report/?customer={}&sort=frequency", s.a),
        StatusCode::OK,
    )
    .await;
    assert_eq!(total_count(&headers), 2);
    assert_eq!(page[0]["id_vehicle"], s.a1.to_string());
    assert_eq!(page[1]["frequency"], 1);
    let (headers, _) = json_with(
        &s.app,
        &format!("/whatsapp-report/?vehicle={}", s.b1),
        StatusCode::OK,
    )
    .await;
    assert_eq!(total_count(&headers), 1);
}

#[tokio::test]
async fn single_reports_are_found_by_id_by_customer_and_by_pair_or_are_a_404() {
    let s = scenario().await;
    let (_, all) = json_with(&s.app, "/whatsapp-report/", StatusCode::OK).await;
    let b1 = all[2].clone();
    let id = b1["id"].as_str().unwrap();

    let (_, by_id) = json_with(&s.app, &format!("/whatsapp-report/{id}"), StatusCode::OK).await;
    assert_eq!(by_id, b1);
    let (_, pair) = json_with(
        &s.app,
        &format!("/whatsapp-report/customer/{}/vehicle/{}", s.b, s.b1),
        StatusCode::OK,
    )
    .await;
    assert_eq!(pair, b1);
    let (headers, customer) = json_with(
        &s.app,
        &format!("/whatsapp-report/customer/{}", s.a),
        StatusCode::OK,
    )
    .await;
    assert_eq!(total_count(&headers), 2);
    assert_eq!(customer, json!(all.as_array().unwrap()[..2]));
    let (headers, none) = json_with(
        &s.app,
        &format!("/whatsapp-report/customer/{}", Uuid::new_v4()),
        StatusCode::OK,
    )
    .await;
    assert_eq!((total_count(&headers), none), (0, json!([])));

    assert_error(
        s.app
            .get(&format!("/whatsapp-report/{}", Uuid::new_v4()))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        "unknown report id",
    )
    .await;
    assert_error(
        s.app
            .get(&format!(
                "/whatsapp-report/customer/{}/vehicle/{}",
                s.a, s.b1
            ))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        "a customer and a vehicle that were never paired",
    )
    .await;
}

#[tokio::test]
async fn statistics_count_totals_and_a_period_from_the_message_history_even_after_a_reset() {
    let s = scenario().await;
    let stats = s.app.get_json("/whatsapp-report/statistics").await;
    assert_eq!(
        stats,
        json!({
            "total_reports": 3,
            "total_messages": 5,
            "unique_customers": 2,
            "unique_vehicles": 3,
            "average_frequency": 1.67,
            "max_frequency": 3,
            "last_message_date": "2026-11-24T19:00:00Z",
            "total_failed": 2,
            "total_delivered": 0,
            "total_read": 0,
            "total_failed_after_send": 0,
            "total_replies": 0,
            "opted_out": 0,
            "from": null,
            "to": null
        })
    );

    // Calendar days in Asia/Jakarta: 2026-11-24 starts at 2026-11-23T17:00Z, so the message at
    // 16:59:59Z on the 24th is the 24th's and the one at 17:30Z is the 25th's.
    let period = |from: &str, to: &str| {
        let path = format!("/whatsapp-report/statistics?from={from}&to={to}");
        let app = &s.app;
        async move { app.get_json(&path).await }
    };
    let both = period("2026-11-24", "2026-11-25").await;
    assert_eq!(both["total_messages"], 3);
    assert_eq!(both["total_failed"], 1);
    assert_eq!(both["last_message_date"], "2026-11-24T19:00:00Z");
    assert_eq!(
        (both["from"].clone(), both["to"].clone()),
        (json!("2026-11-24"), json!("2026-11-25"))
    );
    assert_eq!(both["total_reports"], 3, "not restricted by the period");
    let one = period("2026-11-25", "2026-11-25").await;
    assert_eq!(
        (one["total_messages"].clone(), one["total_failed"].clone()),
        (json!(2), json!(1))
    );
    let early = s
        .app
        .get_json("/whatsapp-report/statistics?to=2026-11-20")
        .await;
    assert_eq!(early["total_messages"], 2);
    assert_eq!(early["total_failed"], 0);
    assert_eq!(early["last_message_date"], "2026-11-20T03:00:00Z");
    let quiet = period("2026-11-11", "2026-11-19").await;
    assert_eq!(quiet["total_messages"], 0);
    assert_eq!(quiet["last_message_date"], Value::Null);
    assert_eq!(quiet["average_frequency"], 0.0);

    // `reminder report reset-frequency --customer A` and `reminder report delete <B1>`, as
    // the CLI does them.
    let (rows, cleared) = reports::reset_frequency(s.app.pool(), Some(s.a), None)
        .await
        .unwrap();
    assert_eq!((rows, cleared), (2, 4));
    let stats = s.app.get_json("/whatsapp-report/statistics").await;
    assert_eq!(stats["total_reports"], 3);
    assert_eq!(stats["total_messages"], 1);
    assert_eq!(stats["max_frequency"], 1);
    assert_eq!(stats["average_frequency"], 0.33);
    assert_eq!(
        period("2026-11-24", "2026-11-25").await["total_messages"],
        3,
        "a reset keeps the history, so the period still counts its messages"
    );
    let b1_id = s
        .app
        .get_json(&format!("/whatsapp-report/customer/{}", s.b))
        .await[0]["id"]
        .as_str()
        .unwrap()
        .parse::<Uuid>()
        .unwrap();
    reports::delete(s.app.pool(), b1_id)
        .await
        .unwrap()
        .expect("deleted");
    let stats = s.app.get_json("/whatsapp-report/statistics").await;
    assert_eq!(stats["total_reports"], 2);
    assert_eq!(stats["total_messages"], 0);
    assert_eq!(stats["unique_customers"], 1);
    assert_eq!(stats["unique_vehicles"], 2);
    assert_eq!(stats["max_frequency"], 0);
    assert_eq!(stats["total_failed"], 2);
    assert_eq!(
        period("2026-11-01", "2026-11-30").await["total_messages"],
        5
    );
    assert_eq!(
        aggregate_drift(s.app.pool()).await.unwrap(),
        vec![],
        "the trigger-maintained aggregates match a recount"
    );
}

#[tokio::test]
async fn the_detail_view_prefers_master_data_and_falls_back_to_what_the_events_said() {
    let s = scenario().await;
    let (headers, detail) = json_with(&s.app, "/whatsapp-report/detail", StatusCode::OK).await;
    assert_eq!(total_count(&headers), 3);
    let by_vehicle = |v: Uuid| {
        detail
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id_vehicle"] == v.to_string())
            .unwrap()
            .clone()
    };
    let a1 = by_vehicle(s.a1);
    assert_eq!(a1["customer_name"], "Budi Santoso");
    assert_eq!(a1["customer_phone"], "6281111111111");
    assert_eq!(a1["plate_number"], "B 1111 AAA");
    assert_eq!(a1["brand"], "Honda");
    assert_eq!(a1["model"], "Vario 125");
    assert_eq!(a1["next_maintenance_date"], "2026-12-01");
    assert_eq!(a1["frequency"], 3);
    for key in [
        "id",
        "id_customer",
        "last_message_date",
        "created_at",
        "updated_at",
    ] {
        assert!(a1.get(key).is_some(), "{key}");
    }
    // The customer is known, the vehicle is not: its plate is what the latest event said.
    let a2 = by_vehicle(s.a2);
    assert_eq!(a2["customer_name"], "Budi Santoso");
    assert_eq!(a2["plate_number"], "B 2222 BBB");
    assert_eq!(a2["brand"], Value::Null);
    assert_eq!(a2["model"], Value::Null);
    assert_eq!(a2["next_maintenance_date"], Value::Null);
    assert_eq!(a2["failed_count"], 1);
    // Neither is known.
    let b1 = by_vehicle(s.b1);
    assert_eq!(b1["customer_name"], "Siti Rahma");
    assert_eq!(b1["customer_phone"], "6281234567890");
    assert_eq!(b1["plate_number"], "D 4321 ABC");
    assert_eq!(b1["brand"], Value::Null);

    let (headers, page) = json_with(
        &s.app,
        &format!("/whatsapp-report/detail?customer={}&limit=1&offset=1", s.a),
        StatusCode::OK,
    )
    .await;
    assert_eq!(total_count(&headers), 2);
    assert_eq!(page, json!([a2]));

    // The same view as CSV: header row first, one line per report, no page limit.
    let r = s
        .app
        .get("/whatsapp-report/export.csv?sort=frequency")
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()[reqwest::header::CONTENT_TYPE],
        "text/csv; charset=utf-8"
    );
    let csv = r.text().await.unwrap();
    let lines: Vec<&str> = csv.split_terminator("\r\n").collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[0].starts_with("id,id_customer,id_vehicle,customer_name,customer_phone,plate_number,brand,model,next_maintenance_date,frequency"));
    assert!(
        lines[1].contains(&s.a1.to_string()) && lines[1].contains(",Honda,Vario 125,2026-12-01,3,"),
        "{}",
        lines[1]
    );
    assert!(
        lines.iter().any(|l| l.contains(&s.b1.to_string())
            && l.contains(",Siti Rahma,6281234567890,D 4321 ABC,,,,1,")),
        "{csv}"
    );
    let filtered = s
        .app
        .get(&format!("/whatsapp-report/export.csv?customer={}", s.b))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(filtered.split_terminator("\r\n").count(), 2);
}
