//! `reminder migrate`: creates the database if needed, applies the migrations, and exits.

use crate::configuration::Settings;

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let pool = crate::db::migrate(&settings.database).await?;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await?;
    println!("database is up to date ({applied} migrations applied)");
    Ok(())
}
