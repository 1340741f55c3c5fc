//! Renders monthly reports and reads them back with poppler (`pdftotext`, `pdfinfo`, `pdftoppm`
//! from poppler-utils) to check what a reader would see: the month, every figure, the empty-month
//! sentence, and that every page rasterises cleanly.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use chrono::{Datelike, Days, NaiveDate, TimeZone, Utc};
use reminder::reporting::monthly_pdf::{
    Day, FailureReason, Figures, MonthlyReport, PdfError, TopPair, render,
};

fn month(year: i32, month: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, 1).expect("valid month")
}

fn days_in(first: NaiveDate) -> u64 {
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .expect("next month");
    (next - first).num_days() as u64
}

fn empty_report(first: NaiveDate) -> MonthlyReport {
    let daily = (0..days_in(first))
        .map(|i| Day {
            date: first + Days::new(i),
            sent: 0,
            failed: 0,
            delivered: 0,
            read: 0,
        })
        .collect();
    MonthlyReport {
        month: first,
        workshop_tz: "Asia/Jakarta".to_owned(),
        generated_at: Utc
            .with_ymd_and_hms(2026, 12, 1, 2, 0, 0)
            .single()
            .expect("valid time"),
        figures: Figures::default(),
        daily,
        top_pairs: Vec::new(),
        failure_reasons: Vec::new(),
        never_reminded: 0,
    }
}

/// A busy month of about 100,000 messages with distinct figures, so each can be found in the text.
fn busy_report(first: NaiveDate) -> MonthlyReport {
    let mut report = empty_report(first);
    for (i, d) in report.daily.iter_mut().enumerate() {
        let i = i as i64;
        d.sent = 3_000 + (i * 97) % 700;
        d.failed = 40 + (i * 13) % 50;
        d.delivered = d.sent * 95 / 100;
        d.read = d.sent * 71 / 100;
    }
    let sum = |f: fn(&Day) -> i64| report.daily.iter().map(f).sum::<i64>();
    report.figures = Figures {
        sent: sum(|d| d.sent),
        failed: sum(|d| d.failed),
        delivered: sum(|d| d.delivered),
        read: sum(|d| d.read),
        replies: 4_127,
        opted_out: 313,
        unique_customers: 48_211,
        unique_vehicles: 52_907,
    };
    report.never_reminded = 1_432;
    report.top_pairs = (0..12)
        .map(|i| TopPair {
            customer_name: format!("Pelanggan Nomor {}", i + 1),
            plate_number: format!("B {} XYZ", 1_000 + i),
            frequency: 20 - i,
        })
        .collect();
    report.top_pairs[0].customer_name = "Budi Santoso".to_owned();
    report.top_pairs[1].customer_name = "Siti Nurhaliza 🚗".to_owned();
    report.failure_reasons = (0..15)
        .map(|i| FailureReason {
            error_code: format!("1310{i:02}"),
            error: format!("Provider error number {i} ").repeat(1 + i as usize),
            count: 500 - i * 30,
        })
        .collect();
    report
}

pub(crate) fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pdf-report-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

pub(crate) fn poppler(tool: &str, args: &[&str]) -> std::process::Output {
    Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} must be installed (apt-get install poppler-utils): {e}"))
}

fn write_pdf(report: &MonthlyReport, dir: &Path) -> PathBuf {
    let pdf = render(report).expect("render");
    assert!(pdf.starts_with(b"%PDF-"), "output is a PDF");
    let path = dir.join("report.pdf");
    std::fs::write(&path, pdf).expect("write PDF");
    path
}

