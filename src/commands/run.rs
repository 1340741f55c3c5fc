//! `reminder run [ROLE]...`: runs roles in this process until SIGINT or SIGTERM.

use clap::Args;

use crate::configuration::Settings;
use crate::startup::{self, Application, Role};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Roles to run: all, producer, sender, tracker, api, webhook (several allowed; `all` runs the
    /// webhook role only when `webhook.bind` is set).
    #[arg(value_enum, value_name = "ROLE")]
    pub roles: Vec<Role>,
}

pub async fn run(settings: Settings, args: RunArgs) -> anyhow::Result<()> {
    let shutdown = startup::shutdown_on_signals();
    let app = Application::build(settings, &args.roles).await?;
    app.run(shutdown).await
}
