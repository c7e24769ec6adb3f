//! Notifications' handler: route and render each notification (preferences, quiet hours, caps,
//! templates), record the delivery the worker sends, settle the worker's reports, and turn other
//! domains' events into notifications.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, types::Json};
use studyspot_consumer_runtime::{Effects, HandleError, Handler, Inbound, Out, malformed};
use studyspot_notifications_projection::store::{self, NotificationRow, PreferencesRow};
use studyspot_schemas::{
    Record,
    notifications::{
        CancelCampaign, CancelNotifications, CreateCampaign, CreateTemplate, LaunchCampaign,
        MarkNotificationsRead, NotificationDeferred, NotificationDigested, NotificationFailed,
        NotificationQueued, NotificationSent, NotificationSuppressed, NotificationsRead, PreferencesUpdated,
        RecordDeliveryOutcome, ReleaseNotification, SendNotification, SetPreferences, TemplatePublished,
        WebhookEndpointDisabled,
    },
};

use crate::{
    alert_triggers, campaigns,
    decide::{
        self, Malformed, digests,
        notifications::{self, ReleaseState},
        reports,
        routing::{self, Route, SentToday},
        waiting::{self, Release},
    },
    endpoints,
    shell::{ACTOR, NotificationsOut},
    state,
};

#[derive(Debug, Default, Clone)]
pub struct NotificationsHandler;

impl Handler for NotificationsHandler {
    async fn handle(
        &self,
        tx: &mut PgConnection,
        message: &Inbound,
        effects: &mut Effects,
    ) -> Result<(), HandleError> {
        let mut out = Out::new(message, effects, ACTOR);
        match message.record_type.as_str() {
            SendNotification::FULL_NAME => {
                let c: SendNotification = message.record()?;
                decide::validate_send(&c).map_err(malformed::<SendNotification>)?;
                send(tx, &mut out, c).await
            }
            SetPreferences::FULL_NAME => set_preferences(tx, &mut out).await,
            RecordDeliveryOutcome::FULL_NAME => delivery_outcome(tx, &mut out).await,
            CancelNotifications::FULL_NAME => cancel(tx, &mut out).await,
            studyspot_schemas::notifications::RecordDeliveryStatus::FULL_NAME => {
                crate::tracking::record_status(tx, &mut out).await
            }
            CreateTemplate::FULL_NAME => create_template(tx, &mut out).await,
            MarkNotificationsRead::FULL_NAME => mark_read(tx, &mut out).await,
            ReleaseNotification::FULL_NAME => release(tx, &mut out).await,
            CreateCampaign::FULL_NAME => campaigns::create(tx, &mut out).await,
            LaunchCampaign::FULL_NAME => campaigns::launch(tx, &mut out).await,
            CancelCampaign::FULL_NAME => campaigns::cancel(tx, &mut out).await,
            // Other domains' events: who members are (for segments), and what notifies them.
            _ if !message.topic.contains(".notifications.") => {
                campaigns::note_audience(tx, message).await?;
                for c in alert_triggers::notifications_for(message)? {
                    send(tx, &mut out, c).await?;
                }
                match campaigns::triggered(tx, message).await? {
                    Some(c) => send(tx, &mut out, c).await,
                    None => Ok(()),
                }
            }
            other => Err(HandleError::UnknownRecord(other.to_owned())),
        }
    }

