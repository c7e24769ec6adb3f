//! Campaigns: define, launch (one `SendNotification` per member of the segment, each due at its
//! local time and throttled), cancel (what has not gone out stops), and automated campaigns that
//! answer other domains' events. The audience segments are drawn from is kept here too, from
//! billing's and attendance's events.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, types::Json};
use studyspot_consumer_runtime::{HandleError, Inbound, Out, malformed};
use studyspot_notifications_projection::{
    campaigns::{self as store, CampaignRow},
    store as notifications,
};
use studyspot_schemas::{
    Record,
    attendance::CheckedIn,
    billing::{SubscriptionCreated, SubscriptionPlanChanged, SubscriptionStatusChanged},
    notifications::{
        CampaignCancelled, CampaignCreated, CampaignLaunched, CancelCampaign, CreateCampaign, LaunchCampaign,
        NotificationSuppressed, SendNotification,
    },
};

use crate::{
    decide::{
        Malformed,
        campaigns::{self, LaunchEvent},
        waiting,
    },
    shell::NotificationsOut,
    state, triggers,
};

pub(crate) async fn create(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: CreateCampaign = out.message.record()?;
    let parsed = campaigns::parse_create(&c).map_err(malformed::<CreateCampaign>)?;
    if let Some(trigger) = &c.trigger
        && !triggers::TRIGGERS.contains(&trigger.as_str())
    {
        return Err(malformed::<CreateCampaign>(Malformed(format!(
            "trigger {trigger:?} is not one of {}",
            triggers::TRIGGERS.join(", ")
        ))));
    }
    let at = out.message.occurred_at()?;
    let org = c.metadata.organization_id.clone();
    let exists = store::campaign(tx, &org, &c.campaign_id).await?.is_some();
    let trigger_variables = c.trigger.as_deref().map(triggers::variables_of).unwrap_or_default();
    let created = match campaigns::decide_create(exists, &parsed, trigger_variables, &c.metadata) {
        Ok(created) => created,
        Err(refusal) => {
            out.refuse_catalog::<CreateCampaign>(refusal);
            return Ok(());
        }
    };
    let send_at_local = c
        .send_at_local
        .as_deref()
        .map(campaigns::parse_local)
        .transpose()
        .map_err(malformed::<CreateCampaign>)?;
    let send_at = c.send_at.map(instant::<CreateCampaign>).transpose()?;
    let s = &c.segment;
    let row = CampaignRow {
        organization_id: org.clone(),
        campaign_id: c.campaign_id.clone(),
        name: c.name.clone(),
        kind: c.kind.clone(),
        category: c.category.clone(),
        channel: c.channel.clone(),
        template_id: c.template_id.clone(),
        subject: c.subject.clone(),
        body: c.body.clone(),
        variables: Json(c.variables.clone()),
        locale: c.locale.clone(),
        segment: Json(store::Segment {
            plan_ids: s.plan_ids.clone(),
            subscription_statuses: s.subscription_statuses.clone(),
            venue_ids: s.venue_ids.clone(),
            attended_within_days: s.attended_within_days,
            recipient_ids: s.recipient_ids.clone(),
        }),
        send_at_local,
        send_at,
        throttle_per_minute: c.throttle_per_minute,
        trigger: c.trigger.clone(),
        status: "draft".into(),
        recipients: 0,
        created_at: at,
    };
    if !store::insert_campaign(tx, &row).await? {
        // Loaded free above; taken since (another partition's create of the same id).
        out.refuse_catalog::<CreateCampaign>(campaigns::exists_refusal(&parsed.campaign_id));
        return Ok(());
    }
    out.emit(|metadata| CampaignCreated { metadata, ..created });
    Ok(())
}

fn instant<C: Record>(ms: i64) -> Result<DateTime<Utc>, HandleError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| malformed::<C>(Malformed(format!("{ms} is not a time"))))
}

pub(crate) async fn launch(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: LaunchCampaign = out.message.record()?;
    let campaign_id = campaigns::parse_named(&c.campaign_id).map_err(malformed::<LaunchCampaign>)?;
    let at = out.message.occurred_at()?;
    let org = c.metadata.organization_id.clone();
    let row = store::campaign(tx, &org, &c.campaign_id).await?;
    let campaign = row.as_ref().map(state::campaign).transpose()?;
    // The segment's members now, for a launch that goes to them.
    let members = match (&row, &campaign) {
        (Some(row), Some(campaign)) if campaign.launches_to_segment() => {
            store::segment_members(tx, &org, &row.segment, at)
                .await?
                .into_iter()
                .map(state::member)
                .collect::<Result<Vec<_>, _>>()?
        }
        _ => Vec::new(),
    };
    let events =
        match campaigns::decide_launch(campaign.as_ref(), &members, &campaign_id, &org, &c.metadata, at) {
            Ok(events) => events,
            Err(refusal) => {
                out.refuse_catalog::<LaunchCampaign>(refusal);
                return Ok(());
            }
        };
    for event in events {
        match event {
            LaunchEvent::Send(send) => out.emit(|metadata| SendNotification { metadata, ..*send }),
            LaunchEvent::Launched(launched) => {
                store::set_status(tx, &org, &c.campaign_id, "launched", launched.recipients, at).await?;
                out.emit(|metadata| CampaignLaunched { metadata, ..launched });
            }
        }
    }
    Ok(())
}

