//! Private instances of the services for the fault tests and the soak: a PostgreSQL server
//! (`postgres`) and RabbitMQ nodes and clusters (`rabbitmq`). Each lives in a temporary directory on free ports and is stopped,
//! killed, frozen or cut off on purpose without touching the machine's own PostgreSQL and
//! RabbitMQ, which every other test and user of the machine shares.

pub mod postgres;
pub mod rabbitmq;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};

pub use postgres::PrivatePostgres;
pub use rabbitmq::{PrivateRabbit, RabbitCluster};

/// A port free on 127.0.0.1 right now (the kernel picks it). Another process could take it
/// before the server binds it; the ephemeral range is large and the window short.
pub fn free_port() -> std::io::Result<u16> {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        // Not the ports of the machine's broker (its distribution port, 25672) or the range its
        // CLI tools take theirs from (35672-35682): a private node there would break them.
        if port != 25672 && !(35672..=35682).contains(&port) {
            return Ok(port);
        }
    }
}

/// Runs a command quietly; true when it succeeded.
pub fn quiet(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `program` run as the OS `user` (the servers refuse to run as root, and RabbitMQ's CLI
/// needs that user's Erlang cookie), from `cwd`, which that user can read.
fn run_as(user: &str, program: &Path, cwd: &Path) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", user, "--"])
        .arg(program)
        .current_dir(cwd)
        .stdin(Stdio::null());
    c
}

/// Gives `path` and everything under it to `user`.
fn chown_to(path: &Path, user: &str) -> anyhow::Result<()> {
    let ok = Command::new("chown")
        .arg("-R")
        .arg(format!("{user}:"))
        .arg(path)
        .status()?
        .success();
    anyhow::ensure!(ok, "chown -R {user} {}", path.display());
    Ok(())
}

fn signal(pid: u32, sig: libc::c_int) -> bool {
    // SAFETY: kill(2) has no memory effects; a pid that is gone gives ESRCH.
    unsafe { libc::kill(pid as libc::pid_t, sig) == 0 }
}

/// True while `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat_fields(&stat).is_some_and(|(state, _)| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Every descendant of `pid` (children, their children, …), from /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat"))
                && let Some((_, ppid)) = stat_fields(&stat)
            {
                parents.push((p, ppid));
            }
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// State and parent pid from a /proc/PID/stat line (the command name, in parentheses, may
/// contain spaces: the fields start after its last parenthesis).
fn stat_fields(stat: &str) -> Option<(String, u32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.to_string();
    let ppid = f.next()?.parse().ok()?;
    Some((state, ppid))
}