    /// The delivery worker's state of each delivery, and its webhook endpoints' health. A rebuild
    /// applies the same records up to the swap, but not what the worker did beside them: a
    /// delivery it has reported (the report in the outbox, which the swap moves across, or in the
    /// log past the swap) would be `pending` in the new schema and sent again, and one being sent
    /// (leased) sent again by another process's worker — a second e-mail, as SMTP knows no
    /// idempotency key. So a delivery
    /// the worker answered for stays `reported` (also one the live projection settled and a
    /// rebuild left pending: whatever a changed handler decides, it went out), and leases,
    /// attempts, back-offs (once it has tried) and errors go across; what the handler decided
    /// (pending, cancelled, settled, when due) stays the rebuild's.
    fn carried_across_swap(&self, live: &str, rebuild: &str) -> Vec<String> {
        vec![
            format!(
                "UPDATE {rebuild}.deliveries r SET \
                   status = CASE WHEN r.status = 'pending' AND l.status IN ('reported', 'settled') \
                                 THEN 'reported' ELSE r.status END, \
                   attempts = l.attempts, leased_until = l.leased_until, last_error = l.last_error, \
                   next_attempt_at = CASE WHEN l.attempts > 0 THEN l.next_attempt_at ELSE r.next_attempt_at END \
                 FROM {live}.deliveries l \
                 WHERE l.organization_id = r.organization_id AND l.notification_id = r.notification_id"
            ),
            format!(
                "INSERT INTO {rebuild}.webhook_endpoints \
                   (organization_id, url, recipient_id, failing_since, last_error, disabled_at) \
                 SELECT organization_id, url, recipient_id, failing_since, last_error, disabled_at \
                 FROM {live}.webhook_endpoints ON CONFLICT (organization_id, url) DO NOTHING"
            ),
        ]
    }
}

/// The recipient's preferences, parsed; stored ones were valid when set.
fn parse(p: &PreferencesRow) -> routing::Preferences {
    routing::Preferences {
        email: p.email.clone(),
        phone: p.phone.clone(),
        whatsapp: p.whatsapp.clone(),
        push_token: p.push_token.clone(),
        webhook_url: p.webhook_url.clone(),
        time_zone: routing::time_zone(&p.time_zone).unwrap_or(chrono_tz::Tz::UTC),
        quiet: p.quiet_start.zip(p.quiet_end),
        opted_out_channels: p.opted_out_channels.clone(),
        opted_out_categories: p.opted_out_categories.clone(),
        category_caps: p.category_caps.0.clone(),
        daily_cap: p.daily_cap,
    }
}

