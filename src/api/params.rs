//! Query-string and path parsing: every malformed id, number or date is refused with a 400 whose
//! message names the parameter, never a 500 or a silent default.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use uuid::Uuid;

use super::error::ApiError;
use crate::db::reports::{Page, Period, ReportSort};
use crate::domain::OutcomeStatus;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 1000;

/// The query string as name → value. A name given twice is refused (which value was meant is
/// a guess either way); names no route knows are ignored, like the cache-busting parameters
/// some clients add.
pub struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                ApiError::bad_request("invalid_query", format!("malformed query string: {e}"))
            })?;
        Params::from_vec(pairs)
    }
}

impl Params {
    fn from_vec(pairs: Vec<(String, String)>) -> Result<Params, ApiError> {
        let mut map = HashMap::with_capacity(pairs.len());
        for (k, v) in pairs {
            if map.contains_key(&k) {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("parameter {} is given more than once", shown(&k)),
                ));
            }
            map.insert(k, v);
        }
        Ok(Params(map))
    }

    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Params {
        Params::from_vec(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .expect("distinct names")
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|s| s.trim())
    }

    /// A free-form parameter, trimmed.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name)
    }

    pub fn page(&self) -> Result<Page, ApiError> {
        self.page_or(DEFAULT_LIMIT)
    }

    /// `limit` (default `default_limit`, at most [`MAX_LIMIT`]) and `offset`.
    pub fn page_or(&self, default_limit: i64) -> Result<Page, ApiError> {
        let limit = self.integer("limit")?.unwrap_or(default_limit);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_limit",
                format!("limit must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let offset = self.integer("offset")?.unwrap_or(0);
        Ok(Page { limit, offset })
    }

    /// A non-negative integer parameter.
    pub fn integer(&self, name: &'static str) -> Result<Option<i64>, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        // Digits only: no sign, no spaces, no exponent; at most what a bigint holds.
        match raw.parse::<i64>() {
            Ok(n) if n >= 0 && raw.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(n)),
            _ => Err(ApiError::bad_request(
                invalid_code(name),
                format!(
                    "{name} must be a non-negative integer (at most {}), got {}",
                    i64::MAX,
                    shown(raw)
                ),
            )),
        }
    }

    pub fn uuid(&self, name: &'static str) -> Result<Option<Uuid>, ApiError> {
        self.get(name).map(|raw| parse_uuid(name, raw)).transpose()
    }

    pub fn date(&self, name: &'static str) -> Result<Option<NaiveDate>, ApiError> {
        self.get(name).map(|raw| parse_date(name, raw)).transpose()
    }

    /// `from` and `to`, checked for order.
    pub fn dates(&self) -> Result<(Option<NaiveDate>, Option<NaiveDate>), ApiError> {
        let from = self.date("from")?;
        let to = self.date("to")?;
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err(ApiError::bad_request(
                "invalid_period",
                format!("from ({f}) is after to ({t})"),
            ));
        }
        Ok((from, to))
    }

    /// The `from`/`to` calendar days as a UTC time range in the workshop's zone: `from` alone
    /// runs to the end of today, `to` alone from the beginning. `None` when neither is given.
    pub fn period(&self, tz: Tz) -> Result<Option<Period>, ApiError> {
        let (from, to) = self.dates()?;
        if from.is_none() && to.is_none() {
            return Ok(None);
        }
        // `to` alone ends on `to`; `from` alone runs to today (or to `from` itself, when that
        // is later).
        let end_day = match (from, to) {
            (_, Some(to)) => to,
            (from, None) => {
                let today = Utc::now().with_timezone(&tz).date_naive();
                from.map_or(today, |f| f.max(today))
            }
        };
        Ok(Some(Period {
            start: from.map(|d| start_of_day(tz, d)),
            end: Some(start_of_day(
                tz,
                end_day.checked_add_days(Days::new(1)).unwrap_or(end_day),
            )),
        }))
    }

    pub fn status(&self) -> Result<Option<OutcomeStatus>, ApiError> {
        match self.get("status") {
            None => Ok(None),
            Some("sent") => Ok(Some(OutcomeStatus::Sent)),
            Some("failed") => Ok(Some(OutcomeStatus::Failed)),
            Some(other) => Err(ApiError::bad_request(
                "invalid_status",
                format!("status must be sent or failed, got {}", shown(other)),
            )),
        }
    }

    pub fn sort(&self) -> Result<ReportSort, ApiError> {
        match self.get("sort") {
            None | Some("recent") => Ok(ReportSort::Recent),
            Some("frequency") => Ok(ReportSort::Frequency),
            Some(other) => Err(ApiError::bad_request(
                "invalid_sort",
                format!("sort must be recent or frequency, got {}", shown(other)),
            )),
        }
    }
}

fn invalid_code(name: &str) -> &'static str {
    match name {
        "limit" => "invalid_limit",
        "offset" => "invalid_offset",
        "days" => "invalid_days",
        _ => "invalid_parameter",
    }
}

/// A UUID in its usual hyphenated form (or the 32 bare hex digits, braces or `urn:uuid:`).
pub fn parse_uuid(name: &str, raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw.trim()).map_err(|_| {
        ApiError::bad_request(
            "invalid_id",
            format!("{name} must be a UUID, got {}", shown(raw)),
        )
    })
}

