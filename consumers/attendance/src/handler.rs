use sqlx::PgConnection;
use studyspot_attendance_projection::{self as projection, Session};
use studyspot_consumer_runtime::{Effects, HandleError, Handler, Inbound};
use studyspot_schemas::{
    Record,
    attendance::{CheckIn, CheckedIn, CommandRejected},
};

use crate::decide::{CheckInDecision, CheckInState, decide_check_in, validate_check_in};

const ACTOR: &str = "service:attendance";

/// The shell around attendance's decisions: load state, decide, write, emit.
#[derive(Debug, Default, Clone)]
pub struct AttendanceHandler;

impl Handler for AttendanceHandler {
    async fn handle(
        &self,
        tx: &mut PgConnection,
        message: &Inbound,
        effects: &mut Effects,
    ) -> Result<(), HandleError> {
        if message.is::<CheckIn>() {
            check_in(tx, message, effects).await
        } else {
            Err(HandleError::UnknownRecord(message.record_type.clone()))
        }
    }
}

async fn check_in(
    tx: &mut PgConnection,
    message: &Inbound,
    effects: &mut Effects,
) -> Result<(), HandleError> {
    let command: CheckIn = message.record()?;
    validate_check_in(&command).map_err(|m| HandleError::malformed(CheckIn::FULL_NAME, m.0))?;
    let org = &command.metadata.organization_id;
    let state = CheckInState {
        open_session: projection::open_session_of_member(tx, org, &command.member_id).await?,
        session_exists: projection::session(tx, &command.session_id).await?.is_some(),
        occupancy: projection::occupancy(tx, org, &command.venue_id).await?,
    };
    let at = message.occurred_at()?;
    match decide_check_in(&state, &command) {
        CheckInDecision::CheckedIn { occupancy } => {
            projection::insert_session(
                tx,
                &Session {
                    session_id: command.session_id.clone(),
                    organization_id: org.clone(),
                    member_id: command.member_id.clone(),
                    venue_id: command.venue_id.clone(),
                    seat_id: command.seat_id.clone(),
                    checked_in_at: at,
                    checked_out_at: None,
                },
            )
            .await?;
            projection::set_occupancy(tx, org, &command.venue_id, occupancy, at).await?;
            effects.emit(CheckedIn {
                metadata: message.follow_on(0, ACTOR),
                session_id: command.session_id,
                member_id: command.member_id,
                venue_id: command.venue_id,
                seat_id: command.seat_id,
                occupancy,
            });
        }
        CheckInDecision::Rejected { code, reason } => effects.reject(CommandRejected {
            metadata: message.follow_on(0, ACTOR),
            command_id: command.metadata.event_id.clone(),
            command_type: CheckIn::FULL_NAME.to_owned(),
            venue_id: command.venue_id,
            code: code.to_owned(),
            reason,
        }),
    }
    Ok(())
}