/// A notification: the commanded ones, those other domains' events ask for, and a disabled
/// endpoint's notice to its owner.
async fn send(tx: &mut PgConnection, out: &mut Out<'_>, c: SendNotification) -> Result<(), HandleError> {
    let parsed = notifications::parse_send(&c).map_err(malformed::<SendNotification>)?;
    let at = out.message.occurred_at()?;
    let org = c.metadata.organization_id.clone();
    // Ids are the client's: one taken in another organization is free in this one.
    let exists = store::load(tx, &org, &c.notification_id).await?.is_some();
    if let Err(refusal) = notifications::decide_new(exists, &parsed) {
        out.refuse::<SendNotification>(&c.recipient_id, refusal);
        return Ok(());
    }
    let mut send_at = match c.send_at {
        Some(ms) => Some(DateTime::from_timestamp_millis(ms).ok_or_else(|| {
            malformed::<SendNotification>(Malformed(format!("send_at {ms} is not a time")))
        })?),
        None => None,
    };
    // A digest is routed for when its window closes: quiet hours and caps apply then.
    let prefs = store::preferences(tx, &org, &c.recipient_id).await?.map(|p| parse(&p));
    let digest = match (&c.digest_key, c.critical) {
        (Some(key), false) => {
            let opened = send_at.unwrap_or(at).max(at);
            let closes_at = match &c.digest_at_local {
                Some(local) => {
                    let time = routing::local_time("digest_at_local", local)
                        .map_err(|e| malformed::<SendNotification>(Malformed(e)))?;
                    let zone = prefs.as_ref().map_or(chrono_tz::Tz::UTC, |p| p.time_zone);
                    digests::next_local(opened, time, zone)
                }
                None => {
                    let window =
                        digests::window_secs(c.digest_window_secs).map_err(malformed::<SendNotification>)?;
                    opened + chrono::Duration::seconds(window)
                }
            };
            send_at = Some(closes_at);
            Some((key.clone(), closes_at))
        }
        _ => None,
    };
    // A trigger names no channel: email when the member has an address, else in-app.
    let channel = match c.channel.as_str() {
        "" if prefs.as_ref().is_some_and(|p| p.email.is_some()) => "email".to_owned(),
        "" => "in_app".to_owned(),
        named => named.to_owned(),
    };
    // The organization's template in the channel and locale, when the send names one.
    let locale = c.locale.clone().unwrap_or_else(|| "en".into());
    let template = match &c.template_id {
        Some(id) => {
            store::template(tx, &org, id, &channel, &locale).await?.map(state::template).transpose()?
        }
        None => None,
    };
    let composed = match notifications::decide_message(template.as_ref(), &parsed, &channel, &locale) {
        Ok(composed) => composed,
        Err(refusal) => {
            out.refuse::<SendNotification>(&c.recipient_id, refusal);
            return Ok(());
        }
    };
    let (rendered, template) = (composed.rendered, composed.template);
    let request = routing::Request {
        recipient_id: &c.recipient_id,
        channel: &channel,
        category: &c.category,
        critical: c.critical,
        send_at,
    };
    // The caps' counts for the local day the route picks (one day, usually today).
    let mut counts: HashMap<chrono::NaiveDate, SentToday> = HashMap::new();
    for day in candidate_days(prefs.as_ref(), at, send_at) {
        let (category, all) = store::sent_on(tx, &org, &c.recipient_id, day, &c.category).await?;
        counts.insert(day, SentToday { category, all });
    }
    let mut route =
        routing::route(&request, prefs.as_ref(), at, |day| counts.get(&day).copied().unwrap_or_default());
    if let Some(campaign) = &c.campaign_id
        && studyspot_notifications_projection::campaigns::is_cancelled(tx, &org, campaign).await?
    {
        route = Route::Suppress { reason: "campaign_cancelled" };
    }
    // An address a provider refused for good gets nothing more, critical or not.
    if let Route::Deliver { address, .. } = &route
        && channel != "in_app"
        && store::address_mark(tx, &org, &channel, address).await?.is_some()
    {
        route = Route::Suppress { reason: "address_marked" };
    }
    let mut row = NotificationRow {
        notification_id: c.notification_id.clone(),
        organization_id: org.clone(),
        recipient_id: c.recipient_id.clone(),
        channel: channel.clone(),
        category: c.category.clone(),
        subject: rendered.subject,
        body: rendered.body,
        html: rendered.html,
        status: "queued".into(),
        template_id: template.as_ref().map(|t| t.template_id.to_string()),
        template_version: template.as_ref().map(|t| t.version),
        locale: template.map(|t| t.locale),
        critical: c.critical,
        transaction_id: c.transaction_id.clone(),
        created_at: at,
        updated_at: Some(at),
        campaign_id: c.campaign_id.clone(),
        ..NotificationRow::default()
    };
    match route {
        Route::Suppress { reason } => {
            row.status = "suppressed".into();
            row.reason = Some(reason.into());
            store::save(tx, &row).await?;
            out.emit(|metadata| NotificationSuppressed {
                metadata,
                notification_id: row.notification_id.clone(),
                recipient_id: row.recipient_id.clone(),
                channel: row.channel.clone(),
                reason: reason.into(),
            });
        }
        Route::Deliver { address, not_before, deferred, day } => {
            if let Some((key, closes_at)) = digest {
                let open = studyspot_notifications_projection::campaigns::digests_open_at(
                    tx,
                    &org,
                    &row.recipient_id,
                    &row.channel,
                    &row.category,
                    &key,
                    at,
                )
                .await?
                .into_iter()
                .find(|g| as_log_tells(g).collects(at));
                if let Some(open) = open {
                    row.address = Some(address);
                    return collect(tx, out, row, open.digest_id).await;
                }
                // The first message of a digest: the digest is a notification of its own, queued
                // for when the window closes, that carries this one and those that follow.
                let digest_id = format!(
                    "dig_{}",
                    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, row.notification_id.as_bytes()).simple()
                );
                let mut item = row.clone();
                item.address = Some(address.clone());
                row.notification_id = digest_id.clone();
                row.transaction_id = None;
                row.address = Some(address);
                row.not_before = Some(not_before);
                row.status = if deferred.is_some() { "deferred".into() } else { "queued".into() };
                row.reason = deferred.map(Into::into);
                store::save(tx, &row).await?;
                store::insert_delivery(tx, &row, not_before, at).await?;
                store::count_sent(tx, &org, &c.recipient_id, day, &c.category).await?;
                studyspot_notifications_projection::campaigns::insert_digest(
                    tx,
                    &digest_id,
                    &org,
                    &row.recipient_id,
                    &row.channel,
                    &row.category,
                    &key,
                    closes_at,
                )
                .await?;
                out.emit(|metadata| NotificationQueued {
                    metadata,
                    notification_id: row.notification_id.clone(),
                    recipient_id: row.recipient_id.clone(),
                    channel: row.channel.clone(),
                    category: row.category.clone(),
                });
                return collect(tx, out, item, digest_id).await;
            }
            row.address = Some(address);
            row.not_before = Some(not_before);
            row.status = if deferred.is_some() { "deferred".into() } else { "queued".into() };
            row.reason = deferred.map(Into::into);
            store::save(tx, &row).await?;
            store::insert_delivery(tx, &row, not_before, at).await?;
            store::count_sent(tx, &org, &c.recipient_id, day, &c.category).await?;
            out.emit(|metadata| NotificationQueued {
                metadata,
                notification_id: row.notification_id.clone(),
                recipient_id: row.recipient_id.clone(),
                channel: row.channel.clone(),
                category: row.category.clone(),
            });
            if let Some(reason) = deferred {
                out.emit(|metadata| NotificationDeferred {
                    metadata,
                    notification_id: row.notification_id.clone(),
                    recipient_id: row.recipient_id.clone(),
                    until: not_before.timestamp_millis(),
                    reason: reason.into(),
                });
            }
        }
    }
    Ok(())
}

