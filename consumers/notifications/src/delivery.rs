//! The delivery worker: beside consuming, it leases due deliveries, sends each through its
//! channel with the notification's organization and id as idempotency key (`message_key`: ids are
//! unique only within an organization, a provider de-duplicates across our whole account), and
//! reports the answer as a
//! `RecordDeliveryOutcome` command through the outbox — in the same transaction that marks the
//! delivery reported, so a report is published exactly when it is recorded. A database that cannot
//! be reached after a send is waited for (until shortly before the lease ends); an outcome still
//! unrecorded then is kept in memory, and when the worker leases that delivery again it records
//! the outcome instead of sending again. Only a crash of the process between the send and that
//! record sends again after the lease, with the same key (and for e-mail the same `Message-ID`).
//! In-app messages need no provider: they are
//! stored and live in the projection, so they are reported sent at once.
//!
//! A digest whose window has closed is not sent straight away: the worker asks for its seal
//! (`ReleaseNotification`, through the outbox) and sends it once the handler has applied that,
//! so the messages it carries are those the log collected before the seal (see
//! `decide::waiting`).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::Utc;
use rand::Rng as _;
use sqlx::PgPool;
use studyspot_bus::TraceContext;
use studyspot_consumer_runtime::{OutboxWriter, Sidecar, SidecarContext, slots::Slots};
use studyspot_notification_channels::{
    ChannelError, ChannelName, Channels, ChannelsConfig, Delivery, Message, OutboundPolicy, SecretString,
    message_key,
};
use studyspot_notifications_projection::store::{self, Due};

use crate::endpoints::{DISABLED, Endpoints, Gate};
use studyspot_schemas::{
    EventMetadata,
    notifications::{RecordDeliveryOutcome, ReleaseNotification},
};
use studyspot_tracking_links::{Keys, Links, Target, html};

const ACTOR: &str = "service:notifications-delivery";

#[derive(Clone)]
struct Worker {
    pool: PgPool,
    outbox: OutboxWriter,
    channels: Arc<Channels>,
    concurrency: i64,
    lease_secs: f64,
    schedule: Arc<Vec<u64>>,
    jitter_percent: u32,
    /// Signs tracking links (open pixel, click redirects, Twilio status callbacks) when enabled.
    links: Option<Arc<Links>>,
    endpoints: Arc<Endpoints>,
    /// Sends whose outcome could not be recorded before their lease ended, by organization and
    /// notification id: recorded, not sent again, when the delivery is leased again.
    unrecorded: Arc<Mutex<HashMap<(String, String), Unrecorded>>>,
}

/// An attempt that went out but is not recorded yet.
struct Unrecorded {
    attempts: i32,
    answer: Result<Delivery, ChannelError>,
    since: Instant,
}

/// How long an unrecorded outcome is kept: the delivery is leased again (by this worker, or by
/// another process's after the lease) long before.
const KEEP_UNRECORDED: Duration = Duration::from_secs(24 * 3600);

/// The tracking links of `[notifications.tracking]`, when enabled and a signing key is set.
pub fn tracking_links(t: &studyspot_config::Tracking) -> Option<Links> {
    if !t.enabled {
        return None;
    }
    let keys = Keys::new(&t.signing_key_id, t.secrets.clone());
    if !keys.can_sign() {
        tracing::warn!(key = %t.signing_key_id, "notifications.tracking has no secret for its signing key; messages go out untracked");
        return None;
    }
    Some(Links::new(&t.public_base_url, keys, t.link_ttl_days.saturating_mul(86_400)))
}

