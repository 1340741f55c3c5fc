//! The soak's role processes: this binary re-executed as `reminder run <role>`, restarted after
//! each kill, and the producer's scan, run again until it completes.

use std::process::{Command, Stdio};
use std::time::Duration;

use reminder_harness::process::Process;

/// One role's process; remembers the highest peak RSS of all its incarnations.
pub struct Role {
    name: &'static str,
    env: Vec<(String, String)>,
    process: Option<Process>,
    pub peak_kib: u64,
    pub kills: u32,
}

impl Role {
    pub fn start(name: &'static str, env: Vec<(String, String)>) -> anyhow::Result<Role> {
        let mut role = Role {
            name,
            env,
            process: None,
            peak_kib: 0,
            kills: 0,
        };
        role.spawn()?;
        Ok(role)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        self.process = Some(Process::spawn(
            &std::env::current_exe()?,
            &["reminder", "run", self.name],
            self.env.iter().cloned(),
        )?);
        Ok(())
    }

    pub fn sample(&mut self) {
        if let Some(kib) = self.process.as_ref().and_then(Process::peak_rss_kib) {
            self.peak_kib = self.peak_kib.max(kib);
        }
    }

    /// SIGKILL, then a new process at once.
    pub fn kill_and_restart(&mut self) -> anyhow::Result<()> {
        self.sample();
        if let Some(mut p) = self.process.take() {
            p.kill9();
        }
        self.kills += 1;
        self.spawn()
    }

    /// SIGTERM, and waits for the process to finish.
    pub fn stop(&mut self) {
        self.sample();
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }
}

/// Runs `reminder produce` until it succeeds (a fault can cut a scan off); its event ids are
/// the same every time, so a repeated scan adds no reminder. Returns how many runs it took.
pub async fn produce_until_done(env: Vec<(String, String)>) -> anyhow::Result<u32> {
    let exe = std::env::current_exe()?;
    Ok(tokio::task::spawn_blocking(move || {
        let mut runs = 0;
        loop {
            runs += 1;
            let ok = Command::new(&exe)
                .args(["reminder", "produce"])
                .envs(env.iter().cloned())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return runs;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    })
    .await?)
}
