//! `api`: the real HTTP API (`Application` with the API role) over 1,000,000 reports
//! and 5,000,000 message records, under a closed-loop load of 50 connections per route. For
//! each route: p50, p99 and requests/s, next to `/healthz` under the same load (the HTTP
//! stack's own ceiling on this machine: no database).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{Datelike as _, NaiveDate};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::env::{BenchEnv, guarded};
use crate::opts::Opts;
use crate::report::{Row, Summary, Table, Target, Unit, quantile};
use reminder::startup::{Application, Role};
use reminder_harness::fixtures::{self, Fleet};
use reminder_harness::wait;

/// A route under load: a name, a target p99, and how to pick each request's path.
struct Route {
    name: String,
    p99_target_ms: Option<f64>,
    paths: Arc<dyn Fn(u64) -> String + Send + Sync>,
}

/// One round of load on one route.
struct Load {
    p50: f64,
    p99: f64,
    rps: f64,
}

#[derive(Default)]
struct RouteFigures {
    p50: Vec<f64>,
    p99: Vec<f64>,
    rps: Vec<f64>,
}

pub async fn run(opts: &Opts) -> anyhow::Result<bool> {
    let o = opts.clone();
    let (figures, routes, load_secs) =
        guarded(
            "api",
            opts,
            move |env| async move { measure(&env, &o).await },
        )
        .await?;
    let mut t = Table::new(format!(
        "api: {} reports, {} message records, {} connections, {} s per route and round",
        crate::report::thousands(opts.api_reports as f64),
        crate::report::thousands(opts.api_messages as f64),
        opts.api_connections,
        opts.api_seconds
    ));
    let ceiling = &figures[0];
    let c50 = Summary::of(&ceiling.p50);
    let c99 = Summary::of(&ceiling.p99);
    let crps = Summary::of(&ceiling.rps);
    t.row(Row::new("/healthz p50 (ceiling)", c50, Unit::Ms));
    t.row(Row::new("/healthz p99 (ceiling)", c99, Unit::Ms));
    t.row(Row::new(
        "/healthz requests/s (ceiling)",
        crps,
        Unit::PerSec,
    ));
    for (route, f) in routes.iter().zip(&figures).skip(1) {
        t.row(Row::of(format!("{} p50", route.name), &f.p50, Unit::Ms).vs(
            "/healthz",
            c50,
            Unit::Ms,
        ));
        let mut p99 =
            Row::of(format!("{} p99", route.name), &f.p99, Unit::Ms).vs("/healthz", c99, Unit::Ms);
        if let Some(ms) = route.p99_target_ms {
            p99 = p99.target(Target::Below(ms));
        }
        t.row(p99);
        t.row(
            Row::of(format!("{} requests/s", route.name), &f.rps, Unit::PerSec).vs(
                "/healthz",
                crps,
                Unit::PerSec,
            ),
        );
    }
    t.note(format!(
        "closed loop: each connection sends its next request when the previous answer is read; load generator and API share the 2 cores; data loaded in {load_secs:.0} s"
    ));
    t.note("latency ratios compare with /healthz under the same load (lower is better); the API process also runs its once-a-minute over-reminded refresh");
    t.print();
    Ok(t.all_met())
}