/// Puts a message into its digest and writes the digest again with every message in it.
async fn collect(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    mut item: NotificationRow,
    digest_id: String,
) -> Result<(), HandleError> {
    item.status = "digested".into();
    item.digest_id = Some(digest_id.clone());
    store::save(tx, &item).await?;
    let at = item.updated_at.unwrap_or(item.created_at);
    let items = rewrite_digest(tx, &item.organization_id, &digest_id, at).await?;
    out.emit(|metadata| NotificationDigested {
        metadata,
        notification_id: item.notification_id.clone(),
        recipient_id: item.recipient_id.clone(),
        digest_id,
        items,
    });
    Ok(())
}

/// Renders the digest from the messages it holds; returns how many. An empty digest is cancelled.
async fn rewrite_digest(
    tx: &mut PgConnection,
    org: &str,
    digest_id: &str,
    at: DateTime<Utc>,
) -> Result<i32, HandleError> {
    let items: Vec<digests::Item> =
        studyspot_notifications_projection::campaigns::digest_items(tx, org, digest_id)
            .await?
            .into_iter()
            .map(|(subject, body)| digests::Item { subject, body })
            .collect();
    let Some(mut digest) = store::load(tx, org, digest_id).await? else { return Ok(0) };
    if items.is_empty() {
        store::finish_delivery(tx, org, digest_id, "cancelled").await?;
        digest.status = "cancelled".into();
    } else if items.len() > 1 {
        let rendered = digests::render(&items);
        digest.subject = rendered.subject;
        digest.body = rendered.body;
        digest.html = None;
    }
    digest.updated_at = Some(at);
    store::save(tx, &digest).await?;
    Ok(i32::try_from(items.len()).unwrap_or(i32::MAX))
}

async fn mark_read(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: MarkNotificationsRead = out.message.record()?;
    if c.recipient_id.trim().is_empty() || c.notification_ids.is_empty() || c.notification_ids.len() > 500 {
        return Err(malformed::<MarkNotificationsRead>(Malformed(
            "recipient_id and 1 to 500 notification_ids are required".into(),
        )));
    }
    let at = out.message.occurred_at()?;
    let org = c.metadata.organization_id.clone();
    let read = studyspot_notifications_projection::campaigns::mark_read(
        tx,
        &org,
        &c.recipient_id,
        &c.notification_ids,
        at,
    )
    .await?;
    if !read.is_empty() {
        out.emit(|metadata| NotificationsRead {
            metadata,
            recipient_id: c.recipient_id,
            notification_ids: read,
        });
    }
    Ok(())
}

