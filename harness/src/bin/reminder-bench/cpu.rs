//! The CPU rows of a scenario: what a unit of work cost the machine over each round, and who
//! spent it.

use reminder_harness::resources::CpuTimes;

use crate::report::{Row, Summary, Unit};

/// What a unit of work cost over each round: CPU microseconds per unit of the whole machine, of
/// this process and of the local RabbitMQ and PostgreSQL, and the cores the machine kept busy.
#[derive(Debug, Default)]
pub struct CpuFigures {
    machine_us: Vec<f64>,
    process_us: Vec<f64>,
    broker_us: Vec<f64>,
    database_us: Vec<f64>,
    busy_cores: Vec<f64>,
}

impl CpuFigures {
    /// Records a round of `units` units of work that ran between `start` and now; nothing when
    /// `/proc` could not be read.
    pub fn push(&mut self, start: Option<CpuTimes>, units: u64) {
        if let (Some(start), Some(end)) = (start, CpuTimes::now()) {
            let spent = end.since(&start);
            self.machine_us.push(spent.machine * 1e6 / units as f64);
            self.process_us.push(spent.process * 1e6 / units as f64);
            self.broker_us.push(spent.broker * 1e6 / units as f64);
            self.database_us.push(spent.database * 1e6 / units as f64);
            self.busy_cores.push(spent.machine / spent.wall);
        }
    }

    /// The rows, `phase` and `unit` naming them ("burst", "reminder"): the whole machine, then
    /// who spent it (this process, and RabbitMQ and PostgreSQL when they run on this machine),
    /// then the cores busy; none without samples.
    pub fn rows(&self, phase: &str, unit: &str) -> Vec<Row> {
        if self.machine_us.is_empty() {
            return Vec::new();
        }
        let per_unit = |who: &str, samples: &[f64]| {
            Row::new(
                format!("{phase}: CPU per {unit}, {who}"),
                Summary::of(samples),
                Unit::Us,
            )
        };
        let mut rows = vec![
            per_unit("whole machine", &self.machine_us),
            per_unit("this process", &self.process_us),
        ];
        let local = |samples: &[f64]| samples.iter().any(|v| *v > 0.0);
        if local(&self.broker_us) {
            rows.push(per_unit("RabbitMQ (beam.smp)", &self.broker_us));
        }
        if local(&self.database_us) {
            rows.push(per_unit("PostgreSQL (postgres)", &self.database_us));
        }
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        rows.push(Row::of(
            format!("{phase}: machine busy, of {cores} cores"),
            &self.busy_cores,
            Unit::Cores,
        ));
        rows
    }
}