pub fn sidecar() -> Sidecar {
    Box::new(|ctx: SidecarContext| {
        Box::pin(async move {
            let n = &ctx.settings.notifications;
            let config: ChannelsConfig = match serde_json::from_value(n.channels.clone()) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "notifications.channels is invalid; nothing is delivered");
                    return;
                }
            };
            let outbound = match OutboundPolicy::from_config(&ctx.settings.outbound.allow) {
                Ok(policy) => policy,
                Err(e) => {
                    tracing::error!(error = %e, "outbound.allow is invalid; nothing is delivered");
                    return;
                }
            };
            let channels = match studyspot_notification_channels::channels(&config, &outbound) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "notification channels are misconfigured; nothing is delivered");
                    return;
                }
            };
            let d = &n.delivery;
            let worker = Worker {
                pool: ctx.pool,
                outbox: ctx.outbox,
                channels: Arc::new(channels),
                concurrency: i64::try_from(d.concurrency.max(1)).unwrap_or(16),
                lease_secs: d.lease_secs.max(1) as f64,
                schedule: Arc::new(d.retry_schedule_secs.clone()),
                jitter_percent: d.jitter_percent.min(100),
                links: tracking_links(&n.tracking).map(Arc::new),
                endpoints: Arc::new(Endpoints::new(
                    d.webhook_rate_per_second,
                    d.webhook_rate_burst,
                    d.webhook_disable_after_secs,
                )),
                unrecorded: Arc::default(),
            };
            let poll = Duration::from_millis(d.poll_interval_ms.max(10));
            let slots = Slots::new(usize::try_from(worker.concurrency).unwrap_or(16));
            loop {
                let busy = match worker.round(&slots).await {
                    Ok(n) => n > 0,
                    Err(e) => {
                        tracing::warn!(error = %e, "delivery round failed; retrying");
                        false
                    }
                };
                if ctx.shutdown.is_cancelled() {
                    break;
                }
                if !busy {
                    tokio::select! {
                        () = ctx.shutdown.cancelled() => break,
                        () = tokio::time::sleep(poll) => {}
                    }
                }
            }
            // Sends in flight are recorded before the worker ends.
            slots.drain().await;
        })
    })
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// The metadata of a record the worker writes about a notification: its event id derived from
/// `name` and the organization, so writing it again (a retry, a second ask) is a duplicate the
/// consumer drops, while another organization's notification of the same id gets its own.
fn worker_metadata(
    name: &str,
    notification_id: &str,
    organization_id: &str,
    at: chrono::DateTime<Utc>,
) -> EventMetadata {
    let name = format!("{organization_id}/{name}");
    EventMetadata {
        event_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string(),
        occurred_at: at.timestamp_millis(),
        correlation_id: notification_id.to_owned(),
        causation_id: Some(notification_id.to_owned()),
        organization_id: organization_id.to_owned(),
        actor: ACTOR.to_owned(),
    }
}

impl Worker {
    /// Leases due deliveries for the free slots (`Slots::take`) and sends each in a task of its
    /// own that holds its slot until the outcome is recorded; asks for the seals of due digests.
    /// Returns how many of both.
    async fn round(&self, slots: &Slots) -> Result<usize, Failure> {
        let asked = self.ask_seals().await?;
        if asked > 0 {
            self.outbox.wake();
        }
        let mut held = slots.take().await;
        let mut tx = self.pool.begin().await?;
        let free = i64::try_from(held.count()).unwrap_or(self.concurrency);
        let due = store::lease_due(&mut tx, Utc::now(), free, self.lease_secs).await?;
        tx.commit().await?;
        let n = due.len() + asked;
        for d in due {
            let Some(slot) = held.one() else { break };
            let worker = self.clone();
            tokio::spawn(async move {
                let notification = d.notification_id.clone();
                if let Err(e) = worker.deliver(d).await {
                    tracing::warn!(%notification, error = %e, "delivery failed; it is tried again when its lease ends");
                }
                worker.outbox.wake();
                drop(slot);
            });
        }
        Ok(n)
    }

    /// Asks for the seal of each due digest; asks again after a lease's time without it (the same
    /// event id: a second ask of one that arrived is a duplicate).
    async fn ask_seals(&self) -> Result<usize, Failure> {
        let mut tx = self.pool.begin().await?;
        let now = Utc::now();
        let unsealed = store::digests_to_seal(&mut tx, now, self.concurrency, self.lease_secs).await?;
        for d in &unsealed {
            let name = format!("{}/seal", d.notification_id);
            let ask = ReleaseNotification {
                metadata: worker_metadata(&name, &d.notification_id, &d.organization_id, now),
                notification_id: d.notification_id.clone(),
                recipient_id: d.recipient_id.clone(),
            };
            self.outbox.enqueue(&mut tx, &ask, &TraceContext::root()).await?;
        }
        tx.commit().await?;
        Ok(unsealed.len())
    }

