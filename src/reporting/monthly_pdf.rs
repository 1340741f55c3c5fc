//! The monthly management report as a PDF: the month's figures, a messages-per-day chart, the
//! most reminded customer/vehicle pairs and the most common failure reasons, on A4 pages.

mod draw;

use chrono::{DateTime, Datelike, Months, NaiveDate, Timelike, Utc};
use krilla::Document;
use krilla::metadata::{DateTime as PdfDateTime, Metadata};
use krilla::page::PageSettings;
use serde::{Deserialize, Serialize};

use draw::{ACCENT, Align, Canvas, DayBar, Fonts, INK, MUTED, Pen, Weight, col};

/// Everything the monthly report shows, already aggregated for one calendar month.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonthlyReport {
    /// Any day of the month; the report covers that whole calendar month.
    pub month: NaiveDate,
    /// The workshop's time zone name, in which the days are counted (e.g. "Asia/Jakarta").
    pub workshop_tz: String,
    pub generated_at: DateTime<Utc>,
    pub figures: Figures,
    /// One entry per day of the month (days without messages carry zeros).
    pub daily: Vec<Day>,
    /// The most reminded customer/vehicle pairs, most reminded first; the first ten are shown.
    pub top_pairs: Vec<TopPair>,
    /// Failure reasons, most common first; the first [`MAX_FAILURE_REASONS`] are shown.
    pub failure_reasons: Vec<FailureReason>,
    /// Vehicles due for maintenance in the month that were never reminded.
    pub never_reminded: i64,
}

/// The month's totals, as the statistics route reports them for the month's first to last day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    pub sent: i64,
    pub failed: i64,
    pub delivered: i64,
    pub read: i64,
    pub replies: i64,
    pub opted_out: i64,
    pub unique_customers: i64,
    pub unique_vehicles: i64,
}

/// One day's message counts; delivered and read count messages sent that day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Day {
    pub date: NaiveDate,
    pub sent: i64,
    pub failed: i64,
    pub delivered: i64,
    pub read: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopPair {
    pub customer_name: String,
    pub plate_number: String,
    pub frequency: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureReason {
    pub error_code: String,
    pub error: String,
    pub count: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error("the embedded font could not be loaded")]
    Font,
    #[error("daily entry {date} lies outside the reported month {month}")]
    DayOutsideMonth { date: NaiveDate, month: String },
    #[error("writing the PDF failed: {0}")]
    Write(String),
}

/// Pairs listed in the "most reminded" table.
pub const MAX_TOP_PAIRS: usize = 10;
/// Failure reasons listed; the rest are summed up in one line so the report stays two pages.
pub const MAX_FAILURE_REASONS: usize = 12;

const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const MARGIN: f32 = 50.0;
const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN;

const TITLE: Pen = Pen::new(Weight::Bold, 21.0, ACCENT);
const HEADING: Pen = Pen::new(Weight::Bold, 13.0, ACCENT);
const STATEMENT: Pen = Pen::new(Weight::Bold, 12.0, INK);
const BODY: Pen = Pen::new(Weight::Regular, 10.5, INK);
const NOTE: Pen = Pen::new(Weight::Regular, 10.0, MUTED);
const SUBTITLE: Pen = Pen::new(Weight::Regular, 9.5, MUTED);
const SMALL: Pen = Pen::new(Weight::Regular, 8.0, MUTED);

/// Renders `report` as an A4 PDF: two pages for a month with traffic, one for a month without.
pub fn render(report: &MonthlyReport) -> Result<Vec<u8>, PdfError> {
    let fonts = Fonts::load().ok_or(PdfError::Font)?;
    let month = Month::of(report.month);
    if let Some(day) = report.daily.iter().find(|d| !month.contains(d.date)) {
        let month = month.name.clone();
        return Err(PdfError::DayOutsideMonth {
            date: day.date,
            month,
        });
    }
    let quiet = report.figures.sent == 0
        && report.figures.failed == 0
        && report.daily.iter().all(|d| d.sent == 0 && d.failed == 0);
    let pages = if quiet { 1 } else { 2 };

    let mut document = Document::new();
    document.set_metadata(metadata(report, &month));
    let settings = || PageSettings::from_wh(PAGE_W, PAGE_H).expect("A4 is a valid page size");
    {
        let mut page = document.start_page_with(settings());
        let mut surface = page.surface();
        let c = &mut Canvas {
            surface: &mut surface,
            fonts: &fonts,
        };
        let y = header(c, report, &month);
        if quiet {
            let msg = format!("No messages were sent in {}.", month.name);
            c.text((MARGIN, y + 6.0), STATEMENT, Align::Left, &msg);
            figures_section(c, report, y + 34.0);
        } else {
            let y = summary(c, report, &month, y);
            let y = figures_section(c, report, y + 10.0);
            chart_section(c, report, &month, y + 26.0);
        }
        footer(c, report, &month, (1, pages));
    }
    if !quiet {
        let mut page = document.start_page_with(settings());
        let mut surface = page.surface();
        let c = &mut Canvas {
            surface: &mut surface,
            fonts: &fonts,
        };
        let y = top_pairs_section(c, report, 56.0);
        failures_section(c, report, y + 30.0);
        footer(c, report, &month, (2, pages));
    }
    document
        .finish()
        .map_err(|e| PdfError::Write(e.to_string()))
}