async fn release(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: ReleaseNotification = out.message.record()?;
    let named = notifications::named(&c.notification_id, &c.recipient_id)
        .map_err(malformed::<ReleaseNotification>)?;
    let at = out.message.occurred_at()?;
    // Within the command's organization: another's notification of that id is not found.
    let org = c.metadata.organization_id.clone();
    let row = store::load(tx, &org, &c.notification_id).await?;
    // A digested message goes out with its digest: sending now sends the digest now.
    let target = match row.as_ref().map(|r| (&r.digest_id, r.status.as_str())) {
        Some((Some(digest_id), "digested")) => store::load(tx, &org, digest_id).await?,
        Some(_) => row.clone(),
        None => None,
    };
    let is_digest = match &target {
        Some(t) => studyspot_notifications_projection::campaigns::digest(tx, &org, &t.notification_id)
            .await?
            .is_some(),
        None => false,
    };
    let given = ReleaseState {
        notification: row.as_ref().map(state::notification).transpose()?,
        target: target.as_ref().map(|t| state::waiting(t, is_digest)),
    };
    let (Some(mut target), Release::Due { brought_forward, seal }) = (
        target,
        match notifications::decide_release(&given, &named, at) {
            Ok(due) => due,
            Err(refusal) => {
                out.refuse::<ReleaseNotification>(&c.recipient_id, refusal);
                return Ok(());
            }
        },
    ) else {
        // Decided above: nothing waiting is refused.
        return Ok(());
    };
    if seal {
        studyspot_notifications_projection::campaigns::seal(tx, &org, &target.notification_id, at).await?;
    }
    studyspot_notifications_projection::campaigns::due_by(tx, &org, &target.notification_id, at).await?;
    if brought_forward {
        target.not_before = Some(at);
        target.status = "queued".into();
        target.reason = None;
        target.updated_at = Some(at);
        store::save(tx, &target).await?;
    }
    Ok(())
}

/// A digest as the log left it, for the rules of [`waiting`].
fn as_log_tells(g: &studyspot_notifications_projection::campaigns::DigestCandidate) -> waiting::Digest {
    waiting::Digest { closes_at: g.closes_at, sealed: g.sealed_at.is_some(), delivery: g.delivery.clone() }
}

/// The local days a send asked at `at` (or `send_at`) could fall on, quiet hours included.
fn candidate_days(
    prefs: Option<&routing::Preferences>,
    at: DateTime<Utc>,
    send_at: Option<DateTime<Utc>>,
) -> Vec<chrono::NaiveDate> {
    let tz = prefs.map_or(chrono_tz::Tz::UTC, |p| p.time_zone);
    let start = send_at.filter(|s| *s > at).unwrap_or(at);
    let end = prefs.and_then(|p| routing::quiet_until(p, start)).unwrap_or(start);
    let mut days = vec![start.with_timezone(&tz).date_naive()];
    let last = end.with_timezone(&tz).date_naive();
    if last != days[0] {
        days.push(last);
    }
    days
}

async fn set_preferences(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: SetPreferences = out.message.record()?;
    let parsed = decide::preferences(&c).map_err(malformed::<SetPreferences>)?;
    let at = out.message.occurred_at()?;
    let (quiet_start, quiet_end) = parsed.quiet.map_or((None, None), |(s, e)| (Some(s), Some(e)));
    store::save_preferences(
        tx,
        &PreferencesRow {
            organization_id: c.metadata.organization_id.clone(),
            recipient_id: c.recipient_id.clone(),
            email: c.email.clone(),
            phone: c.phone.clone(),
            whatsapp: c.whatsapp.clone(),
            push_token: c.push_token.clone(),
            webhook_url: c.webhook_url.clone(),
            webhook_secret: c.webhook_secret.clone(),
            time_zone: c.time_zone.clone(),
            quiet_start,
            quiet_end,
            opted_out_channels: c.opted_out_channels.clone(),
            opted_out_categories: c.opted_out_categories.clone(),
            category_caps: Json(c.category_caps.clone()),
            daily_cap: c.daily_cap,
            updated_at: at,
        },
    )
    .await?;
    // Addresses set again are the recipient's word that they work.
    store::clear_marks(tx, &c.metadata.organization_id, &c.recipient_id).await?;
    studyspot_notifications_projection::endpoints::forget(tx, &c.metadata.organization_id, &c.recipient_id)
        .await?;
    out.emit(|metadata| PreferencesUpdated {
        metadata,
        recipient_id: c.recipient_id,
        time_zone: c.time_zone,
        opted_out_channels: c.opted_out_channels,
        opted_out_categories: c.opted_out_categories,
    });
    Ok(())
}