    async fn deliver(&self, d: Due) -> Result<(), Failure> {
        let attempts = d.attempts + 1;
        if let Some(answer) = self.take_unrecorded(&d, attempts) {
            tracing::info!(notification = %d.notification_id, attempts, "recording an earlier send's outcome instead of sending again");
            return self.record(&d, attempts, &answer).await;
        }
        if d.channel == "webhook" {
            let mut tx = self.pool.begin().await?;
            match self.endpoints.gate(&mut tx, &d).await? {
                Gate::Go => {}
                Gate::Wait(wait) => {
                    // Not an attempt: the endpoint's rate, not the endpoint, held it back.
                    let next = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                    store::retry_later(
                        &mut tx,
                        &d.organization_id,
                        &d.notification_id,
                        d.attempts,
                        next,
                        "over the endpoint's rate",
                    )
                    .await?;
                    tx.commit().await?;
                    return Ok(());
                }
                Gate::Disabled(at) => {
                    let why = format!("the endpoint was disabled at {at} after failing without a success");
                    self.report(&mut tx, &d, "failed", attempts, None, Some((DISABLED.to_owned(), why)))
                        .await?;
                    tx.commit().await?;
                    return Ok(());
                }
            }
            tx.commit().await?;
        }
        tracing::debug!(notification = %d.notification_id, attempts, leased_until = %d.leased_until, "sending");
        let answer = self.send(&d).await;
        tracing::debug!(notification = %d.notification_id, attempts, ok = answer.is_ok(), "sent; recording the outcome");
        self.record(&d, attempts, &answer).await
    }

    /// The outcome of attempt `attempts` if it went out without being recorded (an unrecorded
    /// outcome of another attempt is of no use any more: someone recorded since).
    fn take_unrecorded(&self, d: &Due, attempts: i32) -> Option<Result<Delivery, ChannelError>> {
        let mut unrecorded = self.unrecorded.lock().ok()?;
        unrecorded.retain(|_, u| u.since.elapsed() < KEEP_UNRECORDED);
        let key = (d.organization_id.clone(), d.notification_id.clone());
        unrecorded.remove(&key).filter(|u| u.attempts == attempts).map(|u| u.answer)
    }

    /// Records what attempt `attempts` came to, trying again while the database cannot be
    /// reached, until shortly before the lease ends. The message may have gone out: a record lost
    /// here is a message sent again once the lease runs out (SMTP has no idempotency key), so a
    /// database restart in the middle of a send must cost a wait, not a second e-mail.
    async fn record(
        &self,
        d: &Due,
        attempts: i32,
        answer: &Result<Delivery, ChannelError>,
    ) -> Result<(), Failure> {
        let lease_left = d.leased_until - Utc::now();
        let give_up_at = d.leased_until - (lease_left / 4).min(chrono::Duration::seconds(5));
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.record_once(d, attempts, answer).await {
                Ok(()) => return Ok(()),
                Err(e) if Utc::now() + backoff < give_up_at => {
                    tracing::warn!(notification = %d.notification_id, attempts, error = %e, "could not record the delivery's outcome yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    // Kept for when this worker leases it again; another process's worker, which
                    // may lease it first once the lease has ended, would send it again.
                    tracing::error!(notification = %d.notification_id, attempts, error = %e, "could not record the delivery's outcome before its lease ends; keeping it to record at the next lease");
                    if let Ok(mut unrecorded) = self.unrecorded.lock() {
                        unrecorded.insert(
                            (d.organization_id.clone(), d.notification_id.clone()),
                            Unrecorded { attempts, answer: answer.clone(), since: Instant::now() },
                        );
                    }
                    return Err(e);
                }
            }
        }
    }

