//! The shell around attendance's decisions: load state, decide, write the projection, emit.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use sqlx::PgConnection;
use studyspot_attendance_projection::{
    self as projection, Session,
    write::{self, BookingRow, OpenSessionRow, SessionExtra, VenueRow},
};
use studyspot_consumer_runtime::{Effects, HandleError, Handler, Inbound};
use studyspot_qr_tokens::Keys;
use studyspot_schemas::{
    EventMetadata, Record,
    attendance::{
        BookingCancelled, BookingCreated, BookingNoShow, CancelBooking, CancelBookings, CheckIn, CheckOut,
        CheckedIn, CommandRejected, CreateBooking, DefineVenue, GrantPass, OverstayDetected, PassGranted,
        RunAttendance, SessionCompleted, VenueDefined,
    },
    billing::{SubscriptionCreated, SubscriptionStatusChanged},
};

use crate::decide::{
    Malformed, Refusal,
    bookings::{self, BookingState, BookingView, Held},
    entitlements::{self, PassView, SubscriptionView},
    sessions::{
        self, BookingHere, CheckInDecision, CheckInState, Completed, OpenSession, decide_check_in,
        validate_check_in,
    },
    venue::Venue,
};

const ACTOR: &str = "service:attendance";

/// The shell around attendance's decisions: load state, decide, write, emit.
#[derive(Debug, Default, Clone)]
pub struct AttendanceHandler {
    /// The keys QR tokens are verified with; without them every token is refused.
    keys: Option<Arc<Keys>>,
}

impl AttendanceHandler {
    pub fn new(keys: Option<Keys>) -> Self {
        Self { keys: keys.map(Arc::new) }
    }
}

impl Handler for AttendanceHandler {
    async fn handle(
        &self,
        tx: &mut PgConnection,
        message: &Inbound,
        effects: &mut Effects,
    ) -> Result<(), HandleError> {
        let mut out = Out { message, effects, next: 0 };
        match message.record_type.as_str() {
            CheckIn::FULL_NAME => check_in(tx, &mut out, self.keys.as_deref()).await,
            CheckOut::FULL_NAME => check_out(tx, &mut out).await,
            DefineVenue::FULL_NAME => define_venue(tx, &mut out).await,
            GrantPass::FULL_NAME => grant_pass(tx, &mut out).await,
            CreateBooking::FULL_NAME => create_booking(tx, &mut out).await,
            CancelBooking::FULL_NAME => cancel_booking(tx, &mut out).await,
            CancelBookings::FULL_NAME => cancel_bookings(tx, &mut out).await,
            RunAttendance::FULL_NAME => run(tx, &mut out).await,
            SubscriptionCreated::FULL_NAME => {
                let e: SubscriptionCreated = message.record()?;
                let at = message.occurred_at()?;
                entitlement_changed(tx, &mut out, (&e.member_id, &e.subscription_id), &e.status, at).await
            }
            SubscriptionStatusChanged::FULL_NAME => {
                let e: SubscriptionStatusChanged = message.record()?;
                let at = DateTime::from_timestamp_millis(e.effective_at).unwrap_or(message.occurred_at()?);
                entitlement_changed(tx, &mut out, (&e.member_id, &e.subscription_id), &e.status, at).await
            }
            // Billing's other events say nothing about entitlement.
            _ if message.topic.ends_with(studyspot_schemas::billing::EVENTS.name) => Ok(()),
            other => Err(HandleError::UnknownRecord(other.to_owned())),
        }
    }
}

/// The follow-on records of one input, numbered in the order they are emitted.
struct Out<'a> {
    message: &'a Inbound,
    effects: &'a mut Effects,
    next: u32,
}

impl Out<'_> {
    fn metadata(&mut self) -> EventMetadata {
        self.next += 1;
        self.message.follow_on(self.next - 1, ACTOR)
    }

    fn emit<R: Record>(&mut self, record: impl FnOnce(EventMetadata) -> R) {
        let metadata = self.metadata();
        self.effects.emit(record(metadata));
    }

    fn refuse<C: Record>(&mut self, venue_id: &str, refusal: Refusal) {
        metrics::counter!("studyspot_attendance_refusals_total", "command" => C::FULL_NAME, "code" => refusal.code)
            .increment(1);
        let metadata = self.metadata();
        self.effects.reject(CommandRejected {
            metadata,
            command_id: self.message.metadata.event_id.clone(),
            command_type: C::FULL_NAME.to_owned(),
            venue_id: venue_id.to_owned(),
            code: refusal.code.to_owned(),
            reason: refusal.reason,
        });
    }
}

