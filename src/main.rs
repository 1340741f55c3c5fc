//! The `reminder` binary: everything lives in the library; this only runs the command line.

use clap::Parser;

// glibc's malloc was a third of this process's CPU under load (many threads, many
// short-lived buffers); jemalloc cut the CPU per reminder by a sixth at the same peak RSS.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() {
    let cli = reminder::cli::Cli::parse();
    if let Err(e) = reminder::cli::run(cli).await {
        // One line on stderr, as the contract asks; the chain of causes joined with ": ".
        let reason = format!("{e:#}").replace('\n', " ");
        eprintln!("reminder: {reason}");
        std::process::exit(1);
    }
}
