//! Private RabbitMQ nodes for the fault tests and the soak: one node (`PrivateRabbit`) or a
//! cluster of several (`RabbitCluster`), each with its own node name, ports and data directory
//! in a temporary directory, run as the `rabbitmq` user with that user's home (so its Erlang
//! cookie, and with it `rabbitmqctl`, work). A test stops, kills, freezes or alarms them without
//! touching the machine's broker. Dropping them kills every node's processes (epmd, which the
//! machine shares, stays) and removes the directory, also when the test panics.

use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tempfile::TempDir;
use uuid::Uuid;

use super::{alive, children_of, chown_to, free_port, run_as, signal};

const USER: &str = "rabbitmq";
/// The rabbitmq user's home: its `.erlang.cookie` is the one the CLI tools use.
const HOME: &str = "/var/lib/rabbitmq";
/// How long a node may take to boot (5-10 s measured here; more while others boot too).
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// One node: what it is called and where it listens, and its processes while it runs.
struct Node {
    spec: Spec,
    state: Mutex<Running>,
}

#[derive(Clone)]
struct Spec {
    name: String,
    port: u16,
    dist_port: u16,
    dir: PathBuf,
}

#[derive(Default)]
struct Running {
    /// `runuser … rabbitmq-server`, in a process group of its own.
    child: Option<Child>,
    /// The Erlang VM's (beam.smp) OS pid, the process to freeze or kill.
    vm: Option<u32>,
}

/// A cluster of private RabbitMQ nodes (node 0 is the one the others joined).
pub struct RabbitCluster {
    nodes: Vec<Node>,
    // Dropped after the nodes are killed (see `Drop`).
    _dir: TempDir,
}

impl RabbitCluster {
    /// Starts `n` nodes in parallel and joins nodes 1.. to node 0. Blocking: seconds.
    pub fn start(n: usize) -> anyhow::Result<RabbitCluster> {
        let dir = tempfile::Builder::new()
            .prefix("reminder-rabbit-")
            .tempdir()?;
        let tag = &Uuid::new_v4().simple().to_string()[..8];
        let mut nodes = Vec::new();
        for i in 1..=n {
            let spec = Spec {
                name: format!("rt{tag}-{i}@localhost"),
                port: free_port()?,
                dist_port: free_port()?,
                dir: dir.path().join(format!("node{i}")),
            };
            spec.prepare()?;
            nodes.push(Node {
                spec,
                state: Mutex::new(Running::default()),
            });
        }
        chown_to(dir.path(), USER)?;
        let cluster = RabbitCluster { nodes, _dir: dir };
        // Boot them side by side: each takes seconds, mostly waiting.
        for node in &cluster.nodes {
            node.state.lock().expect("lock").child = Some(node.spec.launch()?);
        }
        for node in &cluster.nodes {
            let vm = node.spec.await_vm()?;
            node.state.lock().expect("lock").vm = Some(vm);
        }
        let first = &cluster.nodes[0].spec.name;
        for node in &cluster.nodes[1..] {
            let s = &node.spec;
            s.ctl(&["stop_app"])?;
            s.ctl(&["join_cluster", first])?;
            s.ctl(&["start_app"])?;
            s.ctl(&["await_startup", "--timeout", "120"])?;
        }
        Ok(cluster)
    }