fn malformed<C: Record>(m: Malformed) -> HandleError {
    HandleError::malformed(C::FULL_NAME, m.0)
}

fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn time<C: Record>(field: &str, value: i64) -> Result<DateTime<Utc>, HandleError> {
    crate::decide::instant(field, value).map_err(malformed::<C>)
}

/// The venue as decisions use it; a row that no longer reads is a bug (fatal), not a refusal.
fn venue_of(row: &VenueRow) -> Result<Venue, HandleError> {
    let fatal =
        |e: &dyn std::fmt::Display| HandleError::Fatal(format!("venue {} does not read: {e}", row.venue_id));
    Ok(Venue {
        venue_id: row.venue_id.clone(),
        name: row.name.clone(),
        time_zone: row.time_zone.parse().map_err(|e: chrono_tz::ParseError| fatal(&e))?,
        capacity: row.capacity,
        zones: serde_json::from_value(row.zones.clone()).map_err(|e| fatal(&e))?,
        seats: serde_json::from_value(row.seats.clone()).map_err(|e| fatal(&e))?,
        opening_hours: serde_json::from_value(row.opening_hours.clone()).map_err(|e| fatal(&e))?,
        limits: serde_json::from_value(row.limits.clone()).map_err(|e| fatal(&e))?,
        qr_required: row.qr_required,
    })
}

async fn load_venue(tx: &mut PgConnection, org: &str, venue_id: &str) -> Result<Option<Venue>, HandleError> {
    match write::venue(tx, org, venue_id).await? {
        Some(row) => Ok(Some(venue_of(&row)?)),
        None => Ok(None),
    }
}

fn open_session(row: &OpenSessionRow) -> OpenSession {
    OpenSession {
        session_id: row.session_id.clone(),
        member_id: row.member_id.clone(),
        venue_id: row.venue_id.clone(),
        zone_id: row.zone_id.clone(),
        checked_in_at: row.checked_in_at,
        checked_out_at: row.checked_out_at,
        auto_checkout_at: row.auto_checkout_at,
        auto_checkout_reason: row.auto_checkout_reason.clone(),
    }
}

async fn define_venue(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: DefineVenue = out.message.record()?;
    Venue::from_definition(&c).map_err(malformed::<DefineVenue>)?;
    let org = c.metadata.organization_id.clone();
    let version = write::venue(tx, &org, &c.venue_id).await?.map_or(1, |v| v.version + 1);
    let json = |v: serde_json::Result<serde_json::Value>| v.map_err(|e| HandleError::Fatal(e.to_string()));
    write::save_venue(
        tx,
        &VenueRow {
            organization_id: org,
            venue_id: c.venue_id.clone(),
            name: c.name.clone(),
            time_zone: c.time_zone.clone(),
            capacity: c.capacity,
            zones: json(serde_json::to_value(&c.zones))?,
            seats: json(serde_json::to_value(&c.seats))?,
            opening_hours: json(serde_json::to_value(&c.opening_hours))?,
            limits: json(serde_json::to_value(&c.limits))?,
            qr_required: c.qr_required,
            version,
            updated_at: out.message.occurred_at()?,
        },
    )
    .await?;
    out.emit(|metadata| VenueDefined {
        metadata,
        venue_id: c.venue_id.clone(),
        name: c.name.clone(),
        time_zone: c.time_zone.clone(),
        capacity: c.capacity,
        zones: c.zones.clone(),
        seats: i32::try_from(c.seats.len()).unwrap_or(i32::MAX),
        version,
    });
    Ok(())
}

async fn grant_pass(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: GrantPass = out.message.record()?;
    crate::decide::filled(&[("pass_id", &c.pass_id), ("member_id", &c.member_id), ("venue_id", &c.venue_id)])
        .map_err(malformed::<GrantPass>)?;
    let (from, until) =
        (time::<GrantPass>("valid_from", c.valid_from)?, time::<GrantPass>("valid_until", c.valid_until)?);
    if until <= from {
        return Err(malformed::<GrantPass>(Malformed("valid_until must be after valid_from".into())));
    }
    let org = c.metadata.organization_id.clone();
    if write::venue(tx, &org, &c.venue_id).await?.is_none() {
        out.refuse::<GrantPass>(
            &c.venue_id,
            Refusal::new("venue_not_found", format!("venue {} is not defined", c.venue_id)),
        );
        return Ok(());
    }
    if !write::insert_pass(tx, &org, &c.pass_id, &c.member_id, &c.venue_id, (from, until)).await? {
        out.refuse::<GrantPass>(
            &c.venue_id,
            Refusal::new("pass_exists", format!("pass {} already exists", c.pass_id)),
        );
        return Ok(());
    }
    out.emit(|metadata| PassGranted {
        metadata,
        pass_id: c.pass_id.clone(),
        member_id: c.member_id.clone(),
        venue_id: c.venue_id.clone(),
        valid_from: c.valid_from,
        valid_until: c.valid_until,
    });
    Ok(())
}