/// The reported calendar month: its first day, day count and English name ("November 2026").
struct Month {
    first: NaiveDate,
    days: u32,
    name: String,
}

impl Month {
    fn of(any_day: NaiveDate) -> Self {
        let first = any_day.with_day(1).unwrap_or(any_day);
        let next = first.checked_add_months(Months::new(1)).unwrap_or(first);
        let days = u32::try_from((next - first).num_days())
            .unwrap_or(31)
            .clamp(28, 31);
        Self {
            first,
            days,
            name: first.format("%B %Y").to_string(),
        }
    }

    fn contains(&self, date: NaiveDate) -> bool {
        date.year() == self.first.year() && date.month() == self.first.month()
    }
}

fn metadata(report: &MonthlyReport, month: &Month) -> Metadata {
    let at = report.generated_at;
    let created = PdfDateTime::new(u16::try_from(at.year()).unwrap_or(0))
        .month(at.month() as u8)
        .day(at.day() as u8)
        .hour(at.hour() as u8)
        .minute(at.minute() as u8)
        .second(at.second() as u8)
        .utc_offset_hour(0);
    Metadata::new()
        .title(format!("WhatsApp reminders — {}", month.name))
        .creator("reminder".to_owned())
        .language("en".to_owned())
        .creation_date(created)
}

/// Title, period line and accent rule; returns the y below them.
fn header(c: &mut Canvas, report: &MonthlyReport, month: &Month) -> f32 {
    let title = format!("WhatsApp reminders — {}", month.name);
    c.text((MARGIN, 66.0), TITLE, Align::Left, &title);
    let last = month.first + chrono::Days::new(u64::from(month.days) - 1);
    let period = format!(
        "Monthly management report · {} to {} · days counted in {}",
        month.first.format("%-d %B"),
        last.format("%-d %B %Y"),
        c.fonts.sanitize(&report.workshop_tz),
    );
    c.text((MARGIN, 86.0), SUBTITLE, Align::Left, &period);
    c.rect((MARGIN, 96.0), (CONTENT_W, 1.6), ACCENT);
    120.0
}

