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
        self, Malformed, campaigns,
        templates::{self, Parts},
        waiting,
    },
    shell::NotificationsOut,
    triggers,
};

fn id_for(prefix: &str, name: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).simple())
}

pub(crate) async fn create(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: CreateCampaign = out.message.record()?;
    campaigns::validate(&c).map_err(malformed::<CreateCampaign>)?;
    if let Some(trigger) = &c.trigger
        && !triggers::TRIGGERS.contains(&trigger.as_str())
    {
        return Err(malformed::<CreateCampaign>(Malformed(format!(
            "trigger {trigger:?} is not one of {}",
            triggers::TRIGGERS.join(", ")
        ))));
    }
    // Its own text must render with its variables and each recipient's id, as it will.
    if c.template_id.is_none() {
        let mut sample = c.variables.clone();
        sample.entry("recipient_id".into()).or_insert_with(|| "mem_sample".into());
        for name in c.trigger.as_deref().map(triggers::variables_of).unwrap_or_default() {
            sample.entry((*name).to_owned()).or_insert_with(|| (*name).to_owned());
        }
        let parts = Parts { subject: c.subject.as_deref(), body: &c.body, html: None };
        if let Err(e) = templates::render(&parts, &sample) {
            out.refuse_catalog::<CreateCampaign>(
                templates::refusal_code(&e, "template_invalid"),
                e.to_string(),
            );
            return Ok(());
        }
    }
    let at = out.message.occurred_at()?;
    let org = c.metadata.organization_id.clone();
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
        send_at_local: c
            .send_at_local
            .as_deref()
            .map(campaigns::parse_local)
            .transpose()
            .map_err(malformed::<CreateCampaign>)?,
        send_at: c.send_at.map(instant::<CreateCampaign>).transpose()?,
        throttle_per_minute: c.throttle_per_minute,
        trigger: c.trigger.clone(),
        status: "draft".into(),
        recipients: 0,
        created_at: at,
    };
    if !store::insert_campaign(tx, &row).await? {
        out.refuse_catalog::<CreateCampaign>(
            "campaign_exists",
            format!("campaign {} already exists", c.campaign_id),
        );
        return Ok(());
    }
    out.emit(|metadata| CampaignCreated {
        metadata,
        campaign_id: c.campaign_id,
        kind: c.kind,
        category: c.category,
    });
    Ok(())
}

fn instant<C: Record>(ms: i64) -> Result<DateTime<Utc>, HandleError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| malformed::<C>(Malformed(format!("{ms} is not a time"))))
}

pub(crate) async fn launch(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: LaunchCampaign = out.message.record()?;
    let at = out.message.occurred_at()?;
    let org = c.metadata.organization_id.clone();
    let Some(campaign) = store::campaign(tx, &org, &c.campaign_id).await? else {
        out.refuse_catalog::<LaunchCampaign>(
            "campaign_not_found",
            format!("campaign {} does not exist", c.campaign_id),
        );
        return Ok(());
    };
    if campaign.status != "draft" {
        let reason = format!("campaign {} is {}, not a draft", c.campaign_id, campaign.status);
        out.refuse_catalog::<LaunchCampaign>("campaign_not_draft", reason);
        return Ok(());
    }
    if campaign.kind == "automated" {
        store::set_status(tx, &org, &c.campaign_id, "launched", 0, at).await?;
        out.emit(|metadata| CampaignLaunched {
            metadata,
            campaign_id: c.campaign_id,
            recipients: 0,
            first_send_at: None,
            last_send_at: None,
        });
        return Ok(());
    }
    let members = store::segment_members(tx, &org, &campaign.segment, at).await?;
    if members.is_empty() {
        // Launched to nobody it would read "launched" and send nothing; a draft can go out later,
        // when members match.
        let reason = format!(
            "campaign {} has no recipients: no member matches its segment now; it stays a draft",
            c.campaign_id
        );
        out.refuse_catalog::<LaunchCampaign>("campaign_has_no_recipients", reason);
        return Ok(());
    }
    let due: Vec<DateTime<Utc>> = members
        .iter()
        .map(|(_, zone)| {
            let zone = zone
                .as_deref()
                .and_then(|z| decide::routing::time_zone(z).ok())
                .unwrap_or(chrono_tz::Tz::UTC);
            campaigns::due_for(campaign.send_at_local, campaign.send_at, zone, at)
        })
        .collect();
    let due = campaigns::throttle(&due, campaign.throttle_per_minute);
    for ((member, _), send_at) in members.iter().zip(&due) {
        let mut variables = campaign.variables.0.clone();
        variables.entry("recipient_id".into()).or_insert_with(|| member.clone());
        out.emit(|metadata| SendNotification {
            metadata,
            notification_id: id_for("ntf", &format!("{}/{}/{member}", org, campaign.campaign_id)),
            recipient_id: member.clone(),
            channel: campaign.channel.clone(),
            category: campaign.category.clone(),
            subject: campaign.subject.clone(),
            body: campaign.body.clone(),
            template_id: campaign.template_id.clone(),
            variables: variables.into_iter().collect(),
            locale: campaign.locale.clone(),
            critical: false,
            transaction_id: None,
            send_at: (*send_at > at).then(|| send_at.timestamp_millis()),
            campaign_id: Some(campaign.campaign_id.clone()),
            digest_key: None,
            digest_window_secs: None,
            digest_at_local: None,
        });
    }
    let recipients = i32::try_from(members.len()).unwrap_or(i32::MAX);
    store::set_status(tx, &org, &c.campaign_id, "launched", recipients, at).await?;
    out.emit(|metadata| CampaignLaunched {
        metadata,
        campaign_id: c.campaign_id,
        recipients,
        first_send_at: due.iter().min().map(DateTime::timestamp_millis),
        last_send_at: due.iter().max().map(DateTime::timestamp_millis),
    });
    Ok(())
}

pub(crate) async fn cancel(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: CancelCampaign = out.message.record()?;
    let at = out.message.occurred_at()?;
    let org = c.metadata.organization_id.clone();
    let Some(campaign) = store::campaign(tx, &org, &c.campaign_id).await? else {
        out.refuse_catalog::<CancelCampaign>(
            "campaign_not_found",
            format!("campaign {} does not exist", c.campaign_id),
        );
        return Ok(());
    };
    if campaign.status == "cancelled" {
        out.refuse_catalog::<CancelCampaign>(
            "campaign_cancelled",
            format!("campaign {} is already cancelled", c.campaign_id),
        );
        return Ok(());
    }
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
    out.emit(|metadata| CampaignCancelled { metadata, campaign_id: c.campaign_id });
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
        send.notification_id = id_for("ntf", &name);
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
