//! Rows of notifications' projection as the core's state: the one place that knows both. Ids were
//! parsed when their command was decoded; a stored one that no longer parses dead-letters the
//! command that loaded it.

use studyspot_consumer_runtime::HandleError;
use studyspot_ids::ParseError;
use studyspot_notifications_projection::{
    campaigns::CampaignRow,
    store::{NotificationRow, Template as TemplateRow},
};

use crate::decide::{
    campaigns::{Campaign, Member},
    notifications::{Notification, Template, Waiting},
    routing,
};

/// A stored id as its type.
fn stored<T: std::str::FromStr<Err = ParseError>>(
    table: &str,
    field: &str,
    value: &str,
) -> Result<T, HandleError> {
    value.parse().map_err(|e: ParseError| {
        HandleError::malformed(&format!("stored {table}"), format!("{} ({value:?})", e.for_field(field)))
    })
}

pub(crate) fn notification(row: &NotificationRow) -> Result<Notification, HandleError> {
    Ok(Notification {
        notification_id: stored("notification", "notification_id", &row.notification_id)?,
        recipient_id: stored("notification", "recipient_id", &row.recipient_id)?,
        status: row.status.clone(),
    })
}

/// What goes out for a notification (`is_digest`: it is a digest).
pub(crate) fn waiting(row: &NotificationRow, is_digest: bool) -> Waiting {
    Waiting { status: row.status.clone(), not_before: row.not_before, is_digest }
}

pub(crate) fn template(row: TemplateRow) -> Result<Template, HandleError> {
    Ok(Template {
        template_id: stored("template", "template_id", &row.template_id)?,
        channel: row.channel,
        locale: row.locale,
        version: row.version,
        subject: row.subject,
        body: row.body,
        html: row.html,
    })
}

pub(crate) fn template_row(t: &Template) -> TemplateRow {
    TemplateRow {
        template_id: t.template_id.to_string(),
        channel: t.channel.clone(),
        locale: t.locale.clone(),
        version: t.version,
        subject: t.subject.clone(),
        body: t.body.clone(),
        html: t.html.clone(),
    }
}

pub(crate) fn campaign(row: &CampaignRow) -> Result<Campaign, HandleError> {
    Ok(Campaign {
        campaign_id: stored("campaign", "campaign_id", &row.campaign_id)?,
        kind: row.kind.clone(),
        category: row.category.clone(),
        channel: row.channel.clone(),
        template_id: row.template_id.as_deref().map(|t| stored("campaign", "template_id", t)).transpose()?,
        subject: row.subject.clone(),
        body: row.body.clone(),
        variables: row.variables.0.clone(),
        locale: row.locale.clone(),
        send_at_local: row.send_at_local,
        send_at: row.send_at,
        throttle_per_minute: row.throttle_per_minute,
        status: row.status.clone(),
    })
}

/// A segment's member with their time zone, UTC when unknown or not a zone.
pub(crate) fn member((recipient_id, zone): (String, Option<String>)) -> Result<Member, HandleError> {
    Ok(Member {
        recipient_id: stored("audience", "recipient_id", &recipient_id)?,
        zone: zone.as_deref().and_then(|z| routing::time_zone(z).ok()).unwrap_or(chrono_tz::Tz::UTC),
    })
}
