//! What operators rely on: the API token, health and readiness (also with the database or the
//! broker away), metrics, the OpenAPI document, and that the API writes nothing.

use super::*;

#[tokio::test]
async fn a_configured_token_guards_every_report_route_and_nothing_else() {
    let env = TestEnv::new();
    let mut settings = env.settings.clone();
    settings.http.api_token = Secret::new("s3cret-token");
    let app = env.spawn_with(settings, &[Role::Api]).await;
    let id = Uuid::new_v4();
    for path in [
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
    ] {
        let url = app.url(&path);
        let r = app.http.get(&url).send().await.unwrap();
        assert_eq!(r.headers()[reqwest::header::WWW_AUTHENTICATE], "Bearer");
        assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized", &path).await;
        for wrong in [
            "Bearer s3cret-toke",
            "Bearer s3cret-token2",
            "Basic czNjcmV0LXRva2Vu",
            "s3cret-token",
            "Bearer",
        ] {
            let r = app
                .http
                .get(&url)
                .header("authorization", wrong)
                .send()
                .await
                .unwrap();
            assert_error(
                r,
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                &format!("{path} with {wrong}"),
            )
            .await;
        }
        let r = app
            .http
            .get(&url)
            .bearer_auth("s3cret-token")
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            r.status() == StatusCode::OK || r.status() == StatusCode::NOT_FOUND,
            "{path}: {}",
            r.status()
        );
    }
    let r = app
        .http
        .get(app.url("/whatsapp-report/statistics"))
        .header("authorization", "bearer s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the scheme name is case-insensitive"
    );
    for open in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/"] {
        assert_eq!(app.get(open).await.status(), StatusCode::OK, "{open}");
    }

    // Without a token configured, no header is needed.
    let open = env.spawn(&[Role::Api]).await;
    assert_eq!(
        open.get("/whatsapp-report/statistics").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn health_readiness_metrics_and_the_dashboard_are_served() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Api]).await;
    let (_, health) = json_with(&app, "/healthz", StatusCode::OK).await;
    assert_eq!(health, json!({"status": "ok"}));
    let (_, ready) = json_with(&app, "/readyz", StatusCode::OK).await;
    assert_eq!(
        ready,
        json!({"status": "ready", "database": true, "broker": true})
    );

    app.get("/whatsapp-report/statistics").await;
    app.get("/whatsapp-report/nope").await;
    let r = app.get("/metrics").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = r.text().await.unwrap();
    assert!(
        text.contains(r#"http_requests_total{route="/whatsapp-report/statistics",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"http_requests_total{route="/whatsapp-report/{id}",status="400"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"http_request_duration_seconds_count{route="/whatsapp-report/statistics"} 1"#
        ),
        "{text}"
    );

    let r = app.get("/").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn the_database_being_down_is_a_503_and_not_ready() {
    let env = TestEnv::new();
    let mut settings = env.settings.clone();
    // Nothing listens on port 1: every connection attempt is refused.
    settings.database.url = "postgres://postgres@127.0.0.1:1/reminder_nowhere".into();
    settings.database.migrate_on_start = false;
    settings.database.acquire_timeout_ms = 300;
    let app = env.spawn_with(settings, &[Role::Api]).await;
    for path in [
        "/whatsapp-report/",
        "/whatsapp-report/detail",
        "/whatsapp-report/statistics",
        "/whatsapp-report/messages",
        "/whatsapp-report/daily",
        "/whatsapp-report/over-reminded",
        "/whatsapp-report/export.csv",
    ] {
        assert_error(
            app.get(path).await,
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            path,
        )
        .await;
    }
    let r = app.get("/readyz").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "not_ready", "database": false, "broker": true})
    );
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_broker_being_down_is_not_ready() {
    let env = TestEnv::new();
    let mut settings = env.settings.clone();
    settings.amqp.url = "amqp://guest:guest@127.0.0.1:1/%2f".into();
    let app = env.spawn_unready(settings, &[Role::Api]).await;
    let r = app.get("/readyz").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "not_ready", "database": true, "broker": false})
    );
    assert_eq!(
        app.get("/whatsapp-report/statistics").await.status(),
        StatusCode::OK,
        "reads need only the database"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_the_router_serves() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Api]).await;
    let (_, doc) = json_with(&app, "/openapi.json", StatusCode::OK).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/whatsapp-report/",
        "/whatsapp-report/detail",
        "/whatsapp-report/statistics",
        "/whatsapp-report/customer/{id_customer}",
        "/whatsapp-report/customer/{id_customer}/vehicle/{id_vehicle}",
        "/whatsapp-report/{id}",
        "/whatsapp-report/messages",
        "/whatsapp-report/daily",
        "/whatsapp-report/over-reminded",
        "/whatsapp-report/export.csv",
        "/",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(paths.contains_key(route), "{route} is not in the document");
    }
    // Every documented operation is a GET the router answers (never its 404 or 405 fallback),
    // and the router serves nothing else: it is built from the same registrations, and paths
    // the document lacks are 404s.
    for (path, item) in paths {
        let methods: Vec<&String> = item
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| {
                [
                    "get", "put", "post", "delete", "options", "head", "patch", "trace",
                ]
                .contains(&k.as_str())
            })
            .collect();
        assert_eq!(methods, ["get"], "{path}");
        let concrete = path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    Uuid::new_v4().to_string()
                } else {
                    segment.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let r = app.get(&concrete).await;
        assert_ne!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        if r.status() == StatusCode::NOT_FOUND {
            let body: Value = r.json().await.unwrap();
            assert_ne!(
                body["message"], "no such route",
                "{path} is documented but not served"
            );
        }
    }
    for undocumented in [
        "/docs",
        "/swagger",
        "/api",
        "/whatsapp-report/statistics/today",
        "/assets/other.js",
    ] {
        assert_eq!(
            app.get(undocumented).await.status(),
            StatusCode::NOT_FOUND,
            "{undocumented}"
        );
    }
    // The document marks the report routes as guarded by the optional bearer token.
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn the_api_writes_nothing() {
    let s = scenario().await;
    let before = snapshot(s.app.pool()).await;
    let paths = [
        "/whatsapp-report/".to_string(),
        "/whatsapp-report/detail?sort=frequency".into(),
        "/whatsapp-report/statistics".into(),
        "/whatsapp-report/statistics?from=2026-11-01&to=2026-11-30".into(),
        "/whatsapp-report/messages?status=sent".into(),
        "/whatsapp-report/daily".into(),
        "/whatsapp-report/over-reminded?days=365&max=0".into(),
        "/whatsapp-report/export.csv".into(),
        format!("/whatsapp-report/customer/{}", s.a),
        format!("/whatsapp-report/customer/{}/vehicle/{}", s.a, s.a1),
        "/readyz".into(),
        "/metrics".into(),
    ];
    for path in &paths {
        assert_eq!(s.app.get(path).await.status(), StatusCode::OK, "{path}");
    }
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        for path in &paths {
            s.app
                .http
                .request(method.clone(), s.app.url(path))
                .body("{}")
                .send()
                .await
                .unwrap();
        }
    }
    assert_eq!(snapshot(s.app.pool()).await, before);
}

/// A digest of every table's content.
async fn snapshot(pool: &PgPool) -> Vec<(String, Option<String>)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut out = Vec::new();
    for table in tables {
        let digest: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM \"{table}\" t"
        )))
        .fetch_one(pool)
        .await
        .unwrap();
        out.push((table, digest));
    }
    out
}