async fn measure(env: &BenchEnv, o: &Opts) -> anyhow::Result<(Vec<RouteFigures>, Vec<Route>, f64)> {
    let settings = env.settings.clone();
    let app = Application::build(settings.clone(), &[Role::Api]).await?;
    let ctx = app.context().clone();
    let port = app.port().context("the API listens")?;
    let loading = Instant::now();
    let today = chrono::Utc::now().date_naive();
    fixtures::load_fleet(
        &ctx.pool,
        &Fleet {
            vehicles: o.api_reports,
            due: 0,
            run_date: today,
            days_ahead: settings.producer.days_ahead,
        },
    )
    .await?;
    let history = fixtures::load_history(&ctx.pool, o.api_reports, o.api_messages).await?;
    let load_secs = loading.elapsed().as_secs_f64();
    let totals: (i64, i64) = sqlx::query_as(
        "SELECT coalesce(sum(total_reports), 0)::bigint, coalesce(sum(total_messages), 0)::bigint FROM report_totals",
    )
    .fetch_one(&ctx.pool)
    .await?;
    anyhow::ensure!(
        totals == (history.reports as i64, history.messages as i64),
        "the aggregates say {totals:?} after loading {} reports and {} messages",
        history.reports,
        history.messages
    );
    let customers: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id_customer FROM whatsapp_report TABLESAMPLE SYSTEM (1) LIMIT 2000",
    )
    .fetch_all(&ctx.pool)
    .await?;
    anyhow::ensure!(!customers.is_empty(), "no customers to ask for");

    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let server = tokio::spawn(app.run(shutdown.clone()));
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(o.api_connections)
        .timeout(Duration::from_secs(30))
        .build()?;
    wait::poll(
        "the API to answer",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            Ok(client
                .get(format!("{base}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
                .then_some(()))
        },
    )
    .await?;

    let (from, to) = last_month(today);
    let customers = Arc::new(customers);
    let routes = vec![
        fixed("/healthz", None),
        fixed("/whatsapp-report/statistics", Some(10.0)),
        Route {
            name: "/whatsapp-report/statistics?from&to (a month)".into(),
            p99_target_ms: Some(10.0),
            paths: Arc::new(move |_| format!("/whatsapp-report/statistics?from={from}&to={to}")),
        },
        fixed("/whatsapp-report/detail (first page of 50)", Some(25.0))
            .with_path("/whatsapp-report/detail"),
        // No target: what a dashboard's paging and its "most reminded" panel cost. Pages 1-20
        // differ per request, so nothing is shared; the frequency order sorts the report.
        Route {
            name: "/whatsapp-report/detail, pages 1-20 of 50".into(),
            p99_target_ms: None,
            paths: Arc::new(|i| format!("/whatsapp-report/detail?offset={}", (i % 20) * 50)),
        },
        fixed("/whatsapp-report/detail?sort=frequency&limit=10", None)
            .with_path("/whatsapp-report/detail?sort=frequency&limit=10"),
        Route {
            name: "/whatsapp-report/customer/{id}".into(),
            p99_target_ms: Some(10.0),
            paths: Arc::new(move |i| {
                let c = customers[(i as usize * 7919) % customers.len()];
                format!("/whatsapp-report/customer/{c}")
            }),
        },
    ];
    let mut figures: Vec<RouteFigures> = routes.iter().map(|_| RouteFigures::default()).collect();
    // Warm every route once (plans, caches, connections) before any load is timed.
    for route in &routes {
        load(
            &client,
            &base,
            route,
            o.api_connections,
            Duration::from_secs(1),
        )
        .await?;
    }
    // Rounds are interleaved across routes so slow drift (autovacuum, other tenants) spreads
    // over all routes instead of landing on one.
    for _ in 0..o.rounds {
        for (route, f) in routes.iter().zip(figures.iter_mut()) {
            let l = load(
                &client,
                &base,
                route,
                o.api_connections,
                Duration::from_secs(o.api_seconds),
            )
            .await?;
            f.p50.push(l.p50);
            f.p99.push(l.p99);
            f.rps.push(l.rps);
        }
    }
    shutdown.cancel();
    server.await??;
    Ok((figures, routes, load_secs))
}

fn fixed(path: &str, p99_target_ms: Option<f64>) -> Route {
    let p = path.to_string();
    Route {
        name: path.to_string(),
        p99_target_ms,
        paths: Arc::new(move |_| p.clone()),
    }
}

impl Route {
    fn with_path(mut self, path: &str) -> Route {
        let p = path.to_string();
        self.paths = Arc::new(move |_| p.clone());
        self
    }
}

/// The calendar month before the one `today` is in.
fn last_month(today: NaiveDate) -> (NaiveDate, NaiveDate) {
    let first_this = today.with_day(1).expect("day 1 exists");
    let last_prev = first_this.pred_opt().expect("a previous day");
    (last_prev.with_day(1).expect("day 1 exists"), last_prev)
}

/// `connections` loops, each sending one request after the other for `duration`.
async fn load(
    client: &reqwest::Client,
    base: &str,
    route: &Route,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Load> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..connections as u64 {
        let client = client.clone();
        let base = base.to_string();
        let paths = route.paths.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(4096);
            let mut i = worker;
            while Instant::now() < deadline {
                let url = format!("{base}{}", paths(i));
                i += connections as u64;
                let sent = Instant::now();
                let response = client.get(&url).send().await?;
                let status = response.status();
                let _ = response.bytes().await?;
                if !status.is_success() {
                    anyhow::bail!("GET {url}: {status}");
                }
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            Ok::<_, anyhow::Error>(latencies)
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.context("a load task panicked")??);
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.total_cmp(b));
    Ok(Load {
        p50: quantile(&all, 0.5),
        p99: quantile(&all, 0.99),
        rps: all.len() as f64 / secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_month_is_the_whole_previous_calendar_month() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        assert_eq!(last_month(d(2026, 3, 15)), (d(2026, 2, 1), d(2026, 2, 28)));
        assert_eq!(last_month(d(2026, 1, 1)), (d(2025, 12, 1), d(2025, 12, 31)));
    }
}
