//! The `reminder` binary: everything lives in the library; this only runs the command line.

use clap::Parser;

reminder::jemalloc!();

#[tokio::main]
async fn main() {
    let cli = reminder::commands::Cli::parse();
    if let Err(e) = reminder::commands::run(cli).await {
        // One line on stderr, so a script or an operator sees the whole reason at once; the
        // chain of causes joined with ": ".
        let reason = format!("{e:#}").replace('\n', " ");
        eprintln!("reminder: {reason}");
        std::process::exit(1);
    }
}