async fn delivery_outcome(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let o: RecordDeliveryOutcome = out.message.record()?;
    if !matches!(o.outcome.as_str(), "sent" | "failed" | "gave_up") {
        return Err(malformed::<RecordDeliveryOutcome>(Malformed(format!(
            "outcome {:?} is not sent, failed or gave_up",
            o.outcome
        ))));
    }
    let named = notifications::named(&o.notification_id, &o.recipient_id)
        .map_err(malformed::<RecordDeliveryOutcome>)?;
    let at = out.message.occurred_at()?;
    // Within the command's organization: another's notification of that id is not found.
    let org = o.metadata.organization_id.clone();
    let loaded = store::load(tx, &org, &o.notification_id).await?;
    let given = loaded.as_ref().map(state::notification).transpose()?;
    if let Err(refusal) = notifications::decide_found(given.as_ref(), &named) {
        out.refuse::<RecordDeliveryOutcome>(&o.recipient_id, refusal);
        return Ok(());
    }
    // Decided above: found, and the recipient's.
    let Some(mut row) = loaded else { return Ok(()) };
    let delivery = store::delivery_status(tx, &org, &o.notification_id).await?;
    if !reports::report_applies(&row.status, delivery.as_deref()) {
        return Ok(());
    }
    store::settle_delivery(tx, &org, &o.notification_id).await?;
    row.attempts = o.attempts;
    row.updated_at = Some(at);
    if o.outcome == "sent" {
        row.status = "sent".into();
        row.sent_at = Some(at);
        row.provider_message_id = o.provider_message_id.clone();
        store::save(tx, &row).await?;
        out.emit(|metadata| NotificationSent {
            metadata,
            notification_id: row.notification_id.clone(),
            recipient_id: row.recipient_id.clone(),
            channel: row.channel.clone(),
            attempts: row.attempts,
            provider_message_id: row.provider_message_id.clone(),
            subject: row.subject.clone().filter(|_| row.channel == "in_app"),
            body: (row.channel == "in_app").then(|| row.body.clone()),
            category: (row.channel == "in_app").then(|| row.category.clone()),
        });
    } else {
        row.status = "failed".into();
        row.failure_code = Some(o.code.clone().unwrap_or_else(|| o.outcome.clone()));
        row.failure_message = o.message.clone();
        store::save(tx, &row).await?;
        // A permanent refusal of the recipient's address (not our missing channel) marks it.
        let mut newly_disabled = None;
        if o.outcome == "failed" && o.code.as_deref().is_some_and(|c| c != "channel_not_configured") {
            let address = row.address.clone().unwrap_or_default();
            if o.code.as_deref() == Some(endpoints::DISABLED)
                && store::address_mark(tx, &row.organization_id, &row.channel, &address).await?.is_none()
            {
                newly_disabled = Some(address);
            }
            store::mark_address(tx, &row, row.failure_code.as_deref().unwrap_or_default(), at).await?;
        }
        out.emit(|metadata| NotificationFailed {
            metadata,
            notification_id: row.notification_id.clone(),
            recipient_id: row.recipient_id.clone(),
            channel: row.channel.clone(),
            attempts: row.attempts,
            code: row.failure_code.clone().unwrap_or_default(),
            message: row.failure_message.clone().unwrap_or_default(),
        });
        if let Some(url) = newly_disabled {
            endpoint_disabled(tx, out, &row, url, at).await?;
        }
    }
    Ok(())
}