    /// `start` off the caller's runtime.
    pub async fn start_async(n: usize) -> RabbitCluster {
        tokio::task::spawn_blocking(move || RabbitCluster::start(n))
            .await
            .expect("no panic")
            .expect("a private RabbitMQ cluster starts")
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s name (`rt…-1@localhost`), for `rabbitmqctl -n`.
    pub fn node_name(&self, i: usize) -> &str {
        &self.nodes[i].spec.name
    }

    /// Node `i`'s AMQP port.
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].spec.port
    }

    /// Node `i`'s AMQP URL, guest on the default virtual host.
    pub fn amqp_url(&self, i: usize) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port(i))
    }

    /// Every node's URL, comma-separated, as `amqp.url` takes a cluster.
    pub fn urls(&self) -> String {
        (0..self.len())
            .map(|i| self.amqp_url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The OS pid of node `i`'s Erlang VM while it runs.
    pub fn vm_pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].state.lock().expect("lock").vm
    }

    /// `kill -9` of node `i`'s VM, as a crashed host or an OOM kill: no goodbye to clients or
    /// peers. Waits until it is gone.
    pub fn kill_hard(&self, i: usize) {
        let mut state = self.nodes[i].state.lock().expect("lock");
        kill_all(&mut state);
    }

    /// Stops node `i` cleanly (`rabbitmqctl stop`), off the caller's runtime (the CLI takes
    /// seconds, and a test's single-threaded runtime also runs the application).
    pub async fn stop(&self, i: usize) {
        let spec = self.nodes[i].spec.clone();
        let stopped = tokio::task::spawn_blocking(move || spec.ctl(&["stop"]))
            .await
            .expect("no panic");
        self.reap(i, stopped.is_ok());
    }

    /// `stop` on the caller's thread, blocking it.
    pub fn stop_blocking(&self, i: usize) {
        let stopped = self.nodes[i].spec.ctl(&["stop"]);
        self.reap(i, stopped.is_ok());
    }

    /// After `rabbitmqctl stop`: the VM is on its way out; reap the child (or kill it, when the
    /// stop failed) so nothing of the node is left.
    fn reap(&self, i: usize, stopped: bool) {
        let mut state = self.nodes[i].state.lock().expect("lock");
        if !stopped {
            kill_all(&mut state);
        }
        if let Some(mut child) = state.child.take() {
            let _ = child.wait();
        }
        state.vm = None;
    }

    /// Starts node `i` again on the same data directory and ports; being a member already, it
    /// rejoins the cluster by itself. Off the caller's runtime; waits until it has booted.
    pub async fn start_node(&self, i: usize) {
        let node = &self.nodes[i];
        let child = node.spec.launch().expect("rabbitmq-server starts");
        node.state.lock().expect("lock").child = Some(child);
        let spec = node.spec.clone();
        let vm = tokio::task::spawn_blocking(move || spec.await_vm())
            .await
            .expect("no panic")
            .unwrap_or_else(|e| panic!("node {} boots again: {e:#}", node.spec.name));
        node.state.lock().expect("lock").vm = Some(vm);
    }

    /// `start_node` on the caller's thread, blocking it.
    pub fn start_node_blocking(&self, i: usize) {
        let node = &self.nodes[i];
        let child = node.spec.launch().expect("rabbitmq-server starts");
        node.state.lock().expect("lock").child = Some(child);
        let vm = node
            .spec
            .await_vm()
            .unwrap_or_else(|e| panic!("node {} boots again: {e:#}", node.spec.name));
        node.state.lock().expect("lock").vm = Some(vm);
    }

    /// SIGSTOP of node `i`'s VM: its sockets stay open and the kernel still takes in what is
    /// written to them, but nothing is read or answered, as with a hung broker or a network
    /// that drops every packet.
    pub fn freeze(&self, i: usize) {
        if let Some(pid) = self.vm_pid(i) {
            signal(pid, libc::SIGSTOP);
        }
    }

    /// SIGCONT: node `i` runs again and handles what piled up.
    pub fn thaw(&self, i: usize) {
        if let Some(pid) = self.vm_pid(i) {
            signal(pid, libc::SIGCONT);
        }
    }

    /// Raises (a high watermark of 0) or clears a memory alarm on node `i`: while it is raised
    /// the node blocks every connection that publishes (`connection.blocked`).
    pub async fn memory_alarm(&self, i: usize, raised: bool) {
        let watermark = if raised { "0" } else { "0.4" };
        self.ctl(i, &["set_vm_memory_high_watermark", watermark])
            .await
            .expect("rabbitmqctl set_vm_memory_high_watermark");
    }

    /// `rabbitmqctl -n NODE args…` against node `i`, off the caller's runtime: its output.
    pub async fn ctl(&self, i: usize, args: &[&str]) -> anyhow::Result<String> {
        let spec = self.nodes[i].spec.clone();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            spec.ctl(&args)
        })
        .await
        .expect("no panic")
    }

    /// `rabbitmq-queues -n NODE grow NODE all`: adds node `i` back as a member of every quorum
    /// queue, as an operator does after replacing or restoring a node.
    pub async fn grow_quorum_queues_onto(&self, i: usize) -> anyhow::Result<String> {
        let spec = self.nodes[i].spec.clone();
        tokio::task::spawn_blocking(move || {
            spec.tool("rabbitmq-queues", &["grow", &spec.name, "all"])
        })
        .await
        .expect("no panic")
    }
}

impl Drop for RabbitCluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            if let Ok(mut state) = node.state.lock() {
                kill_all(&mut state);
            }
        }
    }
}

