//! A month of a workshop's reminders written through the tracker's write path, and what the
//! dashboard must show for it.

use super::*;

// ---- a month of a workshop's reminders -------------------------------------------------------

pub const FIRST: &[&str] = &[
    "Budi", "Siti", "Agus", "Dewi", "Rudi", "Maya", "Joko", "Rina", "Hendra", "Putri", "Bambang",
    "Lina",
];
pub const LAST: &[&str] = &[
    "Santoso", "Rahayu", "Wijaya", "Lestari", "Hartono", "Kusuma", "Susilo", "Gunawan",
];
pub const MODELS: &[(&str, &str)] = &[
    ("Honda", "Vario 125"),
    ("Yamaha", "NMAX"),
    ("Toyota", "Avanza"),
    ("Honda", "Beat"),
    ("Suzuki", "Ertiga"),
    ("Daihatsu", "Xenia"),
    ("Mitsubishi", "Xpander"),
    ("Honda", "Scoopy"),
];
pub const REGIONS: &[&str] = &["B", "D", "L", "AB", "F", "N", "H", "E", "AG"];
/// A name the page must show as text, not run as markup.
pub const TRICKY_NAME: &str = "CV \"Maju Jaya\" <b>Fleet</b> & Co";
/// Vehicles at the end of the list are never reached: only failures.
pub const FAILURE_ONLY: usize = 3;

pub struct Pair {
    pub customer: Uuid,
    pub vehicle: Uuid,
    pub name: String,
    pub plate: String,
}

/// What the data implies the dashboard must show.
pub struct Sample {
    pub pairs: Vec<Pair>,
    pub outcomes: Vec<MessageOutcome>,
}

impl Sample {
    /// Customers with one or two vehicles, most reminded once to three times within the last
    /// four weeks, two well over the alert threshold (4), a few failures with the provider's
    /// reasons, some vehicles never reached, and one pair known only from its events.
    pub fn workshop(now: DateTime<Utc>) -> Sample {
        let mut pairs = Vec::new();
        for c in 0..36 {
            let customer = Uuid::new_v4();
            let name = format!(
                "{} {}",
                FIRST[c % FIRST.len()],
                LAST[(c * 5 + c / 8) % LAST.len()]
            );
            for v in 0..(1 + usize::from(c % 4 == 1)) {
                let n = pairs.len();
                pairs.push(Pair {
                    customer,
                    vehicle: Uuid::new_v4(),
                    name: name.clone(),
                    plate: format!(
                        "{} {} {}",
                        REGIONS[n % REGIONS.len()],
                        1000 + (n * 379 + v * 17) % 9000,
                        ["XY", "KM", "AB", "RT", "PQ", "JK"][n % 6]
                    ),
                });
            }
        }
        let last = pairs.len() - 1;
        pairs[last].name = TRICKY_NAME.to_string();
        let mut outcomes = Vec::new();
        let mut push = |pair: &Pair,
                        status: OutcomeStatus,
                        at: DateTime<Utc>,
                        error: Option<(&str, &str, i32)>| {
            let reminder_id = Uuid::new_v4().to_string();
            let (error_code, error_text, attempts) = match error {
                Some((code, text, attempts)) => {
                    (Some(code.to_string()), Some(text.to_string()), attempts)
                }
                None => (None, None, 1),
            };
            outcomes.push(MessageOutcome {
                event_id: reminder::domain::events::outcome_id(status.event_type(), &reminder_id),
                provider_message_id: (status == OutcomeStatus::Sent)
                    .then(|| format!("wamid.{reminder_id}")),
                reminder_id,
                customer_id: pair.customer,
                vehicle_id: pair.vehicle,
                status,
                provider: "cloud_api".into(),
                error_code,
                error: error_text,
                attempts,
                at,
                phone: None,
                customer_name: None,
                plate_number: None,
            });
        };
        for (v, pair) in pairs.iter().enumerate().take(pairs.len() - FAILURE_ONLY) {
            let sends = match v {
                0 => 7,
                1 => 6,
                _ => 1 + v % 3,
            };
            for k in 0..sends {
                let days = ((v * 7 + k * 5) % 28) as u64;
                let minutes = 1 + ((v * 37 + k * 11) % 600) as i64;
                let at =
                    now - chrono::Duration::days(days as i64) - chrono::Duration::minutes(minutes);
                push(pair, OutcomeStatus::Sent, at, None);
            }
        }
        let failures: &[(usize, u64, &str, &str, i32)] = &[
            (
                last,
                2,
                "131026",
                "Message undeliverable: the number is not on WhatsApp",
                1,
            ),
            (
                last - 1,
                5,
                "131026",
                "Message undeliverable: the number is not on WhatsApp",
                1,
            ),
            (
                last - 2,
                9,
                "100",
                "Invalid parameter: phone number is not valid",
                1,
            ),
            (
                last,
                16,
                "131026",
                "Message undeliverable: the number is not on WhatsApp",
                1,
            ),
            (5, 1, "http_503", "Service Unavailable", 5),
            (
                9,
                0,
                "timeout",
                "the provider did not answer within 10000 ms",
                5,
            ),
            (
                12,
                12,
                "131047",
                "Re-engagement message: more than 24 hours since the customer last replied",
                1,
            ),
        ];
        for &(v, days, code, text, attempts) in failures {
            let at =
                now - chrono::Duration::days(days as i64) - chrono::Duration::minutes(3 + v as i64);
            push(
                &pairs[v],
                OutcomeStatus::Failed,
                at,
                Some((code, text, attempts)),
            );
        }
        // A walk-in customer the master data does not know: the events carry the name.
        let walk_in = Pair {
            customer: Uuid::new_v4(),
            vehicle: Uuid::new_v4(),
            name: "Walk-in Eko Prasetyo".into(),
            plate: "B 7777 WI".into(),
        };
        for days in [3, 20] {
            push(
                &walk_in,
                OutcomeStatus::Sent,
                now - chrono::Duration::days(days) - chrono::Duration::minutes(5),
                None,
            );
        }
        for o in outcomes
            .iter_mut()
            .filter(|o| o.customer_id == walk_in.customer)
        {
            o.customer_name = Some(walk_in.name.clone());
            o.plate_number = Some(walk_in.plate.clone());
            o.phone = Some("6281299990000".into());
        }
        pairs.push(walk_in);
        Sample { pairs, outcomes }
    }