async fn entitlement_of(
    tx: &mut PgConnection,
    org: &str,
    member_id: &str,
) -> Result<(Vec<SubscriptionView>, Vec<PassView>), HandleError> {
    let subscriptions = write::subscriptions_of(tx, org, member_id)
        .await?
        .into_iter()
        .map(|(subscription_id, status)| SubscriptionView { subscription_id, status })
        .collect();
    let passes = write::passes_of(tx, org, member_id)
        .await?
        .into_iter()
        .map(|(pass_id, venue_id, valid_from, valid_until)| PassView {
            pass_id,
            venue_id,
            valid_from,
            valid_until,
        })
        .collect();
    Ok((subscriptions, passes))
}

async fn check_in(tx: &mut PgConnection, out: &mut Out<'_>, keys: Option<&Keys>) -> Result<(), HandleError> {
    let command: CheckIn = out.message.record()?;
    validate_check_in(&command).map_err(malformed::<CheckIn>)?;
    let at = out.message.occurred_at()?;
    let org = command.metadata.organization_id.clone();
    let claims = match sessions::token_claims(keys, &command, at) {
        Ok(claims) => claims,
        Err(refusal) => {
            metrics::counter!("studyspot_attendance_token_refusals_total", "code" => refusal.code)
                .increment(1);
            out.refuse::<CheckIn>(&command.venue_id, refusal);
            return Ok(());
        }
    };
    let venue = load_venue(tx, &org, &command.venue_id).await?;
    let seat_id = sessions::seat_of(&command, claims.as_ref());
    let zone_id = match (&venue, &seat_id) {
        (Some(v), Some(seat)) => v.seat(seat).and_then(|s| s.zone_id.clone()),
        _ => command.zone_id.clone(),
    };
    let (subscriptions, passes) = entitlement_of(tx, &org, &command.member_id).await?;
    let mut state = CheckInState {
        open_session: write::open_session_of(tx, &org, &command.member_id).await?.map(|s| s.session_id),
        session_exists: projection::session(tx, &org, &command.session_id).await?.is_some(),
        occupancy: write::present(tx, &org, &command.venue_id, None).await?,
        zone_occupancy: match &zone_id {
            Some(z) => write::present(tx, &org, &command.venue_id, Some(z)).await?,
            None => 0,
        },
        entitlement: entitlements::entitlement_at(&subscriptions, &passes, &command.venue_id, at),
        token_replayed: match &claims {
            Some(c) if c.kind.single_use() => write::token_spent(tx, &org, &c.nonce).await?,
            _ => false,
        },
        ..Default::default()
    };
    if let Some(v) = &venue {
        let early = Duration::minutes(i64::from(v.limits.no_show_grace_minutes));
        let now_held: Vec<BookingRow> = write::holding_bookings(tx, &org, &command.venue_id, at)
            .await?
            .into_iter()
            .filter(|b| b.starts_at - early <= at && at < b.ends_at)
            .collect();
        state.booking = now_held
            .iter()
            .find(|b| {
                b.member_id == command.member_id
                    && b.status == "booked"
                    && (b.seat_id.is_none() || seat_id.is_none() || b.seat_id == seat_id)
            })
            .map(|b| BookingHere {
                booking_id: b.booking_id.clone(),
                seat_id: b.seat_id.clone(),
                zone_id: b.zone_id.clone(),
            });
        if let Some(seat) = &seat_id {
            state.seat_taken_by = write::seat_taken_by(tx, &org, &command.venue_id, seat).await?;
            state.seat_booked_by_other =
                now_held.iter().any(|b| b.member_id != command.member_id && b.seat_id.as_ref() == Some(seat));
        }
    }
    state.venue = venue;
    let admitted = match decide_check_in(&state, &command, claims.as_ref(), at) {
        CheckInDecision::CheckedIn(admitted) => admitted,
        CheckInDecision::Rejected { code, reason } => {
            if code.starts_with("token_") {
                metrics::counter!("studyspot_attendance_token_refusals_total", "code" => code).increment(1);
            }
            out.refuse::<CheckIn>(&command.venue_id, Refusal { code, reason });
            return Ok(());
        }
    };
    let entitlement = state.entitlement.clone().unwrap_or_default();
    let venue_name = state.venue.as_ref().map(|v| v.name.clone());
    let seat_label = match (&state.venue, &admitted.seat_id) {
        (Some(v), Some(seat)) => v.seat(seat).map(|s| s.label.clone()),
        _ => None,
    };
    let opened = write::open_session(
        tx,
        &Session {
            session_id: command.session_id.clone(),
            organization_id: org.clone(),
            member_id: command.member_id.clone(),
            venue_id: command.venue_id.clone(),
            seat_id: admitted.seat_id.clone(),
            checked_in_at: at,
            checked_out_at: None,
        },
        &SessionExtra {
            zone_id: admitted.zone_id.clone(),
            booking_id: admitted.booking_id.clone(),
            subscription_id: entitlement.subscription_id.clone(),
            pass_id: entitlement.pass_id.clone(),
            auto_checkout_at: Some(admitted.auto_checkout_at),
            auto_checkout_reason: Some(admitted.auto_checkout_reason.to_owned()),
        },
    )
    .await?;
    if !opened {
        // Another venue's partition checked the member in first: the index holds one open session.
        let refusal =
            Refusal::new("already_checked_in", format!("member {} is already checked in", command.member_id));
        out.refuse::<CheckIn>(&command.venue_id, refusal);
        return Ok(());
    }
    if let Some(nonce) = &admitted.spent_nonce {
        write::spend_token(tx, nonce, &org, &command.member_id, &command.session_id, at).await?;
    }
    if let Some(b) = &admitted.booking_id {
        write::set_booking_status(tx, &org, b, "checked_in", Some(&command.session_id), at).await?;
    }
    let zone = admitted.zone_id.as_deref().zip(admitted.zone_occupancy);
    write::record_occupancy(tx, &org, &command.venue_id, zone, admitted.occupancy, at, &command.session_id)
        .await?;
    out.emit(|metadata| CheckedIn {
        metadata,
        session_id: command.session_id.clone(),
        member_id: command.member_id.clone(),
        venue_id: command.venue_id.clone(),
        seat_id: admitted.seat_id.clone(),
        occupancy: admitted.occupancy,
        zone_id: admitted.zone_id.clone(),
        zone_occupancy: admitted.zone_occupancy,
        booking_id: admitted.booking_id.clone(),
        subscription_id: entitlement.subscription_id,
        pass_id: entitlement.pass_id,
        venue_name,
        seat_label,
    });
    Ok(())
}