    async fn record_once(
        &self,
        d: &Due,
        attempts: i32,
        answer: &Result<Delivery, ChannelError>,
    ) -> Result<(), Failure> {
        let webhook = d.channel == "webhook";
        let mut tx = self.pool.begin().await?;
        if store::attempt_recorded(&mut tx, &d.organization_id, &d.notification_id, attempts).await? {
            // An earlier try committed, but its answer was lost with the connection.
            return Ok(());
        }
        match answer {
            Ok(delivery) => {
                if webhook {
                    self.endpoints.succeeded(&mut tx, d).await?;
                }
                self.report(&mut tx, d, "sent", attempts, delivery.provider_message_id.clone(), None).await?
            }
            Err(ChannelError::Permanent { code, message }) => {
                self.report(&mut tx, d, "failed", attempts, None, Some((code.clone(), message.clone())))
                    .await?;
            }
            Err(e)
                if webhook
                    && let Some(since) =
                        self.endpoints.failed(&mut tx, d, &e.to_string(), Utc::now()).await? =>
            {
                let why = format!("failing since {since}; last error: {e}");
                self.report(&mut tx, d, "failed", attempts, None, Some((DISABLED.to_owned(), why))).await?;
            }
            Err(e) => {
                let wait = usize::try_from(d.attempts).ok().and_then(|n| self.schedule.get(n)).copied();
                match wait {
                    Some(secs) => {
                        let next = Utc::now() + self.jittered(secs);
                        tracing::info!(notification = %d.notification_id, attempts, error = %e, next = %next, "delivery retried later");
                        let error = e.to_string();
                        store::retry_later(
                            &mut tx,
                            &d.organization_id,
                            &d.notification_id,
                            attempts,
                            next,
                            &error,
                        )
                        .await?;
                    }
                    None => {
                        let gave_up = ("retries_exhausted".to_owned(), e.to_string());
                        self.report(&mut tx, d, "gave_up", attempts, None, Some(gave_up)).await?;
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn send(&self, d: &Due) -> Result<Delivery, ChannelError> {
        if d.channel == "in_app" {
            return Ok(Delivery {
                provider_message_id: None,
                status: studyspot_notification_channels::DeliveryStatus::Sent,
            });
        }
        let client = d.channel.parse::<ChannelName>().ok().and_then(|name| self.channels.get(&name));
        let Some(client) = client else {
            return Err(ChannelError::Permanent {
                code: "channel_not_configured".into(),
                message: format!("no {} channel is configured", d.channel),
            });
        };
        let (html, status_callback) = self.tracking(d);
        let mut message = Message {
            idempotency_key: message_key(&d.organization_id, &d.notification_id),
            to: d.address.clone().unwrap_or_default(),
            subject: d.subject.clone(),
            body: d.body.clone(),
            html,
            data: [
                ("notification_id".to_owned(), d.notification_id.clone()),
                ("category".to_owned(), d.category.clone()),
            ]
            .into(),
            webhook_secret: d.webhook_secret.clone().map(SecretString::from),
            event_type: Some(format!("notification.{}", d.category)),
        };
        if let Some(url) = status_callback {
            message.data.insert(studyspot_notification_channels::STATUS_CALLBACK_DATA.to_owned(), url);
        }
        client.send(&message).await
    }

    /// The HTML as sent (with the open pixel and click redirects) and, for Twilio, the message's
    /// own status-callback URL. Untracked when tracking is off or a link cannot be signed.
    fn tracking(&self, d: &Due) -> (Option<String>, Option<String>) {
        let Some(links) = &self.links else { return (d.html.clone(), None) };
        let target = Target {
            notification_id: d.notification_id.clone(),
            recipient_id: d.recipient_id.clone(),
            organization_id: d.organization_id.clone(),
        };
        let now = Utc::now().timestamp();
        match d.channel.as_str() {
            "email" => {
                let html = d.html.as_deref().map(|h| {
                    html::instrument(h, links, &target, now).unwrap_or_else(|e| {
                        tracing::warn!(notification = %d.notification_id, error = %e, "sent without tracking");
                        h.to_owned()
                    })
                });
                (html, None)
            }
            "sms" | "whatsapp" => (d.html.clone(), links.twilio_status_url(&target).ok()),
            _ => (d.html.clone(), None),
        }
    }

    fn jittered(&self, secs: u64) -> chrono::Duration {
        let base = i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX / 2);
        let spread = base * i64::from(self.jitter_percent) / 100;
        let offset = if spread > 0 { rand::rng().random_range(-spread..=spread) } else { 0 };
        chrono::Duration::milliseconds((base + offset).max(0))
    }

    async fn report(
        &self,
        tx: &mut sqlx::PgConnection,
        d: &Due,
        outcome: &str,
        attempts: i32,
        provider_message_id: Option<String>,
        failure: Option<(String, String)>,
    ) -> Result<(), Failure> {
        let name = format!("{}/delivery/{attempts}", d.notification_id);
        let (code, message) = failure.map_or((None, None), |(c, m)| (Some(c), Some(m)));
        let record = RecordDeliveryOutcome {
            metadata: worker_metadata(&name, &d.notification_id, &d.organization_id, Utc::now()),
            notification_id: d.notification_id.clone(),
            recipient_id: d.recipient_id.clone(),
            outcome: outcome.to_owned(),
            attempts,
            provider_message_id,
            code,
            message,
        };
        self.outbox.enqueue(tx, &record, &TraceContext::root()).await?;
        store::reported(tx, &d.organization_id, &d.notification_id, attempts).await?;
        Ok(())
    }
}