/// SIGKILL of a node's VM and everything under its `runuser` (the shell, erl_child_setup,
/// inet_gethost; not epmd, which is the machine's daemon), then reaps the child.
fn kill_all(state: &mut Running) {
    let mut pids = Vec::new();
    if let Some(vm) = state.vm.take() {
        pids.push(vm);
        pids.extend(children_of(vm));
    }
    if let Some(child) = &state.child {
        let pid = child.id();
        pids.extend(children_of(pid));
        pids.push(pid);
    }
    for &pid in &pids {
        // A frozen VM dies of SIGKILL too; SIGCONT first anyway, so nothing stays stopped.
        signal(pid, libc::SIGCONT);
        signal(pid, libc::SIGKILL);
    }
    if let Some(mut child) = state.child.take() {
        let _ = child.wait();
    }
    let until = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&p| alive(p)) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Spec {
    /// The node's directory with its configuration: its listener, no plugins (management
    /// would want a port of its own), and no machine-wide `rabbitmq-env.conf`.
    fn prepare(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(self.dir.join("mnesia"))?;
        std::fs::create_dir_all(self.dir.join("log"))?;
        std::fs::write(self.dir.join("enabled_plugins"), "[].\n")?;
        std::fs::write(self.dir.join("rabbitmq-env.conf"), "")?;
        std::fs::write(
            self.dir.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.1 = 127.0.0.1:{}\nloopback_users.guest = true\n",
                self.port
            ),
        )?;
        Ok(())
    }

    /// Starts `rabbitmq-server` in the foreground as a child, in a process group of its own
    /// (a Ctrl-C of the test does not reach it; `Drop` kills it).
    fn launch(&self) -> anyhow::Result<Child> {
        let out = File::create(self.dir.join("server.out"))?;
        let d = |f: &str| format!("{}", self.dir.join(f).display());
        let child = run_as(USER, Path::new("/usr/bin/env"), &self.dir)
            .arg(format!("HOME={HOME}"))
            .arg(format!("RABBITMQ_NODENAME={}", self.name))
            .arg("RABBITMQ_NODE_IP_ADDRESS=127.0.0.1")
            .arg(format!("RABBITMQ_NODE_PORT={}", self.port))
            .arg(format!("RABBITMQ_DIST_PORT={}", self.dist_port))
            .arg(format!("RABBITMQ_CONF_ENV_FILE={}", d("rabbitmq-env.conf")))
            .arg(format!("RABBITMQ_CONFIG_FILE={}", d("rabbitmq.conf")))
            .arg(format!(
                "RABBITMQ_ENABLED_PLUGINS_FILE={}",
                d("enabled_plugins")
            ))
            .arg(format!("RABBITMQ_MNESIA_BASE={}", d("mnesia")))
            .arg(format!("RABBITMQ_LOG_BASE={}", d("log")))
            .arg("ERL_EPMD_ADDRESS=127.0.0.1")
            .arg("ERL_FLAGS=-kernel inet_dist_use_interface {127,0,0,1}")
            .arg(server_program())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .context("starting rabbitmq-server")?;
        Ok(child)
    }

    /// Waits until the node has booted: its VM's OS pid. On failure, the end of what the
    /// server printed says why.
    fn await_vm(&self) -> anyhow::Result<u32> {
        let started = Instant::now();
        loop {
            if self.ctl(&["await_startup", "--timeout", "120"]).is_ok() {
                return self.os_pid();
            }
            if started.elapsed() > BOOT_TIMEOUT {
                let out = std::fs::read_to_string(self.dir.join("server.out")).unwrap_or_default();
                let mut from = out.len().saturating_sub(3000);
                while !out.is_char_boundary(from) {
                    from += 1;
                }
                let tail = &out[from..];
                bail!("node {} did not boot: {tail}", self.name);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn os_pid(&self) -> anyhow::Result<u32> {
        let out = self.ctl(&["eval", "os:getpid()."])?;
        let pid = out.trim().trim_matches('"');
        pid.parse()
            .with_context(|| format!("the VM's OS pid, not {pid:?}"))
    }

    /// `rabbitmqctl -q -n NODE args…`: its output, or an error with what it said.
    fn ctl(&self, args: &[&str]) -> anyhow::Result<String> {
        self.tool("rabbitmqctl", args)
    }

    fn tool(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(program)
            .args(["-q", "-n", &self.name])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {program}"))?;
        if !out.status.success() {
            bail!(
                "{program} -n {} {}: {}",
                self.name,
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// The server script itself, not Debian's wrapper in /usr/sbin (which insists on running
/// the machine's node as the rabbitmq user from its own directory).
fn server_program() -> &'static str {
    const DEBIAN: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
    if Path::new(DEBIAN).exists() {
        DEBIAN
    } else {
        "rabbitmq-server"
    }
}

/// A single private RabbitMQ node: a cluster of one, whose methods take node 0.
pub struct PrivateRabbit {
    cluster: RabbitCluster,
}

impl PrivateRabbit {
    pub fn start() -> anyhow::Result<PrivateRabbit> {
        Ok(PrivateRabbit {
            cluster: RabbitCluster::start(1)?,
        })
    }

    pub async fn start_async() -> PrivateRabbit {
        PrivateRabbit {
            cluster: RabbitCluster::start_async(1).await,
        }
    }

    pub fn amqp_url(&self) -> String {
        self.cluster.amqp_url(0)
    }
}

/// Everything else, on node 0: `rabbit.kill_hard(0)`, `rabbit.freeze(0)`, `rabbit.stop(0)`…
impl std::ops::Deref for PrivateRabbit {
    type Target = RabbitCluster;
    fn deref(&self) -> &RabbitCluster {
        &self.cluster
    }
}