/// A webhook endpoint was disabled: an event for downstream teams, and a message to its owner
/// on their other channels (email when known, else in-app).
async fn endpoint_disabled(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    row: &NotificationRow,
    url: String,
    at: DateTime<Utc>,
) -> Result<(), HandleError> {
    let message = row.failure_message.clone().unwrap_or_default();
    out.emit(|metadata| WebhookEndpointDisabled {
        metadata,
        recipient_id: row.recipient_id.clone(),
        url: url.clone(),
        disabled_at: at.timestamp_millis(),
        last_error: message.clone(),
    });
    let name = format!("{}/endpoint_disabled", row.notification_id);
    let notice = SendNotification {
        metadata: out.message.follow_on(u32::MAX, ACTOR),
        notification_id: format!("ntf_{}", uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).simple()),
        recipient_id: row.recipient_id.clone(),
        channel: String::new(),
        category: "operational".into(),
        subject: Some("Your webhook endpoint was disabled".into()),
        body: "We stopped sending to {{ url }}: it kept failing ({{ error }}). Set your notification preferences again to turn it back on.".into(),
        template_id: Some("webhook_endpoint_disabled".into()),
        variables: [("url".to_owned(), url), ("error".to_owned(), message)].into(),
        locale: None,
        critical: false,
        transaction_id: None,
        send_at: None,
        campaign_id: None,
        digest_key: None,
        digest_window_secs: None,
        digest_at_local: None,
    };
    send(tx, out, notice).await
}

async fn cancel(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: CancelNotifications = out.message.record()?;
    if c.recipient_id.trim().is_empty() || c.transaction_id.trim().is_empty() {
        return Err(malformed::<CancelNotifications>(Malformed(
            "recipient_id and transaction_id are required".into(),
        )));
    }
    let at = out.message.occurred_at()?;
    let org = c.metadata.organization_id.clone();
    let digested = studyspot_notifications_projection::campaigns::digested_in_transaction(
        tx,
        &org,
        &c.recipient_id,
        &c.transaction_id,
    )
    .await?;
    for item in digested {
        // A sealed digest is on its way as it stands: its messages are no longer the cancel's.
        if !as_log_tells(&item.digest).gives_back() {
            continue;
        }
        let digest_id = item.digest.digest_id;
        let Some(mut row) = store::load(tx, &org, &item.notification_id).await? else { continue };
        row.status = "cancelled".into();
        row.updated_at = Some(at);
        store::save(tx, &row).await?;
        rewrite_digest(tx, &org, &digest_id, at).await?;
        out.emit(|metadata| NotificationSuppressed {
            metadata,
            notification_id: row.notification_id.clone(),
            recipient_id: row.recipient_id.clone(),
            channel: row.channel.clone(),
            reason: "cancelled".into(),
        });
    }
    // Waiting as the log tells it: a message the worker has already sent is cancelled too, and
    // its report, applied after this, says it went out (as a rebuild meets them, in log order).
    for id in
        store::waiting_in_transaction(tx, &org, &c.recipient_id, &c.transaction_id, &waiting::WAITING).await?
    {
        store::finish_delivery(tx, &org, &id, "cancelled").await?;
        let Some(mut row) = store::load(tx, &org, &id).await? else { continue };
        row.status = "cancelled".into();
        row.updated_at = Some(at);
        store::save(tx, &row).await?;
        out.emit(|metadata| NotificationSuppressed {
            metadata,
            notification_id: row.notification_id.clone(),
            recipient_id: row.recipient_id.clone(),
            channel: row.channel.clone(),
            reason: "cancelled".into(),
        });
    }
    Ok(())
}

async fn create_template(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: CreateTemplate = out.message.record()?;
    let parsed = notifications::parse_template(&c).map_err(malformed::<CreateTemplate>)?;
    let at = out.message.occurred_at()?;
    let template = match notifications::decide_template(&parsed) {
        Ok(template) => template,
        Err(refusal) => {
            out.refuse_catalog::<CreateTemplate>(refusal);
            return Ok(());
        }
    };
    let version =
        store::insert_template(tx, &c.metadata.organization_id, &state::template_row(template), at).await?;
    out.emit(|metadata| TemplatePublished {
        metadata,
        template_id: c.template_id,
        channel: c.channel,
        locale: c.locale,
        version,
    });
    Ok(())
}
