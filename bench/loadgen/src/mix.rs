//! What the load generator asks for: organizations set up like real ones (plans, venues open
//! around the clock, members with preferences, a card and a subscription; some on a daily plan so
//! renewals fall due while the load runs), then a mix of the commands apps send all day.

use chrono::{DateTime, Duration as Span, Utc};
use rand::{Rng, seq::IndexedRandom};
use serde_json::{Value, json};
use studyspot_grpc_api as pb;
use studyspot_tokens::{Claims, Role, mint};

use crate::api::Grpc;

/// One command an app sends.
#[derive(Clone, Debug)]
pub enum Command {
    /// Organization and member set-up (HTTP).
    Setup {
        kind: &'static str,
        consumer: &'static str,
        path: String,
        body: Value,
        expect: Value,
    },
    CheckIn {
        session_id: String,
        member_id: String,
        venue_id: String,
    },
    CheckOut {
        member_id: String,
    },
    Booking {
        booking_id: String,
        member_id: String,
        venue_id: String,
        starts_at: DateTime<Utc>,
    },
    CreatePayment {
        payment_id: String,
        member_id: String,
        amount_minor: i64,
    },
    ProcessPayment {
        payment_id: String,
    },
    Notify {
        notification_id: String,
        recipient_id: String,
        channel: &'static str,
    },
    Metrics {
        batch: String,
        samples: u32,
    },
    RunBilling,
}

pub const METRIC: &str = "loadgen_queue_depth";

impl Command {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Setup { kind, .. } => kind,
            Self::CheckIn { .. } => "check_in",
            Self::CheckOut { .. } => "check_out",
            Self::Booking { .. } => "booking",
            Self::CreatePayment { .. } => "create_payment",
            Self::ProcessPayment { .. } => "process_payment",
            Self::Notify { .. } => "notification",
            Self::Metrics { .. } => "metric_samples",
            Self::RunBilling => "run_billing",
        }
    }

    /// The consumer whose `command_outcomes` records what became of it.
    pub fn consumer(&self) -> &'static str {
        match self {
            Self::Setup { consumer, .. } => consumer,
            Self::CheckIn { .. } | Self::CheckOut { .. } | Self::Booking { .. } => "attendance",
            Self::CreatePayment { .. } | Self::ProcessPayment { .. } | Self::RunBilling => "billing",
            Self::Notify { .. } => "notifications",
            Self::Metrics { .. } => "alerts",
        }
    }

    /// What the checker looks for once the command is applied.
    pub fn expect(&self) -> Value {
        match self {
            Self::Setup { expect, .. } => expect.clone(),
            Self::CheckIn { session_id, venue_id, .. } => {
                json!({ "session_id": session_id, "venue_id": venue_id })
            }
            Self::CheckOut { member_id } => json!({ "member_id": member_id }),
            Self::Booking { booking_id, .. } => json!({ "booking_id": booking_id }),
            Self::CreatePayment { payment_id, .. } => json!({ "payment_id": payment_id }),
            Self::ProcessPayment { payment_id } => json!({ "payment_id": payment_id, "charged_once": true }),
            Self::Notify { notification_id, channel, .. } => {
                json!({ "notification_id": notification_id, "channel": channel })
            }
            Self::Metrics { batch, samples } => json!({ "batch": batch, "samples": samples }),
            Self::RunBilling => json!({}),
        }
    }

    pub fn has_grpc(&self) -> bool {
        !matches!(self, Self::Setup { .. } | Self::RunBilling)
    }

    pub fn http(&self) -> (String, Value) {
        match self {
            Self::Setup { path, body, .. } => (path.clone(), body.clone()),
            Self::CheckIn { session_id, member_id, venue_id } => (
                "/api/attendance/check-ins".into(),
                json!({ "session_id": session_id, "member_id": member_id, "venue_id": venue_id }),
            ),
            Self::CheckOut { member_id } => {
                ("/api/attendance/check-outs".into(), json!({ "member_id": member_id }))
            }
            Self::Booking { booking_id, member_id, venue_id, starts_at } => (
                "/api/attendance/bookings".into(),
                json!({ "booking_id": booking_id, "member_id": member_id, "venue_id": venue_id,
                        "starts_at": starts_at.to_rfc3339(), "ends_at": (*starts_at + Span::hours(1)).to_rfc3339() }),
            ),
            Self::CreatePayment { payment_id, member_id, amount_minor } => (
                "/api/payments".into(),
                json!({ "payment_id": payment_id, "member_id": member_id, "amount_minor": amount_minor,
                        "currency": "EUR", "method": "card", "payment_method_id": card(member_id),
                        "description": "Day pass" }),
            ),
            Self::ProcessPayment { payment_id } => (format!("/api/payments/{payment_id}/process"), json!({})),
            Self::Notify { notification_id, recipient_id, channel } => (
                "/api/notifications".into(),
                json!({ "notification_id": notification_id, "recipient_id": recipient_id, "channel": channel,
                        "category": "transactional", "subject": "Your seat", "body": "See you at the desk." }),
            ),
            Self::Metrics { batch, samples } => (
                "/api/monitoring/metrics".into(),
                json!({ "samples": (0..*samples).map(|i| json!({
                    "metric": METRIC, "labels": { "batch": batch, "n": i.to_string() }, "value": f64::from(i),
                })).collect::<Vec<_>>() }),
            ),
            Self::RunBilling => ("/api/subscriptions/billing".into(), json!({})),
        }
    }

    pub fn grpc(&self) -> Option<Grpc> {
        Some(match self.clone() {
            Self::CheckIn { session_id, member_id, venue_id } => Grpc::CheckIn(pb::CheckInRequest {
                session_id: Some(session_id),
                member_id,
                venue_id,
                ..Default::default()
            }),
            Self::CheckOut { member_id } => {
                Grpc::CheckOut(pb::CheckOutRequest { member_id, ..Default::default() })
            }
            Self::Booking { booking_id, member_id, venue_id, starts_at } => {
                Grpc::Booking(pb::CreateBookingRequest {
                    booking_id: Some(booking_id),
                    member_id,
                    venue_id,
                    starts_at: starts_at.to_rfc3339(),
                    ends_at: (starts_at + Span::hours(1)).to_rfc3339(),
                    ..Default::default()
                })
            }
            Self::CreatePayment { payment_id, member_id, amount_minor } => {
                Grpc::CreatePayment(pb::CreatePaymentRequest {
                    payment_id: Some(payment_id),
                    payment_method_id: Some(card(&member_id)),
                    member_id,
                    amount_minor,
                    currency: "EUR".into(),
                    method: "card".into(),
                    description: Some("Day pass".into()),
                    invoice_id: None,
                })
            }
            Self::ProcessPayment { payment_id } => {
                Grpc::ProcessPayment(pb::ProcessPaymentRequest { payment_id, ..Default::default() })
            }
            Self::Notify { notification_id, recipient_id, channel } => {
                Grpc::Notify(pb::SendNotificationRequest {
                    notification_id: Some(notification_id),
                    recipient_id,
                    channel: channel.into(),
                    category: "transactional".into(),
                    subject: Some("Your seat".into()),
                    body: "See you at the desk.".into(),
                    ..Default::default()
                })
            }
            Self::Metrics { batch, samples } => Grpc::Metrics(pb::RecordMetricSamplesRequest {
                samples: (0..samples)
                    .map(|i| pb::RecordMetricSampleRequest {
                        metric: METRIC.into(),
                        labels: [("batch".to_owned(), batch.clone()), ("n".to_owned(), i.to_string())]
                            .into_iter()
                            .collect(),
                        value: f64::from(i),
                        sampled_at: None,
                    })
                    .collect(),
            }),
            Self::Setup { .. } | Self::RunBilling => return None,
        })
    }
}

