use sqlx::PgConnection;
use studyspot_consumer_runtime::{Effects, HandleError, Handler, Inbound};
use studyspot_notifications_projection::{self as projection, Notification};
use studyspot_schemas::{
    Record,
    notifications::{CommandRejected, NotificationQueued, SendNotification},
};

use crate::decide::{SendDecision, decide_send, validate_send};

const ACTOR: &str = "service:notifications";

#[derive(Debug, Default, Clone)]
pub struct NotificationsHandler;

impl Handler for NotificationsHandler {
    async fn handle(
        &self,
        tx: &mut PgConnection,
        message: &Inbound,
        effects: &mut Effects,
    ) -> Result<(), HandleError> {
        if message.is::<SendNotification>() {
            send(tx, message, effects).await
        } else {
            Err(HandleError::UnknownRecord(message.record_type.clone()))
        }
    }
}

async fn send(tx: &mut PgConnection, message: &Inbound, effects: &mut Effects) -> Result<(), HandleError> {
    let c: SendNotification = message.record()?;
    validate_send(&c).map_err(|m| HandleError::malformed(SendNotification::FULL_NAME, m.0))?;
    let at = message.occurred_at()?;
    match decide_send(projection::notification_exists(tx, &c.notification_id).await?, &c) {
        SendDecision::Queue => {
            projection::insert_notification(
                tx,
                &Notification {
                    notification_id: c.notification_id.clone(),
                    organization_id: c.metadata.organization_id.clone(),
                    recipient_id: c.recipient_id.clone(),
                    channel: c.channel.clone(),
                    category: c.category.clone(),
                    subject: c.subject.clone(),
                    body: c.body.clone(),
                    status: "queued".into(),
                    created_at: at,
                },
            )
            .await?;
            effects.emit(NotificationQueued {
                metadata: message.follow_on(0, ACTOR),
                notification_id: c.notification_id,
                recipient_id: c.recipient_id,
                channel: c.channel,
                category: c.category,
            });
        }
        SendDecision::Rejected { code, reason } => effects.reject(CommandRejected {
            metadata: message.follow_on(0, ACTOR),
            command_id: c.metadata.event_id.clone(),
            command_type: SendNotification::FULL_NAME.to_owned(),
            recipient_id: c.recipient_id,
            code: code.to_owned(),
            reason,
        }),
    }
    Ok(())
}
