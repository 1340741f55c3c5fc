//! The sender's claims and recorded sends through group commits (`db::group_commit`), so one
//! statement serves many reminders in flight.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::{Claim, DispatchRecord, claim_many, final_record, record_many, settle_claim};
use crate::db::group_commit::{Batched, GroupCommit};
use crate::domain::MaintenanceDue;

/// The sender's claims and recorded sends, shared across the reminders in flight: each goes
/// through a group commit (`db::group_commit`), so one statement serves many reminders.
pub struct DispatchWrites {
    pool: PgPool,
    max_attempts: u32,
    claims: GroupCommit<ClaimWriter>,
    sends: GroupCommit<SentWriter>,
}

/// Most claims (or recorded sends) in one statement: one statement stays short.
const GROUP_MAX_BATCH: usize = 200;
/// Claim (or record) statements under way at once: one can commit while the next runs. More
/// only make each statement smaller and cost PostgreSQL the per-statement work again.
const GROUP_IN_FLIGHT: usize = 2;

impl DispatchWrites {
    /// Starts the group commits on the current runtime. Provider, lease and attempt limit are
    /// the sender's own, the same for every claim.
    pub fn start(pool: &PgPool, provider: &str, lease: Duration, max_attempts: u32) -> Self {
        let claims = ClaimWriter {
            pool: pool.clone(),
            provider: provider.to_string(),
            lease,
            max_attempts,
        };
        let sends = SentWriter { pool: pool.clone() };
        DispatchWrites {
            pool: pool.clone(),
            max_attempts,
            claims: GroupCommit::start(claims, GROUP_MAX_BATCH, GROUP_IN_FLIGHT),
            sends: GroupCommit::start(sends, GROUP_MAX_BATCH, GROUP_IN_FLIGHT),
        }
    }

    /// `claim`, through the group commit.
    pub async fn claim(
        &self,
        reminder_id: &str,
        due: &MaintenanceDue,
    ) -> Result<Claim, sqlx::Error> {
        let claimed = self
            .claims
            .call(ClaimRequest {
                reminder_id: reminder_id.to_string(),
                due: due.clone(),
            })
            .await?;
        settle_claim(&self.pool, reminder_id, claimed, self.max_attempts).await
    }

    /// `record_sent`, through the group commit.
    pub async fn record_sent(
        &self,
        reminder_id: &str,
        provider_message_id: &str,
        sent_at: DateTime<Utc>,
    ) -> Result<DispatchRecord, sqlx::Error> {
        let updated = self
            .sends
            .call(SentRequest {
                reminder_id: reminder_id.to_string(),
                provider_message_id: provider_message_id.to_string(),
                sent_at,
            })
            .await?;
        final_record(&self.pool, reminder_id, updated).await
    }
}

struct ClaimRequest {
    reminder_id: String,
    due: MaintenanceDue,
}

struct ClaimWriter {
    pool: PgPool,
    provider: String,
    lease: Duration,
    max_attempts: u32,
}

impl Batched for ClaimWriter {
    type Request = ClaimRequest;
    type Response = Option<i32>;

    async fn run_batch(&self, requests: &[ClaimRequest]) -> Result<Vec<Option<i32>>, sqlx::Error> {
        let reminders: Vec<(&str, &MaintenanceDue)> = requests
            .iter()
            .map(|r| (r.reminder_id.as_str(), &r.due))
            .collect();
        claim_many(
            &self.pool,
            &reminders,
            &self.provider,
            self.lease,
            self.max_attempts,
        )
        .await
    }

    async fn run_one(&self, r: &ClaimRequest) -> Result<Option<i32>, sqlx::Error> {
        self.run_batch(std::slice::from_ref(r))
            .await
            .map(|c| c.into_iter().next().flatten())
    }
}

struct SentRequest {
    reminder_id: String,
    provider_message_id: String,
    sent_at: DateTime<Utc>,
}

struct SentWriter {
    pool: PgPool,
}

impl Batched for SentWriter {
    type Request = SentRequest;
    type Response = Option<DispatchRecord>;

    async fn run_batch(
        &self,
        requests: &[SentRequest],
    ) -> Result<Vec<Option<DispatchRecord>>, sqlx::Error> {
        let sends: Vec<(&str, &str, DateTime<Utc>)> = requests
            .iter()
            .map(|r| {
                (
                    r.reminder_id.as_str(),
                    r.provider_message_id.as_str(),
                    r.sent_at,
                )
            })
            .collect();
        record_many(&self.pool, &sends).await
    }

    async fn run_one(&self, r: &SentRequest) -> Result<Option<DispatchRecord>, sqlx::Error> {
        self.run_batch(std::slice::from_ref(r))
            .await
            .map(|c| c.into_iter().next().flatten())
    }
}
