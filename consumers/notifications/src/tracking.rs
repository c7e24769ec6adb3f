//! Delivery tracking: a `RecordDeliveryStatus` (a provider's status callback, an open through the
//! pixel, a click through the redirect — all from the gateway) applied to its notification. Each
//! command counts once (its id); opens and clicks keep their totals and their firsts (unique
//! rates); every applied status is announced as `NotificationTracked`. A bounce or an undelivered
//! message marks the address, as a permanent refusal at sending does.

use sqlx::PgConnection;
use studyspot_consumer_runtime::{HandleError, Out, malformed};
use studyspot_notifications_projection::{
    store,
    tracking::{self, Applied, StatusEvent},
};
use studyspot_schemas::notifications::{DELIVERY_STATUSES, NotificationTracked, RecordDeliveryStatus};

use crate::{
    decide::{Malformed, notifications},
    shell::NotificationsOut,
    state,
};

/// The shape the contract cannot express: a known status, a click's http(s) target, the ids.
pub fn validate(c: &RecordDeliveryStatus) -> Result<(), Malformed> {
    if let Some(field) = studyspot_schemas::first_blank(&[
        ("notification_id", &c.notification_id),
        ("recipient_id", &c.recipient_id),
        ("source", &c.source),
    ]) {
        return Err(Malformed(format!("{field} is empty")));
    }
    if !DELIVERY_STATUSES.contains(&c.status.as_str()) {
        return Err(Malformed(format!(
            "status {:?} is not one of {}",
            c.status,
            DELIVERY_STATUSES.join(", ")
        )));
    }
    if c.status == "clicked" {
        let web = c
            .url
            .as_deref()
            .map(str::to_ascii_lowercase)
            .is_some_and(|u| u.starts_with("http://") || u.starts_with("https://"));
        if !web {
            return Err(Malformed("a click names the http(s) url followed".into()));
        }
    }
    Ok(())
}

pub(crate) async fn record_status(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: RecordDeliveryStatus = out.message.record()?;
    validate(&c).map_err(malformed::<RecordDeliveryStatus>)?;
    let named = notifications::named(&c.notification_id, &c.recipient_id)
        .map_err(malformed::<RecordDeliveryStatus>)?;
    let at = out.message.occurred_at()?;
    // Within the command's organization (the signed link's, or the one the provider's message id
    // was found in): another's notification of that id is not found.
    let org = &c.metadata.organization_id;
    let loaded = store::load(tx, org, &c.notification_id).await?;
    let given = loaded.as_ref().map(state::notification).transpose()?;
    if let Err(refusal) = notifications::decide_found(given.as_ref(), &named) {
        out.refuse::<RecordDeliveryStatus>(&c.recipient_id, refusal);
        return Ok(());
    }
    // Decided above: found, and the recipient's.
    let Some(row) = loaded else { return Ok(()) };
    let applied = tracking::apply(
        tx,
        &StatusEvent {
            event_id: &out.message.metadata.event_id,
            notification_id: &c.notification_id,
            organization_id: &row.organization_id,
            status: &c.status,
            url: c.url.as_deref(),
            provider_status: c.provider_status.as_deref(),
            source: &c.source,
            at,
        },
    )
    .await?;
    let Applied::Recorded { first } = applied else { return Ok(()) };
    // The address refused the message: nothing more goes to it until the recipient sets their
    // preferences again (a failed send has marked it already).
    if matches!(c.status.as_str(), "bounced" | "undelivered")
        && row.status != "failed"
        && row.channel != "in_app"
    {
        store::mark_address(tx, &row, &c.status, at).await?;
    }
    let campaign_id = tracking::campaign_of(tx, org, &c.notification_id).await?;
    out.emit(|metadata| NotificationTracked {
        metadata,
        notification_id: c.notification_id,
        recipient_id: c.recipient_id,
        channel: row.channel.clone(),
        status: c.status,
        first,
        url: c.url,
        provider_status: c.provider_status,
        source: c.source,
        template_id: row.template_id.clone(),
        campaign_id,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use studyspot_schemas::EventMetadata;

    use super::*;

    fn status(status: &str, url: Option<&str>) -> RecordDeliveryStatus {
        RecordDeliveryStatus {
            metadata: EventMetadata::example(),
            notification_id: "ntf_1".into(),
            recipient_id: "mem_1".into(),
            status: status.into(),
            url: url.map(Into::into),
            provider_status: None,
            source: "open_pixel".into(),
        }
    }

    #[test]
    fn known_statuses_pass_and_unknown_ones_are_malformed() {
        for s in ["delivered", "undelivered", "opened", "bounced"] {
            assert!(validate(&status(s, None)).is_ok(), "{s}");
        }
        assert!(validate(&status("clicked", Some("https://example.org/x"))).is_ok());
        let Err(Malformed(why)) = validate(&status("read", None)) else { panic!("read is not a status") };
        assert!(why.contains("\"read\""), "{why}");
    }

    #[test]
    fn a_click_needs_a_web_url_and_ids_must_not_be_blank() {
        assert!(validate(&status("clicked", None)).is_err());
        assert!(validate(&status("clicked", Some("javascript:alert(1)"))).is_err());
        let mut blank = status("opened", None);
        blank.notification_id = " ".into();
        assert_eq!(validate(&blank), Err(Malformed("notification_id is empty".into())));
    }
}
