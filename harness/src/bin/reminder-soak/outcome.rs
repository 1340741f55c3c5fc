//! What came out of a soak: outcomes recorded, what the report counted, and what was
//! dead-lettered.

use reminder::configuration::Settings;
use reminder_harness::amqp::Amqp;
use sqlx::PgPool;

/// Reminders whose outcome the tracker recorded (an error while the database is away).
pub async fn outcomes(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(DISTINCT reminder_id) FROM message_log")
        .fetch_one(pool)
        .await
}

pub struct Outcome {
    /// `message_log` rows of sends, and of distinct reminders among them.
    pub sent: i64,
    pub distinct_sent: i64,
    pub failed: i64,
    /// Sum of the report's frequencies.
    pub frequency: i64,
    pub dead: i64,
}

impl Outcome {
    pub async fn read(pool: &PgPool, settings: &Settings) -> anyhow::Result<Outcome> {
        let (sent, distinct_sent, failed, frequency): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM message_log WHERE status = 'sent'),
                    (SELECT count(DISTINCT reminder_id) FROM message_log WHERE status = 'sent'),
                    (SELECT count(*) FROM message_log WHERE status = 'failed'),
                    (SELECT coalesce(sum(frequency), 0)::bigint FROM whatsapp_report)",
        )
        .fetch_one(pool)
        .await?;
        let amqp = Amqp::connect(&settings.amqp.url).await?;
        let dead_queue = reminder::broker::Topology::new(&settings.amqp).dead_queue;
        let dead = amqp.depth(&dead_queue).await.unwrap_or(0) as i64;
        amqp.close().await;
        Ok(Outcome {
            sent,
            distinct_sent,
            failed,
            frequency,
            dead,
        })
    }

    /// Reminders with no outcome at all, out of `expected`.
    pub fn lost(&self, expected: i64) -> i64 {
        expected - self.sent - self.failed - self.dead
    }

    /// Sends counted more than once.
    pub fn double_counted(&self) -> i64 {
        self.frequency - self.distinct_sent
    }
}