pub(crate) fn text_of(pdf: &Path) -> String {
    let out = poppler("pdftotext", &[pdf.to_str().expect("utf-8 path"), "-"]);
    assert!(
        out.status.success(),
        "pdftotext failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("pdftotext prints UTF-8")
}

pub(crate) fn page_count(pdf: &Path) -> usize {
    let out = poppler("pdfinfo", &[pdf.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "pdfinfo failed");
    let info = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = info
        .lines()
        .find(|l| l.starts_with("Pages:"))
        .expect("Pages line");
    line["Pages:".len()..].trim().parse().expect("page count")
}

/// Every run of digits in `text`, so "2605" is found only as a whole number.
pub(crate) fn numbers_in(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Rasterises every page at 80 dpi and checks poppler neither failed nor complained.
pub(crate) fn assert_rasterises(pdf: &Path, dir: &Path, pages: usize) {
    let prefix = dir.join("page");
    let out = poppler(
        "pdftoppm",
        &[
            "-png",
            "-r",
            "80",
            pdf.to_str().expect("utf-8 path"),
            prefix.to_str().expect("utf-8"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "pdftoppm: {stderr}"
    );
    let pngs = std::fs::read_dir(dir)
        .expect("read scratch dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
        .filter(|e| e.metadata().is_ok_and(|m| m.len() > 1_000))
        .count();
    assert_eq!(pngs, pages, "one non-trivial PNG per page");
}

#[test]
fn busy_month_shows_the_month_and_every_figure_exactly() {
    let dir = scratch_dir("busy");
    let report = busy_report(month(2026, 11));
    let pdf = write_pdf(&report, &dir);
    let text = text_of(&pdf);
    assert!(
        text.contains("WhatsApp reminders — November 2026"),
        "{text}"
    );
    let numbers = numbers_in(&text);
    let f = &report.figures;
    for (label, n) in [
        ("Sent", f.sent),
        ("Failed", f.failed),
        ("Delivered", f.delivered),
        ("Read", f.read),
        ("Replies", f.replies),
        ("Opted out", f.opted_out),
        ("Unique customers", f.unique_customers),
        ("Unique vehicles", f.unique_vehicles),
        ("Never reminded", report.never_reminded),
    ] {
        assert!(text.contains(label), "label {label} missing");
        assert!(
            numbers.contains(&n.to_string().as_str()),
            "{label} = {n} missing"
        );
    }
    assert!(
        text.contains("Budi Santoso") && text.contains("B 1000 XYZ"),
        "top pairs"
    );
    assert!(
        text.contains("Siti Nurhaliza ?"),
        "an emoji in a name is replaced by '?'"
    );
    assert!(
        !text.contains("Pelanggan Nomor 11"),
        "only ten pairs are listed"
    );
    assert!(
        text.contains("131000") && text.contains("3 other reasons"),
        "failure reasons"
    );
    assert!(
        !text.contains("No messages were sent"),
        "a busy month is not called empty"
    );
    assert_eq!(page_count(&pdf), 2);
    assert_rasterises(&pdf, &dir, 2);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn empty_month_says_so_plainly_on_one_page() {
    let dir = scratch_dir("empty");
    let mut report = empty_report(month(2026, 11));
    report.never_reminded = 17;
    let pdf = write_pdf(&report, &dir);
    let text = text_of(&pdf);
    assert!(
        text.contains("No messages were sent in November 2026."),
        "{text}"
    );
    assert!(
        numbers_in(&text).contains(&"17"),
        "never-reminded count still shown"
    );
    assert_eq!(page_count(&pdf), 1);
    assert_rasterises(&pdf, &dir, 1);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn month_with_only_failures_still_charts_them() {
    let dir = scratch_dir("failures");
    let mut report = empty_report(month(2027, 2));
    report.daily[3].failed = 5;
    report.figures.failed = 5;
    report.failure_reasons = vec![FailureReason {
        error_code: "timeout".to_owned(),
        error: "Provider did not answer".to_owned(),
        count: 5,
    }];
    let pdf = write_pdf(&report, &dir);
    let text = text_of(&pdf);
    assert!(text.contains("February 2027") && text.contains("all 5 send attempts failed"));
    assert!(text.contains("No reminders were sent this month."));
    assert_rasterises(&pdf, &dir, 2);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_day_outside_the_month_is_rejected() {
    let mut report = empty_report(month(2026, 11));
    report.daily.push(Day {
        date: month(2026, 12),
        sent: 1,
        failed: 0,
        delivered: 0,
        read: 0,
    });
    match render(&report) {
        Err(PdfError::DayOutsideMonth { date, .. }) => assert_eq!(date.month(), 12),
        other => panic!("expected DayOutsideMonth, got {other:?}"),
    }
}

#[test]
fn a_31_day_month_of_100k_messages_renders_with_subset_fonts() {
    let report = busy_report(month(2026, 12));
    assert!(
        report.figures.sent >= 100_000,
        "sent {}",
        report.figures.sent
    );
    render(&report).expect("warm-up render");
    let started = Instant::now();
    let pdf = render(&report).expect("render");
    let took = started.elapsed();
    eprintln!("31-day month rendered in {took:?}, {} bytes", pdf.len());
    assert!(pdf.len() < 200_000, "fonts are subset: {} bytes", pdf.len());
}
