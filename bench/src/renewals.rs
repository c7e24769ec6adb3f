//! `studyspot-bench renewals`: a renewal storm. N members on one monthly plan, each with a card,
//! all in a one-day trial that ends at the same instant; one billing run for that instant. It
//! measures how long until every invoice is issued and every one is paid, through the real
//! billing consumer process, the broker, PostgreSQL and its provider worker against a local fake
//! Stripe that answers at once (so the figures are ours, not a provider's).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use axum::{Form, Json, routing::post};
use futures::StreamExt as _;
use serde_json::Value;
use studyspot_schemas::{
    EventMetadata,
    billing::{AddPaymentMethod, CreateSubscription, DefinePlan, PlanAllowance, RunBilling},
};
use studyspot_test_world::{World, stop};

const FIXTURE: &str =
    include_str!("../../consumers/billing/tests/fixtures/stripe_payment_intent_succeeded.json");
/// When every trial starts (1 March 2031, 00:00 UTC); they all end a day later.
const T0_MS: i64 = 1_930_003_200_000;
const DAY_MS: i64 = 86_400_000;

/// A fake Stripe: every PaymentIntent succeeds at once, with its own id and the asked amount.
async fn fake_stripe() -> anyhow::Result<(String, Arc<AtomicUsize>)> {
    let template: Value = serde_json::from_str(FIXTURE)?;
    let charges = Arc::new(AtomicUsize::new(0));
    let counted = charges.clone();
    let app = axum::Router::new().route(
        "/v1/payment_intents",
        post(move |Form(form): Form<Vec<(String, String)>>| {
            let (template, counted) = (template.clone(), counted.clone());
            async move {
                let n = counted.fetch_add(1, Ordering::Relaxed);
                let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
                let mut intent = template;
                intent["id"] = Value::from(format!("pi_bench_{n}"));
                if let Some(amount) = field("amount").and_then(|a| a.parse::<i64>().ok()) {
                    intent["amount"] = amount.into();
                    intent["amount_received"] = amount.into();
                }
                Json(intent)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, charges))
}

/// Commands are accepted now; the subscriptions live on their own timeline (`effective_at`,
/// `up_to`), and provider calls are scheduled on the acceptance clock.
fn metadata(world: &World, name: &str) -> EventMetadata {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    EventMetadata {
        event_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{}/{name}", world.id).as_bytes())
            .to_string(),
        occurred_at: i64::try_from(now.as_millis()).unwrap_or(i64::MAX),
        correlation_id: format!("bench-{name}"),
        causation_id: None,
        organization_id: world.organization_id(),
        actor: "service:bench".into(),
    }
}

async fn count(pool: &sqlx::PgPool, sql: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(pool).await?)
}

/// Polls `sql` until it reaches `target`; returns when it did.
async fn until(pool: &sqlx::PgPool, sql: &str, target: i64, limit: Duration) -> anyhow::Result<Instant> {
    let started = Instant::now();
    loop {
        // The consumer creates its schema when it starts: until then the query fails.
        let n = match count(pool, sql).await {
            Ok(n) => n,
            Err(e) if started.elapsed() < limit => {
                tracing::debug!(error = %e, "not yet");
                0
            }
            Err(e) => return Err(e),
        };
        if n >= target {
            return Ok(Instant::now());
        }
        anyhow::ensure!(started.elapsed() < limit, "{sql}: {n} of {target} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub async fn run(subscriptions: usize) -> anyhow::Result<()> {
    let binary = std::env::var("STUDYSPOT_BILLING_BIN")
        .context("STUDYSPOT_BILLING_BIN: the billing consumer binary")?;
    let world = World::new("billing", Box::leak(binary.into_boxed_str())).await;
    let (stripe, charges) = fake_stripe().await?;
    let mut consumer = world.spawn_consumer_with(
        None,
        &world.database_url,
        &[
            ("STUDYSPOT_BILLING__STRIPE__BASE_URL", stripe.as_str()),
            ("STUDYSPOT_BILLING__STRIPE__SECRET_KEY", "sk_test_bench"),
            ("STUDYSPOT_BILLING__PROVIDER__POLL_INTERVAL_MS", "50"),
            ("STUDYSPOT_BILLING__PROVIDER__CONCURRENCY", "32"),
            ("STUDYSPOT_BILLING__SUBSCRIPTIONS__SCHEDULER_INTERVAL_SECS", "0"),
            ("STUDYSPOT_CONSUMER__MAX_BATCH", "500"),
            ("RUST_LOG", "warn"),
        ],
    );
    let pool = world.pool().await;

    world
        .send(&DefinePlan {
            metadata: metadata(&world, "plan"),
            plan_id: "plan_monthly".into(),
            name: "Monthly".into(),
            tier: "basic".into(),
            cycle: "monthly".into(),
            price_minor: 2_000,
            currency: "EUR".into(),
            trial_days: 1,
            tax_rate_bps: 0,
            allowances: vec![PlanAllowance {
                metric: "bookings".into(),
                included: 20,
                overage_unit_minor: 50,
            }],
        })
        .await;
    until(&pool, "SELECT count(*) FROM billing.plans", 1, Duration::from_secs(120))
        .await
        .with_context(|| consumer.log())?;

    // Seed: a card and a trial per member, produced straight to the command topic.
    let seeding = Instant::now();
    futures::stream::iter(0..subscriptions)
        .map(|i| {
            let world = &world;
            async move {
                world
                    .send(&AddPaymentMethod {
                        metadata: metadata(world, &format!("pm/{i}")),
                        payment_method_id: format!("pm_{i}"),
                        member_id: format!("mem_{i}"),
                        method: "card".into(),
                        provider_token: Some("pm_card_visa".into()),
                        label: None,
                        make_default: true,
                    })
                    .await;
                world
                    .send(&CreateSubscription {
                        metadata: metadata(world, &format!("sub/{i}")),
                        subscription_id: format!("sub_{i}"),
                        member_id: format!("mem_{i}"),
                        plan_id: "plan_monthly".into(),
                        effective_at: Some(T0_MS),
                        trial_days: None,
                        paused: false,
                        resume_at: None,
                        coupon_id: None,
                        payment_method_id: None,
                    })
                    .await;
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    let produced = seeding.elapsed();
    let n = i64::try_from(subscriptions)?;
    let limit = Duration::from_secs(60 + 60 * (subscriptions as u64 / 1_000));
    until(&pool, "SELECT count(*) FROM billing.subscriptions WHERE status = 'trialing'", n, limit)
        .await
        .with_context(|| consumer.log())?;
    let seeded = seeding.elapsed();

    // The storm: every trial ends at T0 + 1 day; one run bills them all.
    let storm = Instant::now();
    world.send(&RunBilling { metadata: metadata(&world, "run"), up_to: T0_MS + DAY_MS }).await;
    let issued =
        until(&pool, "SELECT count(*) FROM billing.invoices WHERE status IN ('open', 'paid')", n, limit)
            .await
            .with_context(|| consumer.log())?;
    let paid = until(&pool, "SELECT count(*) FROM billing.invoices WHERE status = 'paid'", n, limit)
        .await
        .with_context(|| consumer.log())?;
    let (issued, paid) = (issued - storm, paid - storm);
    let active = count(&pool, "SELECT count(*) FROM billing.subscriptions WHERE status = 'active'").await?;
    let charged = charges.load(Ordering::Relaxed);
    stop(&mut consumer);
    anyhow::ensure!(active == n, "{active} of {n} subscriptions active after the storm");
    anyhow::ensure!(charged == subscriptions, "Stripe was asked for {charged} charges, not {subscriptions}");

    let per_second = |d: Duration| subscriptions as f64 / d.as_secs_f64().max(1e-3);
    println!("renewal storm: {subscriptions} monthly subscriptions converting at the same instant");
    println!(
        "{:<44} {:>10.1} s   ({} commands produced in {:.1} s)",
        "seeded (cards + trials applied)",
        seeded.as_secs_f64(),
        2 * subscriptions,
        produced.as_secs_f64()
    );
    println!(
        "{:<44} {:>10.1} s   {:>8.0} invoices/s",
        "every invoice issued",
        issued.as_secs_f64(),
        per_second(issued)
    );
    println!(
        "{:<44} {:>10.1} s   {:>8.0} invoices/s   (each charged once: {charged} provider calls)",
        "every invoice paid",
        paid.as_secs_f64(),
        per_second(paid)
    );
    Ok(())
}