fn card(member_id: &str) -> String {
    format!("pm_{member_id}")
}

/// One organization the load runs in, with tokens of its owner (operator) and its front desk.
#[derive(Clone)]
pub struct Tenant {
    pub organization_id: String,
    pub owner: String,
    pub staff: String,
    pub members: Vec<String>,
    pub venues: Vec<String>,
    pub capacity: i64,
}

impl Tenant {
    pub fn new(settings: &studyspot_config::Settings, n: usize, members: usize) -> anyhow::Result<Self> {
        let organization_id = format!("org_load{n}");
        let token = |role| -> anyhow::Result<String> {
            let now = Utc::now().timestamp() as u64;
            Ok(mint(
                &settings.auth,
                &Claims {
                    sub: format!("svc:loadgen:{role:?}").to_lowercase(),
                    org: Some(organization_id.clone()),
                    roles: vec![role],
                    member_id: None,
                    iss: settings.auth.issuer.clone(),
                    aud: settings.auth.audience.clone(),
                    iat: now,
                    // As long as the gateway accepts: a soak or benchmark outlives a short token.
                    exp: now + settings.auth.max_token_lifetime_secs,
                    nbf: None,
                    scope: None,
                },
            )?)
        };
        Ok(Self {
            owner: token(Role::Owner)?,
            staff: token(Role::Staff)?,
            members: (0..members).map(|m| format!("mem_o{n}m{m}")).collect(),
            venues: vec![format!("ven_o{n}a"), format!("ven_o{n}b")],
            // Less room than members, so some check-ins are refused for capacity.
            capacity: (members as i64 / 3).max(2),
            organization_id,
        })
    }

