//! What work costs this machine, read from `/proc` (Linux): CPU time of this process, of the
//! local RabbitMQ and PostgreSQL and of the whole machine, and a process's resident memory.

use std::time::Instant;

/// `/proc`'s clock tick (USER_HZ), 100 on Linux whatever the kernel's own tick rate.
const TICKS_PER_SEC: f64 = 100.0;

/// CPU time spent so far by this process, by the local RabbitMQ and PostgreSQL, and by the whole
/// machine, read from `/proc`, to say what a unit of work costs and who pays for it.
#[derive(Debug, Clone, Copy)]
pub struct CpuTimes {
    process: f64,
    broker: f64,
    database: f64,
    machine: f64,
    at: Instant,
}

/// CPU seconds spent between two `CpuTimes`, and the wall-clock seconds between them.
#[derive(Debug, Clone, Copy)]
pub struct CpuSpent {
    pub process: f64,
    /// RabbitMQ's Erlang VM (`beam.smp`) on this machine; 0 when the broker runs elsewhere.
    pub broker: f64,
    /// Every `postgres` process on this machine; 0 when the database runs elsewhere. A backend
    /// that exits between the readings takes its time with it (pooled connections do not).
    pub database: f64,
    pub machine: f64,
    pub wall: f64,
}

/// utime + stime of one `/proc/<pid>/stat` line, in seconds, and the process's command name.
fn process_cpu(stat: &str) -> Option<(&str, f64)> {
    let name = stat.get(stat.find('(')? + 1..stat.rfind(')')?)?;
    // Fields after the command name, which may itself hold spaces and parentheses.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    // utime and stime: fields 14 and 15 of the line (`man 5 proc`).
    Some((name, (ticks(11)? + ticks(12)?) as f64 / TICKS_PER_SEC))
}

/// CPU seconds so far of the local RabbitMQ and of the local PostgreSQL processes.
fn services_cpu() -> (f64, f64) {
    let (mut broker, mut database) = (0.0, 0.0);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return (0.0, 0.0);
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // A process may end between listing and reading: skip it.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        match process_cpu(&stat) {
            Some(("beam.smp", t)) => broker += t,
            Some((comm, t)) if comm.starts_with("postgres") => database += t,
            _ => {}
        }
    }
    (broker, database)
}

impl CpuTimes {
    /// `None` where `/proc` cannot be read (not Linux).
    pub fn now() -> Option<CpuTimes> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let (_, process) = process_cpu(&stat)?;
        let (broker, database) = services_cpu();
        let all = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = all
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal ...: busy is user, nice, system, irq
        // and softirq (guest time is already in user). Steal is the hypervisor's, not work
        // done here.
        let busy: u64 = [0, 1, 2, 5, 6]
            .iter()
            .map(|&i| cpu.get(i).copied())
            .sum::<Option<u64>>()?;
        Some(CpuTimes {
            process,
            broker,
            database,
            machine: busy as f64 / TICKS_PER_SEC,
            at: Instant::now(),
        })
    }

    pub fn since(&self, earlier: &CpuTimes) -> CpuSpent {
        CpuSpent {
            process: self.process - earlier.process,
            broker: self.broker - earlier.broker,
            database: self.database - earlier.database,
            machine: self.machine - earlier.machine,
            wall: self.at.duration_since(earlier.at).as_secs_f64(),
        }
    }
}

/// The whole machine's CPU microseconds per unit for `units` units of work done since `start`;
/// `None` where `/proc` cannot be read.
pub fn machine_us_per_unit(start: Option<CpuTimes>, units: u64) -> Option<f64> {
    let spent = CpuTimes::now()?.since(&start?);
    Some(spent.machine * 1e6 / units as f64)
}

/// A field of a process's `/proc/<pid>/status` in KiB (`pid` "self" for this process).
fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Peak resident memory of process `pid` so far (`VmHWM`), in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(&pid.to_string(), "VmHWM:")
}

/// This process's peak resident set size (VmHWM) in MiB.
pub fn peak_rss_mb() -> f64 {
    status_kib("self", "VmHWM:").unwrap_or(0) as f64 / 1024.0
}

/// This process's resident set size now, in MiB.
pub fn rss_mb() -> f64 {
    status_kib("self", "VmRSS:").unwrap_or(0) as f64 / 1024.0
}

/// Resets VmHWM to the current RSS (Linux `clear_refs` 5), so a later `peak_rss_mb` is the
/// peak of what ran in between.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn cpu_time_spent_spinning_shows_in_the_process_and_in_the_machine() {
        let start = CpuTimes::now().expect("/proc is readable");
        // Spin until the process has used 0.2 s of CPU by its own count (however busy the
        // machine is), or give up after 10 s of wall time.
        let give_up = Instant::now() + Duration::from_secs(10);
        let mut n = 0u64;
        let spent = loop {
            for _ in 0..100_000 {
                n = std::hint::black_box(n.wrapping_add(1));
            }
            let spent = CpuTimes::now().expect("/proc is readable").since(&start);
            if spent.process >= 0.2 || Instant::now() > give_up {
                break spent;
            }
        };

        assert!(spent.process >= 0.2, "process {:.2} s", spent.process);
        // The machine's count includes this process; the two are read a moment apart, in
        // ticks of 10 ms.
        assert!(
            spent.machine >= spent.process - 0.02,
            "machine {:.2} s < process {:.2} s",
            spent.machine,
            spent.process
        );
        assert!(spent.wall > 0.0);
    }
}