pub(crate) async fn cancel(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: CancelCampaign = out.message.record()?;
    let campaign_id = campaigns::parse_named(&c.campaign_id).map_err(malformed::<CancelCampaign>)?;
    let at = out.message.occurred_at()?;
    let org = c.metadata.organization_id.clone();
    let campaign =
        store::campaign(tx, &org, &c.campaign_id).await?.as_ref().map(state::campaign).transpose()?;
    let cancelled = match campaigns::decide_cancel(campaign.as_ref(), &campaign_id, &c.metadata) {
        Ok(cancelled) => cancelled,
        Err(refusal) => {
            out.refuse_catalog::<CancelCampaign>(refusal);
            return Ok(());
        }
    };
    store::set_status(tx, &org, &c.campaign_id, "cancelled", 0, at).await?;
    // What is already waiting stops here (as the log tells it: one the worker has already sent is
    // cancelled too, and its report, applied after, says it went out); what is still on its way is
    // suppressed when it arrives.
    for id in store::waiting_in_campaign(tx, &org, &c.campaign_id, &waiting::WAITING).await? {
        notifications::finish_delivery(tx, &org, &id, "cancelled").await?;
        let Some(mut row) = notifications::load(tx, &org, &id).await? else { continue };
        row.status = "cancelled".into();
        row.reason = Some("campaign_cancelled".into());
        row.updated_at = Some(at);
        notifications::save(tx, &row).await?;
        out.emit(|metadata| NotificationSuppressed {
            metadata,
            notification_id: row.notification_id.clone(),
            recipient_id: row.recipient_id.clone(),
            channel: row.channel.clone(),
            reason: "campaign_cancelled".into(),
        });
    }
    out.emit(|metadata| CampaignCancelled { metadata, ..cancelled });
    Ok(())
}

/// What billing's and attendance's events say about who a member is, for segments.
pub(crate) async fn note_audience(tx: &mut PgConnection, message: &Inbound) -> Result<(), HandleError> {
    let org = &message.metadata.organization_id;
    let at = message.occurred_at()?;
    match message.record_type.as_str() {
        SubscriptionCreated::FULL_NAME => {
            let e: SubscriptionCreated = message.record()?;
            store::note_subscriber(tx, org, &e.member_id, Some(&e.plan_id), Some(&e.status), at).await?;
        }
        SubscriptionPlanChanged::FULL_NAME => {
            let e: SubscriptionPlanChanged = message.record()?;
            store::note_subscriber(tx, org, &e.member_id, Some(&e.plan_id), None, at).await?;
        }
        SubscriptionStatusChanged::FULL_NAME => {
            let e: SubscriptionStatusChanged = message.record()?;
            store::note_subscriber(tx, org, &e.member_id, None, Some(&e.status), at).await?;
        }
        CheckedIn::FULL_NAME => {
            let e: CheckedIn = message.record()?;
            store::note_visit(tx, org, &e.member_id, &e.venue_id, at).await?;
        }
        _ => {}
    }
    Ok(())
}

/// The notification an event asks for: the organization's launched automated campaign for the
/// event's type when there is one, else the default trigger's.
pub(crate) async fn triggered(
    tx: &mut PgConnection,
    message: &Inbound,
) -> Result<Option<SendNotification>, HandleError> {
    let Some(mut send) = triggers::notification_for(message)? else { return Ok(None) };
    let org = &message.metadata.organization_id;
    if let Some(campaign) = store::automated_for(tx, org, &message.record_type).await? {
        let name = format!("{}/{}", message.metadata.event_id, campaign.campaign_id);
        send.notification_id = campaigns::id_for("ntf", &name);
        send.channel = campaign.channel;
        send.category = campaign.category;
        send.template_id = campaign.template_id;
        send.subject = campaign.subject;
        send.body = campaign.body;
        send.locale = campaign.locale;
        for (k, v) in campaign.variables.0 {
            send.variables.entry(k).or_insert(v);
        }
        send.campaign_id = Some(campaign.campaign_id);
    }
    Ok(Some(send))
}
