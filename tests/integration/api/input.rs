//! Strict input: malformed parameters are a 400 with the JSON error body, nothing a client
//! sends is a server error, and other methods are a 405.

use super::*;

#[tokio::test]
async fn malformed_input_is_a_400_with_the_documented_error_body() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Api]).await;
    let id = Uuid::new_v4();
    let long_id = "a".repeat(5000);
    let cases: Vec<(String, &str)> = vec![
        ("/whatsapp-report/not-a-uuid".into(), "invalid_id"),
        (format!("/whatsapp-report/{id}x"), "invalid_id"),
        (format!("/whatsapp-report/{long_id}"), "invalid_id"),
        ("/whatsapp-report/%FF%FE%00".into(), "invalid_id"),
        ("/whatsapp-report/%F0%9F%9A%97".into(), "invalid_id"),
        ("/whatsapp-report/customer/12345".into(), "invalid_id"),
        (
            format!("/whatsapp-report/customer/{id}/vehicle/nope"),
            "invalid_id",
        ),
        (
            format!("/whatsapp-report/customer/nope/vehicle/{id}"),
            "invalid_id",
        ),
        ("/whatsapp-report/?customer=nope".into(), "invalid_id"),
        (
            "/whatsapp-report/detail?vehicle=%27%20OR%201%3D1".into(),
            "invalid_id",
        ),
        (
            "/whatsapp-report/messages?customer=123".into(),
            "invalid_id",
        ),
        ("/whatsapp-report/export.csv?vehicle=x".into(), "invalid_id"),
        ("/whatsapp-report/?limit=abc".into(), "invalid_limit"),
        ("/whatsapp-report/?limit=-1".into(), "invalid_limit"),
        ("/whatsapp-report/?limit=0".into(), "invalid_limit"),
        ("/whatsapp-report/?limit=1001".into(), "invalid_limit"),
        ("/whatsapp-report/?limit=1e3".into(), "invalid_limit"),
        ("/whatsapp-report/?limit=10.5".into(), "invalid_limit"),
        ("/whatsapp-report/?limit=".into(), "invalid_limit"),
        (
            "/whatsapp-report/detail?limit=99999999999999999999999".into(),
            "invalid_limit",
        ),
        ("/whatsapp-report/?offset=-1".into(), "invalid_offset"),
        (
            "/whatsapp-report/messages?offset=ten".into(),
            "invalid_offset",
        ),
        (
            "/whatsapp-report/?offset=9223372036854775808".into(),
            "invalid_offset",
        ),
        (
            format!("/whatsapp-report/customer/{id}?limit=5000"),
            "invalid_limit",
        ),
        (
            "/whatsapp-report/statistics?from=2026-13-01".into(),
            "invalid_date",
        ),
        (
            "/whatsapp-report/statistics?from=2026-02-30".into(),
            "invalid_date",
        ),
        (
            "/whatsapp-report/statistics?to=yesterday".into(),
            "invalid_date",
        ),
        (
            "/whatsapp-report/statistics?from=2026-1-5".into(),
            "invalid_date",
        ),
        (
            "/whatsapp-report/statistics?from=-200000-01-01".into(),
            "invalid_date",
        ),
        (
            "/whatsapp-report/statistics?to=%2B99999-01-01".into(),
            "invalid_date",
        ),
        (
            "/whatsapp-report/messages?from=0000-01-01".into(),
            "invalid_date",
        ),
        (
            "/whatsapp-report/daily?to=2026-11-25T00:00:00Z".into(),
            "invalid_date",
        ),
        (
            "/whatsapp-report/statistics?from=2026-11-26&to=2026-11-25".into(),
            "invalid_period",
        ),
        (
            "/whatsapp-report/messages?from=2026-11-26&to=2026-11-25".into(),
            "invalid_period",
        ),
        (
            "/whatsapp-report/daily?from=2026-11-26&to=2026-11-25".into(),
            "invalid_period",
        ),
        (
            "/whatsapp-report/daily?from=2000-01-01&to=2026-01-01".into(),
            "invalid_period",
        ),
        (
            "/whatsapp-report/messages?status=pending".into(),
            "invalid_status",
        ),
        ("/whatsapp-report/?sort=random".into(), "invalid_sort"),
        ("/whatsapp-report/?limit=1&limit=2".into(), "invalid_query"),
        (
            "/whatsapp-report/statistics?from=2026-11-01&from=2026-11-02".into(),
            "invalid_query",
        ),
        (
            "/whatsapp-report/over-reminded?days=0".into(),
            "invalid_days",
        ),
        (
            "/whatsapp-report/over-reminded?days=x".into(),
            "invalid_days",
        ),
        (
            "/whatsapp-report/over-reminded?max=-4".into(),
            "invalid_parameter",
        ),
    ];
    for (path, code) in cases {
        assert_error(app.get(&path).await, StatusCode::BAD_REQUEST, code, &path).await;
    }
}