    /// Set-up in the order it must apply: the catalogue (plans, venues), then each member's
    /// preferences and card, then their subscriptions (every member on a trial that entitles
    /// them to check in; every `renewing`-th also on a daily plan that renews during the run).
    pub fn setup(&self, webhook_base: &str, renewing_every: usize) -> Vec<Vec<Command>> {
        let setup = |kind, consumer, path: &str, body: Value, expect: Value| Command::Setup {
            kind,
            consumer,
            path: path.into(),
            body,
            expect,
        };
        let hours: Vec<Value> =
            (1..=7).map(|d| json!({ "weekday": d, "opens": "00:00", "closes": "24:00" })).collect();
        let mut catalogue = vec![
            setup(
                "define_plan",
                "billing",
                "/api/subscriptions/plans",
                json!({ "plan_id": "plan_study", "name": "Study", "tier": "basic", "cycle": "monthly",
                        "price_minor": 1500, "currency": "EUR", "trial_days": 30,
                        "allowances": [{ "metric": "seat_hours", "included": 100000, "overage_unit_minor": 0 }] }),
                json!({ "plan_id": "plan_study" }),
            ),
            setup(
                "define_plan",
                "billing",
                "/api/subscriptions/plans",
                json!({ "plan_id": "plan_daily", "name": "Daily desk", "tier": "basic", "cycle": "daily",
                        "price_minor": 300, "currency": "EUR", "trial_days": 0 }),
                json!({ "plan_id": "plan_daily" }),
            ),
        ];
        for venue in &self.venues {
            catalogue.push(setup(
                "define_venue",
                "attendance",
                "/api/attendance/venues",
                json!({ "venue_id": venue, "name": venue, "time_zone": "UTC", "capacity": self.capacity,
                        "opening_hours": hours, "qr_required": false }),
                json!({ "venue_id": venue }),
            ));
        }
        let mut members = Vec::new();
        for member in &self.members {
            members.push(setup(
                "set_preferences",
                "notifications",
                "/api/notifications/subscriptions",
                json!({ "recipient_id": member, "email": format!("{member}@example.org"),
                        "webhook_url": format!("{webhook_base}/hooks/{member}"),
                        "webhook_secret": "whsec_c29hay1zZWNyZXQtZm9yLXRoZS1sb2FkLWdlbmVyYXRvcg==",
                        "time_zone": "UTC" }),
                json!({ "recipient_id": member }),
            ));
            members.push(setup(
                "add_payment_method",
                "billing",
                "/api/payments/methods",
                json!({ "payment_method_id": card(member), "member_id": member, "method": "card",
                        "provider_token": "pm_card_visa", "make_default": true }),
                json!({ "payment_method_id": card(member) }),
            ));
        }
        let mut subscriptions = Vec::new();
        let now = Utc::now();
        for (i, member) in self.members.iter().enumerate() {
            subscriptions.push(setup(
                "create_subscription",
                "billing",
                "/api/subscriptions",
                json!({ "subscription_id": format!("sub_{member}_study"), "member_id": member, "plan_id": "plan_study" }),
                json!({ "subscription_id": format!("sub_{member}_study") }),
            ));
            if renewing_every > 0 && i % renewing_every == 0 {
                // Its first day started almost a day ago: it renews within the next minutes.
                let renews_in = Span::seconds(30 + (i as i64 * 7) % 90);
                subscriptions.push(setup(
                    "create_subscription",
                    "billing",
                    "/api/subscriptions",
                    json!({ "subscription_id": format!("sub_{member}_daily"), "member_id": member,
                            "plan_id": "plan_daily", "trial_days": 0,
                            "effective_at": (now - Span::days(1) + renews_in).to_rfc3339() }),
                    json!({ "subscription_id": format!("sub_{member}_daily"), "renews": true }),
                ));
            }
        }
        vec![catalogue, members, subscriptions]
    }

    /// The next command of the mix: mostly attendance, payments, notifications and samples; the
    /// odd billing run (renewals also fall due by billing's own scheduler).
    pub fn next(&self, rng: &mut impl Rng) -> Command {
        let member = self.members.choose(rng).cloned().unwrap_or_default();
        let venue = self.venues.choose(rng).cloned().unwrap_or_default();
        let id = || uuid::Uuid::now_v7().simple().to_string();
        match rng.random_range(0..100) {
            0..22 => {
                Command::CheckIn { session_id: format!("ses_{}", id()), member_id: member, venue_id: venue }
            }
            22..40 => Command::CheckOut { member_id: member },
            40..48 => {
                let starts_at = (Utc::now() + Span::days(1 + rng.random_range(0..5)))
                    .date_naive()
                    .and_hms_opt(rng.random_range(6..20), 0, 0)
                    .map(|t| t.and_utc())
                    .unwrap_or_else(Utc::now);
                Command::Booking {
                    booking_id: format!("bkg_{}", id()),
                    member_id: member,
                    venue_id: venue,
                    starts_at,
                }
            }
            48..58 => Command::CreatePayment {
                payment_id: format!("pay_{}", id()),
                member_id: member,
                amount_minor: rng.random_range(100..5_000),
            },
            58..76 => Command::Notify {
                notification_id: format!("ntf_{}", id()),
                recipient_id: member,
                channel: if rng.random_bool(0.5) { "email" } else { "webhook" },
            },
            76..98 => Command::Metrics { batch: format!("bat_{}", id()), samples: rng.random_range(1..=10) },
            _ => Command::RunBilling,
        }
    }
}
