//! Summaries over rounds (median, min, max) and the tables every scenario prints: each figure
//! with its spread, the ceiling it is compared with, the ratio and the target.

use std::fmt::Write as _;

/// Median and spread of one figure over the rounds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub rounds: usize,
}

impl Summary {
    pub fn of(samples: &[f64]) -> Summary {
        assert!(!samples.is_empty(), "a summary needs at least one sample");
        let mut s = samples.to_vec();
        s.sort_by(|a, b| a.total_cmp(b));
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Summary {
            median,
            min: s[0],
            max: s[n - 1],
            rounds: n,
        }
    }
}

/// A ceiling taken again just before each round of a scenario, and each round's figure as
/// a ratio to the ceiling of its own round.
#[derive(Debug, Default)]
pub struct Paired {
    ceilings: Vec<f64>,
    ratios: Vec<f64>,
}

impl Paired {
    pub fn push(&mut self, ceiling: f64, figure: f64) {
        self.ceilings.push(ceiling);
        self.ratios.push(figure / ceiling);
    }

    /// The ceilings of the rounds, and the median of the per-round ratios, judged against
    /// `target` when there is one.
    pub fn rows(&self, ceiling: &str, figure: &str, target: Option<f64>) -> [Row; 2] {
        let mut ratio = Row::of(
            format!("{figure} / the ceiling of its own round"),
            &self.ratios,
            Unit::Ratio,
        );
        ratio.target = target.map(Target::AtLeast);
        [
            Row::of(
                format!("{ceiling} ceiling, taken just before each round"),
                &self.ceilings,
                Unit::PerSec,
            ),
            ratio,
        ]
    }
}

/// The value at quantile `q` (0..=1) of sorted samples (nearest rank).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unit {
    PerSec,
    Ms,
    MiB,
    Count,
    Ratio,
    /// Microseconds, for CPU time per unit of work.
    Us,
    /// Cores kept busy (CPU seconds per second).
    Cores,
}

impl Unit {
    pub fn format(self, v: f64) -> String {
        match self {
            Unit::PerSec => format!("{} /s", thousands(v)),
            Unit::Ms => {
                if v < 10.0 {
                    format!("{v:.2} ms")
                } else {
                    format!("{v:.0} ms")
                }
            }
            Unit::MiB => format!("{v:.1} MiB"),
            Unit::Count => thousands(v),
            // Three places, so a median just under a target does not print as the target.
            Unit::Ratio => format!("{v:.3}"),
            Unit::Us => format!("{v:.0} us"),
            Unit::Cores => format!("{v:.2} cores"),
        }
    }
}

pub fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// What a figure must reach, and on which statistic of the rounds it is judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// median / ceiling median >= x
    RatioAtLeast(f64),
    /// median < x
    Below(f64),
    /// median >= x
    AtLeast(f64),
    /// every round's value <= x
    MaxAtMost(f64),
    /// median within [a, b]
    Within(f64, f64),
    /// every round's value == x
    Exactly(f64),
}

impl Target {
    fn describe(&self, unit: Unit) -> String {
        match *self {
            Target::RatioAtLeast(x) => format!("ratio >= {x:.2}"),
            Target::Below(x) => format!("< {}", unit.format(x)),
            Target::AtLeast(x) => format!(">= {}", unit.format(x)),
            Target::MaxAtMost(x) => format!("max <= {}", unit.format(x)),
            Target::Within(a, b) => format!("{}..{}", unit.format(a), unit.format(b)),
            Target::Exactly(x) => format!("= {}", unit.format(x)),
        }
    }

    fn met(&self, v: &Summary, ratio: Option<f64>) -> bool {
        match *self {
            Target::RatioAtLeast(x) => ratio.is_some_and(|r| r >= x),
            Target::Below(x) => v.median < x,
            Target::AtLeast(x) => v.median >= x,
            Target::MaxAtMost(x) => v.max <= x,
            Target::Within(a, b) => v.median >= a && v.median <= b,
            Target::Exactly(x) => v.min == x && v.max == x,
        }
    }
}

/// The ceiling a figure is compared with.
#[derive(Debug, Clone)]
pub struct Ceiling {
    pub name: String,
    pub value: Summary,
    pub unit: Unit,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub figure: String,
    pub value: Summary,
    pub unit: Unit,
    pub ceiling: Option<Ceiling>,
    pub target: Option<Target>,
}

impl Row {
    pub fn new(figure: impl Into<String>, value: Summary, unit: Unit) -> Row {
        Row {
            figure: figure.into(),
            value,
            unit,
            ceiling: None,
            target: None,
        }
    }
    /// The summary of `samples`, one per round.
    pub fn of(figure: impl Into<String>, samples: &[f64], unit: Unit) -> Row {
        Row::new(figure, Summary::of(samples), unit)
    }
    /// A count that must be `value` in every round.
    pub fn exactly(figure: impl Into<String>, samples: &[f64], value: f64) -> Row {
        Row::of(figure, samples, Unit::Count).target(Target::Exactly(value))
    }
    pub fn vs(mut self, name: impl Into<String>, value: Summary, unit: Unit) -> Row {
        self.ceiling = Some(Ceiling {
            name: name.into(),
            value,
            unit,
        });
        self
    }
    pub fn target(mut self, t: Target) -> Row {
        self.target = Some(t);
        self
    }
    pub fn ratio(&self) -> Option<f64> {
        self.ceiling
            .as_ref()
            .filter(|c| c.value.median > 0.0)
            .map(|c| self.value.median / c.value.median)
    }
    /// None when the row has no target.
    pub fn met(&self) -> Option<bool> {
        self.target.map(|t| t.met(&self.value, self.ratio()))
    }
}