#[tokio::test]
async fn nothing_a_client_sends_is_a_server_error() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Api]).await;
    let id = Uuid::new_v4();
    let long = "9".repeat(3000);
    let routes = [
        "/whatsapp-report/".to_string(),
        "/whatsapp-report".into(),
        "/whatsapp-report/detail".into(),
        "/whatsapp-report/statistics".into(),
        "/whatsapp-report/messages".into(),
        "/whatsapp-report/daily".into(),
        "/whatsapp-report/over-reminded".into(),
        "/whatsapp-report/export.csv".into(),
        format!("/whatsapp-report/customer/{id}"),
        format!("/whatsapp-report/customer/{id}/vehicle/{id}"),
        format!("/whatsapp-report/{id}"),
        "/healthz".into(),
        "/metrics".into(),
        "/openapi.json".into(),
        "/".into(),
    ];
    let queries = [
        String::new(),
        "?".into(),
        "?&&&=&=".into(),
        "?%ZZ=%ZZ&%=%".into(),
        "?limit=%FF&offset=%00".into(),
        "?from=%E2%80%AE2026-11-01".into(),
        "?from=9999-12-31".into(),
        "?from=1900-01-01".into(),
        "?to=1900-01-01".into(),
        "?from=9999-12-31&to=9999-12-31".into(),
        "?limit=1000&offset=9223372036854775807".into(),
        format!("?offset={long}"),
        format!("?customer={long}&vehicle={long}"),
        "?customer=%7B00000000-0000-0000-0000-000000000000%7D".into(),
        "?status=sent&status=failed".into(),
        "?days=3660&max=9223372036854775807".into(),
        "?max=2147483648".into(),
        "?sort=frequency&limit=1000".into(),
        "?%F0%9F%98%80=%F0%9F%98%80".into(),
        "?from=2026-11-25&to=".into(),
    ];
    for route in &routes {
        for query in &queries {
            let path = format!("{route}{query}");
            let r = app.get(&path).await;
            let status = r.status();
            assert!(
                status.is_success() || status.is_client_error(),
                "GET {path}: {status}"
            );
            if status.is_client_error() {
                let code = error_code(r, &path).await;
                match status {
                    StatusCode::BAD_REQUEST => {
                        assert!(code.starts_with("invalid_"), "GET {path}: {code}")
                    }
                    // The random ids have no report.
                    StatusCode::NOT_FOUND => assert_eq!(code, "not_found", "GET {path}"),
                    other => panic!("GET {path}: {other}"),
                }
            }
        }
    }
}

#[tokio::test]
async fn other_methods_are_a_405_with_a_json_body() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Api]).await;
    let id = Uuid::new_v4();
    let cases = [
        (Method::POST, "/whatsapp-report/".to_string()),
        (Method::POST, "/whatsapp-report".into()),
        (Method::PUT, "/whatsapp-report/statistics".into()),
        (Method::DELETE, format!("/whatsapp-report/{id}")),
        (Method::PATCH, format!("/whatsapp-report/customer/{id}")),
        (
            Method::DELETE,
            format!("/whatsapp-report/customer/{id}/vehicle/{id}"),
        ),
        (Method::POST, "/whatsapp-report/export.csv".into()),
        (Method::OPTIONS, "/whatsapp-report/messages".into()),
        (Method::POST, "/healthz".into()),
        (Method::DELETE, "/metrics".into()),
        (Method::PUT, "/openapi.json".into()),
        (Method::POST, "/".into()),
    ];
    for (method, path) in cases {
        let r = app
            .http
            .request(method.clone(), app.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.headers()[reqwest::header::ALLOW],
            "GET, HEAD",
            "{method} {path}"
        );
        assert_error(
            r,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            &format!("{method} {path}"),
        )
        .await;
    }
    // HEAD is GET without the body.
    let r = app
        .http
        .head(app.url("/whatsapp-report/statistics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()[reqwest::header::CONTENT_TYPE],
        "application/json"
    );
    assert!(r.bytes().await.unwrap().is_empty());
    // Unknown paths are a JSON 404.
    for path in [
        "/nope",
        "/whatsapp-report/statistics/extra",
        "/docs",
        "/whatsapp-report/customer/x/y",
    ] {
        assert_error(
            app.get(path).await,
            StatusCode::NOT_FOUND,
            "not_found",
            path,
        )
        .await;
    }
}