/// Closes a session, recounts the venue (and zone), and announces the completed session.
async fn finish(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    org: &str,
    row: &OpenSessionRow,
    done: &Completed,
) -> Result<(), HandleError> {
    write::close_session(tx, org, &done.session_id, done.checked_out_at, &done.reason, done.duration_seconds)
        .await?;
    let occupancy = write::present(tx, org, &row.venue_id, None).await?;
    let zone_occupancy = match &row.zone_id {
        Some(z) => Some(write::present(tx, org, &row.venue_id, Some(z)).await?),
        None => None,
    };
    let zone = row.zone_id.as_deref().zip(zone_occupancy);
    write::record_occupancy(tx, org, &row.venue_id, zone, occupancy, done.checked_out_at, &done.session_id)
        .await?;
    metrics::counter!("studyspot_attendance_sessions_completed_total", "reason" => done.reason.clone())
        .increment(1);
    out.emit(|metadata| SessionCompleted {
        metadata,
        session_id: done.session_id.clone(),
        member_id: row.member_id.clone(),
        venue_id: row.venue_id.clone(),
        seat_id: row.seat_id.clone(),
        zone_id: row.zone_id.clone(),
        checked_in_at: ms(row.checked_in_at),
        checked_out_at: ms(done.checked_out_at),
        duration_seconds: done.duration_seconds,
        reason: done.reason.clone(),
        occupancy,
        zone_occupancy,
        subscription_id: row.subscription_id.clone(),
    });
    Ok(())
}

