//! A private PostgreSQL server for one fault test or soak: its own data directory in a temporary
//! directory and its own port on 127.0.0.1, so stopping, killing or cutting it off disturbs no
//! one else on the machine. Dropping it stops the server at once and removes the directory,
//! also when the test panics.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tempfile::TempDir;

use super::{alive, children_of, chown_to, free_port, quiet, run_as, signal};

/// The OS user that owns the data directory: PostgreSQL refuses to run as root.
const USER: &str = "postgres";

pub struct PrivatePostgres {
    server: Server,
    // Dropped last: the server stops before its directory goes.
    _dir: TempDir,
}

/// Where the server lives; cloned onto a blocking thread for the slow commands.
#[derive(Clone)]
struct Server {
    bin: PathBuf,
    root: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    /// Creates a cluster (`initdb`, trust authentication, no fsync: nothing here must survive
    /// a machine crash, but commits stay synchronous, so what was committed survives a killed
    /// server) and starts it on a free port.
    pub fn start() -> anyhow::Result<PrivatePostgres> {
        let dir = tempfile::Builder::new().prefix("reminder-pg-").tempdir()?;
        chown_to(dir.path(), USER)?;
        let server = Server {
            bin: bindir()?,
            root: dir.path().to_path_buf(),
            port: free_port()?,
        };
        let pg = PrivatePostgres { server, _dir: dir };
        let s = &pg.server;
        let data = s.data();
        let out = run_as(USER, &s.bin.join("initdb"), &s.root)
            .args(["-D", path_str(&data), "-U", "postgres", "--auth=trust"])
            .args(["-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
            .output()
            .context("running initdb")?;
        if !out.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
             fsync = off\nfull_page_writes = off\n\
             max_connections = 200\nshared_buffers = 64MB\n",
            s.port,
            s.root.display()
        );
        let auto = data.join("postgresql.auto.conf");
        std::fs::write(&auto, conf)?;
        chown_to(&auto, USER)?;
        s.start()?;
        Ok(pg)
    }

    /// `start` off the caller's runtime: initdb takes a second or two, and a test's
    /// single-threaded runtime also runs the application and the mock provider.
    pub async fn start_async() -> PrivatePostgres {
        tokio::task::spawn_blocking(PrivatePostgres::start)
            .await
            .expect("no panic")
            .expect("a private PostgreSQL starts")
    }

    /// The server, without a database name.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.server.port)
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// Stops it the way an administrator does (`-m fast`: every session is cut, what was
    /// committed stays), off the caller's runtime.
    pub async fn stop(&self) {
        let s = self.server.clone();
        tokio::task::spawn_blocking(move || s.stop("fast"))
            .await
            .expect("no panic");
    }

    /// Starts it again on the same data directory and port and waits until it accepts
    /// connections, off the caller's runtime.
    pub async fn start_again(&self) {
        let s = self.server.clone();
        tokio::task::spawn_blocking(move || s.start())
            .await
            .expect("no panic")
            .expect("the private PostgreSQL starts again");
    }

    /// SIGKILL of the postmaster and every backend, as an OOM kill or a crashed host would;
    /// `start_again` recovers from the WAL.
    pub fn kill_hard(&self) {
        self.server.kill_hard();
    }
}

impl Server {
    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    fn start(&self) -> anyhow::Result<()> {
        let log = self.root.join("postgres.log");
        let ok = run_as(USER, &self.bin.join("pg_ctl"), &self.root)
            .args(["-D", path_str(&self.data()), "-l", path_str(&log)])
            .args(["-w", "-t", "60", "start"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?
            .success();
        if !ok {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("pg_ctl start failed: {log}");
        }
        let started = Instant::now();
        while !self.is_ready() {
            if started.elapsed() > Duration::from_secs(60) {
                bail!("the private PostgreSQL does not accept connections");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    fn is_ready(&self) -> bool {
        let isready = self.bin.join("pg_isready");
        quiet(
            isready.to_str().unwrap_or("pg_isready"),
            &["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"],
        )
    }

    fn stop(&self, mode: &str) {
        let _ = run_as(USER, &self.bin.join("pg_ctl"), &self.root)
            .args([
                "-D",
                path_str(&self.data()),
                "-m",
                mode,
                "-w",
                "-t",
                "60",
                "stop",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    fn kill_hard(&self) {
        let Some(pid) = self.postmaster_pid() else {
            return;
        };
        // The backends outlive a killed postmaster for a moment, holding the port and the
        // shared memory a new postmaster needs: they go too.
        let mut pids = children_of(pid);
        pids.push(pid);
        for p in pids {
            signal(p, libc::SIGKILL);
        }
        let until = Instant::now() + Duration::from_secs(10);
        while alive(pid) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn postmaster_pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()?;
        // A stale file after a stop: the pid may belong to someone else by now.
        alive(pid).then_some(pid)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // Immediate: nothing in it is kept, and a failed test should not wait for a
        // checkpoint. Then SIGKILL of whatever did not go, before the directory is removed.
        self.server.stop("immediate");
        self.server.kill_hard();
    }
}

/// PostgreSQL's programs (`initdb`, `pg_ctl`), which Debian keeps out of PATH.
fn bindir() -> anyhow::Result<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no /usr/lib/postgresql: is PostgreSQL installed?")?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .context("no initdb under /usr/lib/postgresql")
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}