    /// Writes the master data (all pairs but the walk-in) and the outcomes through the
    /// tracker's write path.
    pub async fn load(&self, pool: &PgPool, today: NaiveDate) {
        let known = &self.pairs[..self.pairs.len() - 1];
        let mut customers: Vec<NewCustomer> = Vec::new();
        for (i, p) in known.iter().enumerate() {
            if customers.iter().any(|c| c.id == p.customer) {
                continue;
            }
            customers.push(NewCustomer {
                id: p.customer,
                name: p.name.clone(),
                phone: format!("0812{:08}", 10_000_000 + i * 7919),
            });
        }
        let vehicles: Vec<NewVehicle> = known
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (brand, model) = MODELS[i % MODELS.len()];
                NewVehicle {
                    id: p.vehicle,
                    id_customer: p.customer,
                    plate_number: p.plate.clone(),
                    brand: Some(brand.into()),
                    model: Some(model.into()),
                    next_maintenance_date: today
                        .checked_add_days(Days::new(30 + (i as u64 * 11) % 150)),
                }
            })
            .collect();
        master_data::upsert_customers(pool, &customers)
            .await
            .expect("customers");
        master_data::upsert_vehicles(pool, &vehicles)
            .await
            .expect("vehicles");
        for batch in self.outcomes.chunks(40) {
            let applied = apply_batch(pool, batch).await.expect("the tracker's write");
            assert_eq!(applied.counted as usize, batch.len());
        }
    }

    pub fn sent(&self) -> impl Iterator<Item = &MessageOutcome> {
        self.outcomes
            .iter()
            .filter(|o| o.status == OutcomeStatus::Sent)
    }

    pub fn failed(&self) -> impl Iterator<Item = &MessageOutcome> {
        self.outcomes
            .iter()
            .filter(|o| o.status == OutcomeStatus::Failed)
    }

    pub fn frequencies(&self) -> HashMap<(Uuid, Uuid), usize> {
        let mut f = HashMap::new();
        for o in self.sent() {
            *f.entry((o.customer_id, o.vehicle_id)).or_default() += 1;
        }
        f
    }

    /// (sent, failed) per calendar day in the workshop's zone.
    pub fn per_day(&self, tz: Tz) -> BTreeMap<NaiveDate, (u64, u64)> {
        let mut days = BTreeMap::new();
        for o in &self.outcomes {
            let e: &mut (u64, u64) = days
                .entry(o.at.with_timezone(&tz).date_naive())
                .or_default();
            match o.status {
                OutcomeStatus::Sent => e.0 += 1,
                OutcomeStatus::Failed => e.1 += 1,
            }
        }
        days
    }

    pub fn pair(&self, vehicle: Uuid) -> &Pair {
        self.pairs
            .iter()
            .find(|p| p.vehicle == vehicle)
            .expect("known pair")
    }
}

pub async fn workshop_app(env: &TestEnv) -> (TestApp, Sample) {
    workshop_app_with(env, Sample::workshop(Utc::now())).await
}

pub async fn workshop_app_with(env: &TestEnv, sample: Sample) -> (TestApp, Sample) {
    let pool = env.pool().await;
    let tz: Tz = env.settings.producer.timezone.parse().expect("zone");
    sample
        .load(&pool, Utc::now().with_timezone(&tz).date_naive())
        .await;
    hear_back(&sample, &pool).await;
    pool.close().await;
    (env.spawn(&[Role::Api]).await, sample)
}