async fn check_out(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: CheckOut = out.message.record()?;
    sessions::validate_check_out(&c).map_err(malformed::<CheckOut>)?;
    let at = match c.effective_at {
        Some(t) => time::<CheckOut>("effective_at", t)?,
        None => out.message.occurred_at()?,
    };
    let org = c.metadata.organization_id.clone();
    let row = match &c.session_id {
        Some(id) => write::session_row(tx, &org, id).await?,
        None => write::open_session_of(tx, &org, &c.member_id).await?,
    };
    let session = row.as_ref().map(open_session);
    match sessions::decide_check_out(session.as_ref(), &c, at) {
        Ok(done) => finish(tx, out, &org, row.as_ref().expect("decided on a session"), &done).await,
        Err(refusal) => {
            out.refuse::<CheckOut>(&c.venue_id, refusal);
            Ok(())
        }
    }
}

async fn run(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: RunAttendance = out.message.record()?;
    crate::decide::filled(&[("venue_id", &c.venue_id)]).map_err(malformed::<RunAttendance>)?;
    let up_to = time::<RunAttendance>("up_to", c.up_to)?;
    let org = c.metadata.organization_id.clone();
    let rows = write::due_sessions(tx, &org, &c.venue_id, up_to).await?;
    let open: Vec<OpenSession> = rows.iter().map(open_session).collect();
    let venue = load_venue(tx, &org, &c.venue_id).await?;
    let max_stay = venue.as_ref().map_or(0, |v| v.limits.max_stay_minutes);
    let venue_name = venue.map(|v| v.name);
    for (done, overstay) in sessions::due_check_outs(&open, up_to) {
        let Some(row) = rows.iter().find(|r| r.session_id == done.session_id) else { continue };
        if overstay {
            metrics::counter!("studyspot_attendance_overstays_total").increment(1);
            out.emit(|metadata| OverstayDetected {
                metadata,
                session_id: row.session_id.clone(),
                member_id: row.member_id.clone(),
                venue_id: row.venue_id.clone(),
                seat_id: row.seat_id.clone(),
                checked_in_at: ms(row.checked_in_at),
                limit_at: ms(done.checked_out_at),
                max_stay_minutes: max_stay,
                venue_name: venue_name.clone(),
            });
        }
        finish(tx, out, &org, row, &done).await?;
    }
    let due = write::due_no_shows(tx, &org, &c.venue_id, up_to).await?;
    let views: Vec<BookingView> = due.iter().map(booking_view).collect();
    for view in bookings::no_shows(&views, up_to) {
        let Some(b) = due.iter().find(|b| b.booking_id == view.booking_id) else { continue };
        write::set_booking_status(tx, &org, &b.booking_id, "no_show", None, b.no_show_at).await?;
        metrics::counter!("studyspot_attendance_no_shows_total").increment(1);
        out.emit(|metadata| BookingNoShow {
            metadata,
            booking_id: b.booking_id.clone(),
            member_id: b.member_id.clone(),
            venue_id: b.venue_id.clone(),
            seat_id: b.seat_id.clone(),
            zone_id: b.zone_id.clone(),
            starts_at: ms(b.starts_at),
            released_at: ms(b.no_show_at),
            venue_name: venue_name.clone(),
        });
    }
    Ok(())
}

fn booking_view(b: &BookingRow) -> BookingView {
    BookingView {
        booking_id: b.booking_id.clone(),
        member_id: b.member_id.clone(),
        status: b.status.clone(),
        starts_at: b.starts_at,
        no_show_at: b.no_show_at,
    }
}

