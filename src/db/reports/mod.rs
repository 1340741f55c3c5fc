//! Reads of the report for the HTTP API and the CLI, and the CLI's two writes, by what they
//! serve: `list` (pages of reports and their detail, one report), `statistics` (aggregates,
//! daily counts, over-reminded pairs), `messages` (the message history), `export` (the whole
//! detail view streamed, and its CSV), `replies` (customers' replies) and `admin` (delete a report, reset frequencies).
//! Statistics read the trigger-maintained aggregates, never the whole report table.

mod admin;
pub mod export;
mod list;
mod messages;
mod replies;
mod statistics;

use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};

pub use admin::{delete, reset_frequency};
pub use export::detail_stream;
pub use list::{
    Report, ReportDetail, ReportFilter, ReportSort, by_customer, by_id, by_pair, count, detail,
    list,
};
pub use messages::{MessageFilter, MessageRecord, count_messages, messages};
pub use replies::{ReplyFilter, ReplyRecord, replies};
pub use statistics::{
    DayCounts, OverReminded, Statistics, count_over_reminded, daily, over_reminded, statistics,
};

#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

/// A half-open time range `[start, end)` in UTC, from calendar days in the workshop's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

impl Period {
    /// True when both bounds fall on quarter-hour boundaries, so the quarter-hour message
    /// buckets answer for the period exactly (midnights in every zone in use today do; some
    /// historical local mean times did not).
    pub fn on_bucket_boundaries(&self) -> bool {
        [self.start, self.end]
            .into_iter()
            .flatten()
            .all(|t| t.timestamp().rem_euclid(BUCKET_SECS) == 0 && t.timestamp_subsec_nanos() == 0)
    }
}

/// Width of a `message_buckets` bucket.
const BUCKET_SECS: i64 = 15 * 60;

/// Offsets from which a page first checks the total, so a page past the end costs nothing
/// instead of a walk over the whole table.
const DEEP_OFFSET: i64 = 10_000;

/// Pushes `bucket >= start AND bucket < end` for the bounds given (quarter-hour buckets).
fn push_bucket_range(qb: &mut QueryBuilder<Postgres>, period: Option<Period>) {
    let (start, end) = period.map(|p| (p.start, p.end)).unwrap_or((None, None));
    let mut sep = " WHERE ";
    if let Some(start) = start {
        qb.push(sep).push("bucket >= ").push_bind(start);
        sep = " AND ";
    }
    if let Some(end) = end {
        qb.push(sep).push("bucket < ").push_bind(end);
    }
}