/// `part` as a percentage of `whole` with one decimal ("94.4%"); empty when `whole` is zero.
fn percent(part: i64, whole: i64) -> String {
    if whole <= 0 {
        return String::new();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

/// A note such as "94.4% of sent", or none when there is nothing to take a share of.
fn share(part: i64, whole: i64, of: &str) -> String {
    let p = percent(part, whole);
    if p.is_empty() {
        p
    } else {
        format!("{p} of {of}")
    }
}

/// A short paragraph in words for readers who skip the tables; returns the y below it.
fn summary(c: &mut Canvas, r: &MonthlyReport, month: &Month, y: f32) -> f32 {
    let f = &r.figures;
    let (name, never) = (&month.name, r.never_reminded);
    let text = if f.sent > 0 {
        format!(
            "In {name}, {} reminders were sent to {} customers about {} vehicles. {} of them \
             were delivered ({}) and {} were read ({}). {} sends failed, customers replied {} \
             times, and {never} vehicles due for maintenance were never reminded.",
            f.sent,
            f.unique_customers,
            f.unique_vehicles,
            f.delivered,
            percent(f.delivered, f.sent),
            f.read,
            percent(f.read, f.sent),
            f.failed,
            f.replies,
        )
    } else {
        format!(
            "No messages were sent in {name}: all {} send attempts failed. {never} vehicles due \
             for maintenance were never reminded.",
            f.failed
        )
    };
    let mut y = y;
    for line in c.fonts.wrap(BODY.weight, BODY.size, &text, CONTENT_W) {
        c.text((MARGIN, y), BODY, Align::Left, &line);
        y += 15.0;
    }
    y
}

fn heading(c: &mut Canvas, y: f32, title: &str) -> f32 {
    c.text((MARGIN, y), HEADING, Align::Left, title);
    y + 10.0
}

/// The figures table; returns the y below it.
fn figures_section(c: &mut Canvas, r: &MonthlyReport, y: f32) -> f32 {
    let f = &r.figures;
    let attempts = f.sent + f.failed;
    let rows: Vec<Vec<String>> = [
        (
            "Sent",
            f.sent,
            "Reminders accepted by the WhatsApp provider".to_owned(),
        ),
        (
            "Failed",
            f.failed,
            share(f.failed, attempts, "send attempts"),
        ),
        ("Delivered", f.delivered, share(f.delivered, f.sent, "sent")),
        ("Read", f.read, share(f.read, f.sent, "sent")),
        (
            "Replies",
            f.replies,
            "Messages received from customers".to_owned(),
        ),
        (
            "Opted out",
            f.opted_out,
            "Phones that asked not to be contacted".to_owned(),
        ),
        (
            "Unique customers",
            f.unique_customers,
            "Customers reminded".to_owned(),
        ),
        (
            "Unique vehicles",
            f.unique_vehicles,
            "Vehicles reminded".to_owned(),
        ),
        (
            "Never reminded",
            r.never_reminded,
            "Vehicles due for maintenance, not reminded".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(label, n, note)| vec![label.to_owned(), n.to_string(), note])
    .collect();
    let columns = [
        col("Figure", 150.0, Align::Left),
        col("Count", 90.0, Align::Right),
        col("Note", CONTENT_W - 240.0, Align::Left),
    ];
    let y = heading(c, y + 14.0, "Key figures");
    c.table((MARGIN, y), &columns, &rows)
}

fn chart_section(c: &mut Canvas, r: &MonthlyReport, month: &Month, y: f32) {
    let y = heading(c, y, "Messages per day");
    let mut days: Vec<DayBar> = (0..month.days)
        .map(|i| DayBar {
            label: (i + 1).to_string(),
            weekend: (month.first + chrono::Days::new(u64::from(i)))
                .weekday()
                .number_from_monday()
                > 5,
            sent: 0,
            failed: 0,
            delivered: 0,
            read: 0,
        })
        .collect();
    for d in &r.daily {
        // Duplicate dates are summed rather than overwritten so no count is silently lost.
        let bar = &mut days[d.date.day0() as usize];
        bar.sent += d.sent;
        bar.failed += d.failed;
        bar.delivered += d.delivered;
        bar.read += d.read;
    }
    let caption = format!(
        "Day of {} ({}); weekends shaded. Delivered and read are parts of the day's sent messages.",
        month.name,
        c.fonts.sanitize(&r.workshop_tz)
    );
    c.daily_chart((MARGIN, y + 4.0, CONTENT_W, 330.0), &days, &caption);
}

/// The most reminded pairs table; returns the y below it.
fn top_pairs_section(c: &mut Canvas, r: &MonthlyReport, y: f32) -> f32 {
    let y = heading(c, y, "Most reminded customers and vehicles");
    if r.top_pairs.is_empty() {
        c.text(
            (MARGIN, y + 14.0),
            NOTE,
            Align::Left,
            "No reminders were sent this month.",
        );
        return y + 20.0;
    }
    let rows: Vec<Vec<String>> = r
        .top_pairs
        .iter()
        .take(MAX_TOP_PAIRS)
        .enumerate()
        .map(|(i, p)| {
            let (name, plate) = (p.customer_name.clone(), p.plate_number.clone());
            vec![(i + 1).to_string(), name, plate, p.frequency.to_string()]
        })
        .collect();
    let columns = [
        col("#", 32.0, Align::Right),
        col("Customer", 243.0, Align::Left),
        col("Plate number", 120.0, Align::Left),
        col("Reminders", CONTENT_W - 395.0, Align::Right),
    ];
    c.table((MARGIN, y), &columns, &rows)
}

fn failures_section(c: &mut Canvas, r: &MonthlyReport, y: f32) {
    let y = heading(c, y, "Most common failure reasons");
    if r.failure_reasons.is_empty() {
        c.text(
            (MARGIN, y + 14.0),
            NOTE,
            Align::Left,
            "No sends failed this month.",
        );
        return;
    }
    let mut rows: Vec<Vec<String>> = r
        .failure_reasons
        .iter()
        .take(MAX_FAILURE_REASONS)
        .map(|f| vec![f.error_code.clone(), f.error.clone(), f.count.to_string()])
        .collect();
    let rest = &r.failure_reasons[rows.len()..];
    if !rest.is_empty() {
        let count: i64 = rest.iter().map(|f| f.count).sum();
        let label = format!("{} other reasons", rest.len());
        rows.push(vec!["…".to_owned(), label, count.to_string()]);
    }
    let columns = [
        col("Code", 110.0, Align::Left),
        col("Reason", CONTENT_W - 190.0, Align::Left),
        col("Failures", 80.0, Align::Right),
    ];
    c.table((MARGIN, y), &columns, &rows);
}

fn footer(c: &mut Canvas, r: &MonthlyReport, month: &Month, (page, pages): (u32, u32)) {
    let y = PAGE_H - 34.0;
    c.line((MARGIN, y - 12.0), (PAGE_W - MARGIN, y - 12.0), 0.5, MUTED);
    let at = r.generated_at.format("%Y-%m-%d %H:%M UTC");
    let left = format!("WhatsApp reminders — {} · generated {at}", month.name);
    c.text((MARGIN, y), SMALL, Align::Left, &left);
    let right = format!("Page {page} of {pages}");
    c.text((PAGE_W - MARGIN, y), SMALL, Align::Right, &right);
}