async fn create_booking(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: CreateBooking = out.message.record()?;
    bookings::validate_create(&c).map_err(malformed::<CreateBooking>)?;
    let at = out.message.occurred_at()?;
    let org = c.metadata.organization_id.clone();
    let state = BookingState {
        venue: load_venue(tx, &org, &c.venue_id).await?,
        exists: write::booking(tx, &org, &c.booking_id).await?.is_some(),
        holding: write::holding_bookings(tx, &org, &c.venue_id, at)
            .await?
            .into_iter()
            .map(|b| Held {
                booking_id: b.booking_id,
                member_id: b.member_id,
                seat_id: b.seat_id,
                zone_id: b.zone_id,
                starts_at: b.starts_at,
                ends_at: b.ends_at,
            })
            .collect(),
    };
    let occurrences = match bookings::decide_create(&state, &c, at) {
        Ok(o) => o,
        Err(refusal) => {
            out.refuse::<CreateBooking>(&c.venue_id, refusal);
            return Ok(());
        }
    };
    for o in occurrences {
        write::insert_booking(
            tx,
            &BookingRow {
                booking_id: o.booking_id.clone(),
                organization_id: org.clone(),
                member_id: c.member_id.clone(),
                venue_id: c.venue_id.clone(),
                seat_id: o.seat_id.clone(),
                zone_id: o.zone_id.clone(),
                starts_at: o.starts_at,
                ends_at: o.ends_at,
                series_id: o.series_id.clone(),
                status: "booked".into(),
                no_show_at: o.no_show_at,
                session_id: None,
                created_at: at,
                updated_at: at,
            },
        )
        .await?;
        out.emit(|metadata| BookingCreated {
            metadata,
            booking_id: o.booking_id,
            member_id: c.member_id.clone(),
            venue_id: c.venue_id.clone(),
            seat_id: o.seat_id,
            zone_id: o.zone_id,
            starts_at: ms(o.starts_at),
            ends_at: ms(o.ends_at),
            series_id: o.series_id,
        });
    }
    Ok(())
}

async fn cancel(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    b: &BookingRow,
    at: DateTime<Utc>,
) -> Result<(), HandleError> {
    write::set_booking_status(tx, &b.organization_id, &b.booking_id, "cancelled", None, at).await?;
    out.emit(|metadata| BookingCancelled {
        metadata,
        booking_id: b.booking_id.clone(),
        member_id: b.member_id.clone(),
        venue_id: b.venue_id.clone(),
        starts_at: ms(b.starts_at),
    });
    Ok(())
}

async fn cancel_booking(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: CancelBooking = out.message.record()?;
    crate::decide::filled(&[
        ("booking_id", &c.booking_id),
        ("member_id", &c.member_id),
        ("venue_id", &c.venue_id),
    ])
    .map_err(malformed::<CancelBooking>)?;
    let at = out.message.occurred_at()?;
    let row = write::booking(tx, &c.metadata.organization_id, &c.booking_id)
        .await?
        .filter(|b| b.venue_id == c.venue_id && b.organization_id == c.metadata.organization_id);
    let view = row.as_ref().map(booking_view);
    match bookings::decide_cancel(view.as_ref(), &c.member_id, &c.booking_id) {
        Ok(()) => cancel(tx, out, row.as_ref().expect("decided on a booking"), at).await,
        Err(refusal) => {
            out.refuse::<CancelBooking>(&c.venue_id, refusal);
            Ok(())
        }
    }
}

async fn cancel_bookings(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: CancelBookings = out.message.record()?;
    bookings::validate_cancel_range(&c).map_err(malformed::<CancelBookings>)?;
    let at = out.message.occurred_at()?;
    let (from, to) = (time::<CancelBookings>("from", c.from)?, time::<CancelBookings>("to", c.to)?);
    let rows =
        write::member_bookings(tx, &c.metadata.organization_id, &c.venue_id, &c.member_id, from, to).await?;
    let views: Vec<BookingView> = rows.iter().map(booking_view).collect();
    let chosen: Vec<String> =
        bookings::cancel_range(&views, &c).iter().map(|v| v.booking_id.clone()).collect();
    for b in rows.iter().filter(|b| chosen.contains(&b.booking_id)) {
        cancel(tx, out, b, at).await?;
    }
    Ok(())
}

/// A subscription's status as billing announced it; a member in session who is no longer
/// entitled is checked out, through a `CheckOut` on the venue's partition (occupancy stays
/// ordered per venue).
async fn entitlement_changed(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    (member_id, subscription_id): (&str, &str),
    status: &str,
    at: DateTime<Utc>,
) -> Result<(), HandleError> {
    let org = out.message.metadata.organization_id.clone();
    write::set_subscription_status(tx, &org, member_id, subscription_id, status, at).await?;
    if entitlements::entitles(status) {
        return Ok(());
    }
    let (subscriptions, passes) = entitlement_of(tx, &org, member_id).await?;
    let open = write::open_session_of(tx, &org, member_id).await?.map(|r| open_session(&r));
    if let Some((session_id, venue_id, when)) =
        entitlements::check_out_on_loss(&subscriptions, &passes, open.as_ref(), at)
    {
        out.emit(|metadata| CheckOut {
            metadata,
            member_id: member_id.to_owned(),
            venue_id,
            session_id: Some(session_id),
            reason: "entitlement_lost".into(),
            effective_at: Some(ms(when)),
        });
    }
    Ok(())
}