/// One scenario's figures.
pub struct Table {
    pub title: String,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

impl Table {
    pub fn new(title: impl Into<String>) -> Table {
        Table {
            title: title.into(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }
    pub fn row(&mut self, row: Row) {
        self.rows.push(row);
    }
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }
    /// True when every row with a target met it.
    pub fn all_met(&self) -> bool {
        self.rows.iter().all(|r| r.met() != Some(false))
    }

    pub fn render(&self) -> String {
        let header = [
            "figure",
            "median",
            "min .. max",
            "ceiling (median)",
            "ratio",
            "target",
            "result",
        ];
        let mut cells: Vec<[String; 7]> = vec![header.map(String::from)];
        for r in &self.rows {
            let spread = if r.value.rounds > 1 {
                format!(
                    "{} .. {}",
                    r.unit.format(r.value.min),
                    r.unit.format(r.value.max)
                )
            } else {
                "(1 round)".into()
            };
            let ceiling = r
                .ceiling
                .as_ref()
                .map(|c| format!("{} {}", c.name, c.unit.format(c.value.median)))
                .unwrap_or_else(|| "-".into());
            let ratio = r
                .ratio()
                .map(|x| format!("{x:.2}"))
                .unwrap_or_else(|| "-".into());
            let target = r
                .target
                .map(|t| t.describe(r.unit))
                .unwrap_or_else(|| "-".into());
            let result = match r.met() {
                Some(true) => "ok",
                Some(false) => "MISSED",
                None => "",
            };
            cells.push([
                r.figure.clone(),
                r.unit.format(r.value.median),
                spread,
                ceiling,
                ratio,
                target,
                result.to_string(),
            ]);
        }
        let mut widths = [0usize; 7];
        for row in &cells {
            for (i, c) in row.iter().enumerate() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        let _ = writeln!(out, "\n== {} ==", self.title);
        for (n, row) in cells.iter().enumerate() {
            let mut line = String::new();
            for (i, c) in row.iter().enumerate() {
                let pad = widths[i] - c.chars().count();
                // Numbers right-aligned, text left-aligned.
                if (1..=2).contains(&i) || i == 4 {
                    let _ = write!(line, "{}{}  ", " ".repeat(pad), c);
                } else {
                    let _ = write!(line, "{}{}  ", c, " ".repeat(pad));
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
            if n == 0 {
                let total: usize = widths.iter().sum::<usize>() + 2 * 6;
                let _ = writeln!(out, "{}", "-".repeat(total));
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "  * {note}");
        }
        out
    }

    pub fn print(&self) {
        println!("{}", self.render());
    }
}

/// The machine and the command, printed once per invocation.
pub fn print_header(scenario: &str, opts: &crate::opts::Opts) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!(
        "reminder-bench {scenario} ({}), {} UTC",
        if args.is_empty() {
            "no arguments".to_string()
        } else {
            args.join(" ")
        },
        chrono::Utc::now().format("%Y-%m-%d %H:%M")
    );
    println!(
        "machine: {cores} cores ({cpu}), {mem_gib:.1} GiB memory; {} rounds per figure; figures are medians, spread is min .. max over the rounds",
        opts.rounds
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0]);
        assert_eq!(s.median, 2.5);
        assert_eq!((s.min, s.max), (1.0, 4.0));
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(|x| x as f64).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
    }

    #[test]
    fn a_paired_ratio_divides_each_round_by_its_own_ceiling() {
        let mut p = Paired::default();
        p.push(20_000.0, 6_000.0);
        p.push(40_000.0, 8_000.0);
        p.push(10_000.0, 2_600.0);
        let [ceilings, ratios] = p.rows("publish", "burst", Some(0.25));
        assert_eq!(ceilings.value.median, 20_000.0);
        // 0.30, 0.20 and 0.26: the median of the rounds' ratios is 0.26, where the median
        // figure over the median ceiling would say 0.30.
        assert!((ratios.value.median - 0.26).abs() < 1e-12);
        assert_eq!((ratios.value.min, ratios.value.max), (0.2, 0.3));
        assert_eq!(ratios.met(), Some(true));
        let [_, strict] = p.rows("publish", "burst", Some(0.27));
        let [_, untargeted] = p.rows("publish", "burst", None);
        assert_eq!(untargeted.met(), None);
        assert_eq!(strict.met(), Some(false));
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(1234567.0), "1,234,567");
        assert_eq!(thousands(999.0), "999");
    }
}