/// Earliest and latest day a period may name: what PostgreSQL's timestamps and every time
/// zone's rules handle, with a margin.
const FIRST_DAY: NaiveDate = NaiveDate::from_ymd_opt(1900, 1, 1).expect("valid");
const LAST_DAY: NaiveDate = NaiveDate::from_ymd_opt(9999, 12, 31).expect("valid");

/// A calendar day written exactly `YYYY-MM-DD`.
pub fn parse_date(name: &str, raw: &str) -> Result<NaiveDate, ApiError> {
    let well_formed = raw.len() == 10
        && raw.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    well_formed
        .then(|| NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok())
        .flatten()
        .filter(|d| (FIRST_DAY..=LAST_DAY).contains(d))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_date",
                format!(
                    "{name} must be a date YYYY-MM-DD between {FIRST_DAY} and {LAST_DAY}, got {}",
                    shown(raw)
                ),
            )
        })
}

/// A client's value as quoted in an error message, cut short so a megabyte of garbage is not
/// echoed back (or logged).
pub fn shown(raw: &str) -> String {
    const MAX_CHARS: usize = 64;
    if raw.chars().count() <= MAX_CHARS {
        format!("{raw:?}")
    } else {
        let head: String = raw.chars().take(MAX_CHARS).collect();
        format!("{head:?}… ({} characters)", raw.chars().count())
    }
}

/// Midnight of `day` in `tz`, in UTC (the earliest instant of that day where DST makes it
/// ambiguous or skips midnight).
pub fn start_of_day(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    let midnight = day.and_hms_opt(0, 0, 0).expect("midnight exists");
    tz.from_local_datetime(&midnight)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(midnight + chrono::Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))
}

/// Path parameters as UUIDs, in order; a malformed one is a 400 naming it.
pub struct Ids(pub Vec<Uuid>);

impl<S: Send + Sync> FromRequestParts<S> for Ids {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request("invalid_id", format!("malformed path: {e}")))?;
        params
            .iter()
            .map(|(name, raw)| parse_uuid(name, raw))
            .collect::<Result<Vec<_>, _>>()
            .map(Ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_bounded() {
        assert_eq!(Params::from_pairs(&[]).page().unwrap().limit, 50);
        assert!(Params::from_pairs(&[("limit", "1001")]).page().is_err());
        assert!(Params::from_pairs(&[("limit", "-1")]).page().is_err());
        assert!(Params::from_pairs(&[("limit", "ten")]).page().is_err());
        assert!(Params::from_pairs(&[("offset", "-5")]).page().is_err());
        assert_eq!(
            Params::from_pairs(&[("limit", "1000"), ("offset", "7")])
                .page()
                .unwrap()
                .offset,
            7
        );
    }

    #[test]
    fn dates_are_exactly_yyyy_mm_dd_within_range() {
        assert_eq!(
            parse_date("from", "2026-11-25").unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()
        );
        for bad in [
            "2026-11-5",
            "2026-02-30",
            "+2026-11-25",
            "20261125",
            "2026/11/25",
            "1899-12-31",
            "0000-01-01",
            "2026-11-25T00:00:00Z",
            "２０２６-11-25",
        ] {
            assert!(parse_date("from", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_repeated_parameter_is_refused_and_long_values_are_cut_short() {
        assert!(
            Params::from_vec(vec![
                ("limit".into(), "1".into()),
                ("limit".into(), "1".into())
            ])
            .is_err()
        );
        let shown = shown(&"x".repeat(10_000));
        assert!(
            shown.len() < 100 && shown.ends_with("(10000 characters)"),
            "{shown}"
        );
    }

    #[test]
    fn numbers_are_plain_digits() {
        for bad in ["+5", "-0", "1e3", "0x10", "99999999999999999999"] {
            assert!(
                Params::from_pairs(&[("offset", bad)]).page().is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn periods_are_calendar_days_in_the_workshop_zone() {
        let tz: Tz = "Asia/Jakarta".parse().unwrap();
        let p = Params::from_pairs(&[("from", "2026-11-01"), ("to", "2026-11-30")])
            .period(tz)
            .unwrap()
            .unwrap();
        assert_eq!(p.start.unwrap().to_rfc3339(), "2026-10-31T17:00:00+00:00");
        assert_eq!(p.end.unwrap().to_rfc3339(), "2026-11-30T17:00:00+00:00");
        assert!(
            Params::from_pairs(&[("from", "2026-12-01"), ("to", "2026-11-30")])
                .period(tz)
                .is_err()
        );
        assert!(
            Params::from_pairs(&[("from", "yesterday")])
                .period(tz)
                .is_err()
        );
        assert!(Params::from_pairs(&[]).period(tz).unwrap().is_none());
        let until = Params::from_pairs(&[("to", "2026-11-20")])
            .period(tz)
            .unwrap()
            .unwrap();
        assert_eq!(until.start, None);
        assert_eq!(until.end.unwrap().to_rfc3339(), "2026-11-20T17:00:00+00:00");
    }
}
