//! A `reminder` process started as a child, as the fault tests and the soak run the roles:
//! killed with SIGKILL or stopped with SIGTERM on purpose, and with SIGKILL when dropped, so a
//! failing test never leaves one behind.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::resources::peak_rss_kib;
use crate::services::quiet;

pub struct Process {
    child: Child,
}

impl Process {
    /// Starts `program` with `args` and the environment `env` added to this one's; stdin and
    /// stdout closed, stderr inherited.
    pub fn spawn(
        program: &Path,
        args: &[&str],
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Process> {
        let child = Command::new(program)
            .args(args)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} {}", program.display(), args.join(" ")))?;
        Ok(Process { child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and waits for it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks it to finish (SIGTERM) without waiting.
    pub fn sigterm(&self) {
        quiet("kill", &["-TERM", &self.pid().to_string()]);
    }

    /// SIGTERM, and waits for it to exit.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.sigterm();
        self.child.wait().ok()
    }

    /// Its exit status once it has exited, waiting at most `bound`.
    pub async fn exit_within(&mut self, bound: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if started.elapsed() >= bound {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        peak_rss_kib(self.pid())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill9();
    }
}
