//! The whole detail view for export: streamed from the database without holding it in memory,
//! and written as CSV (RFC 4180), shared by `GET /whatsapp-report/export.csv` and
//! `reminder report export`.

use std::fmt::Write;

use futures::stream::BoxStream;
use sqlx::{PgPool, QueryBuilder};

use super::list::{
    DETAIL_COLUMNS, DETAIL_JOINS, ReportDetail, ReportFilter, order_by, push_report_filter,
};

/// The whole detail view as a stream, for CSV export without holding it in memory. A task
/// reads rows into a small bounded channel, so a slow consumer (an HTTP client, a file) pauses
/// the database read instead of buffering rows. The read runs in its own transaction without
/// the pool's statement time-out: that bounds a request's queries, and a client reading a large
/// export slowly must still receive all of it. The transaction ends (and the connection goes
/// back) when the rows are done or the consumer goes away.
pub fn detail_stream(
    pool: &PgPool,
    filter: ReportFilter,
) -> BoxStream<'static, Result<ReportDetail, sqlx::Error>> {
    use futures::StreamExt;
    let pool = pool.clone();
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(async move {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {DETAIL_COLUMNS} FROM whatsapp_report r {DETAIL_JOINS}"
        ));
        push_report_filter(&mut qb, &filter);
        qb.push(order_by(filter.sort));
        let mut conn = match pool.begin().await {
            Ok(conn) => conn,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        if let Err(e) = sqlx::query("SET LOCAL statement_timeout = 0")
            .execute(&mut *conn)
            .await
        {
            let _ = tx.send(Err(e)).await;
            return;
        }
        let mut rows = qb.build_query_as::<ReportDetail>().fetch(&mut *conn);
        while let Some(row) = rows.next().await {
            let failed = row.is_err();
            if tx.send(row).await.is_err() || failed {
                break;
            }
        }
    });
    futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|row| (row, rx)) },
    )
    .boxed()
}

const COLUMNS: &[&str] = &[
    "id",
    "id_customer",
    "id_vehicle",
    "customer_name",
    "customer_phone",
    "plate_number",
    "brand",
    "model",
    "next_maintenance_date",
    "frequency",
    "failed_count",
    "last_message_date",
    "created_at",
    "updated_at",
    // Added after the first columns, so readers that index columns keep working.
    "delivered",
    "read",
    "replies",
    "opted_out",
];

/// The header line.
pub fn csv_header() -> String {
    let mut line = COLUMNS.join(",");
    line.push_str("\r\n");
    line
}

/// One report's line.
pub fn csv_row(r: &ReportDetail) -> String {
    let mut line = String::with_capacity(256);
    let text = |s: &Option<String>| s.as_deref().map(escape).unwrap_or_default();
    let _ = write!(
        line,
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\r\n",
        r.id,
        r.id_customer,
        r.id_vehicle,
        text(&r.customer_name),
        r.customer_phone.as_deref().map(phone).unwrap_or_default(),
        text(&r.plate_number),
        text(&r.brand),
        text(&r.model),
        r.next_maintenance_date
            .map(|d| d.to_string())
            .unwrap_or_default(),
        r.frequency,
        r.failed_count,
        r.last_message_date.to_rfc3339(),
        r.created_at.to_rfc3339(),
        r.updated_at.to_rfc3339(),
        r.delivered,
        r.read,
        r.replies,
        r.opted_out,
    );
    line
}

/// Quotes a free-text field, and defuses text a spreadsheet would run as a formula.
fn escape(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        quote(&format!("'{s}"))
    } else {
        quote(s)
    }
}

/// A phone number keeps its leading `+` (it is data, and a `'` would show in every consumer
/// but a spreadsheet). Phone fields are free text upstream, though: anything that does not look
/// like a phone number is defused like other text.
fn phone(s: &str) -> String {
    let looks_like_phone = s.starts_with(|c: char| c == '+' || c == '(' || c.is_ascii_digit())
        && s.chars()
            .skip(1)
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')' | '.'));
    if looks_like_phone {
        quote(s)
    } else {
        escape(s)
    }
}

fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("a,b"), "\"a,b\"");
        assert_eq!(quote("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(escape("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(phone("+62 812-3456 (7890)"), "+62 812-3456 (7890)");
        assert_eq!(phone("0812.3456.7890"), "0812.3456.7890");
        assert_eq!(phone("+1+cmd|' /C calc'!A0"), "'+1+cmd|' /C calc'!A0");
        assert_eq!(phone("-1+1"), "'-1+1");
        assert_eq!(phone("=1+1"), "'=1+1");
        assert_eq!(csv_header().trim_end().split(',').count(), COLUMNS.len());
    }
}
