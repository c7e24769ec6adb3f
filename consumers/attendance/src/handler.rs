//! The shell around attendance's decisions: load state, decide, write the projection, emit.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use sqlx::PgConnection;
use studyspot_attendance_projection::{
    self as projection, Session,
    write::{self, BookingRow, OpenSessionRow, SessionExtra, VenueRow},
};
use studyspot_consumer_runtime::{Effects, HandleError, Handler, Inbound, Out, malformed};
use studyspot_qr_tokens::Keys;
use studyspot_schemas::{
    Record,
    attendance::{
        BookingCancelled, BookingCreated, BookingNoShow, CancelBooking, CancelBookings, CheckIn, CheckOut,
        CheckedIn, CommandRejected, CreateBooking, DefineVenue, GrantPass, OverstayDetected, PassGranted,
        RunAttendance, SessionCompleted, VenueDefined,
    },
    billing::{SubscriptionCreated, SubscriptionStatusChanged},
};

use crate::decide::{
    Event, Refusal, bookings,
    bookings::{BookingState, BookingView, Held},
    entitlements::{self, PassView, SubscriptionView},
    passes::{self, PassState},
    sessions::{self, BookingHere, CheckInState, CheckOutState, OpenSession, Present},
    tick::{self, TickState},
    venue::{self, Venue},
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
        let mut out = Out::new(message, effects, ACTOR);
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

/// Attendance's refusals name the venue whose partition decided them.
trait Refuse {
    fn refuse<C: Record>(&mut self, venue_id: &str, refusal: Refusal);
}

impl Refuse for Out<'_> {
    fn refuse<C: Record>(&mut self, venue_id: &str, refusal: Refusal) {
        metrics::counter!("studyspot_attendance_refusals_total", "command" => C::FULL_NAME, "code" => refusal.code)
            .increment(1);
        let command_id = self.command_id();
        self.reject(|metadata| CommandRejected {
            metadata,
            command_id,
            command_type: C::FULL_NAME.to_owned(),
            venue_id: venue_id.to_owned(),
            code: refusal.code.to_owned(),
            reason: refusal.reason,
        });
    }
}

fn time<C: Record>(field: &str, value: i64) -> Result<DateTime<Utc>, HandleError> {
    crate::decide::instant(field, value).map_err(malformed::<C>)
}

fn instant_of(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// The events of a decision written to the projection and emitted, in order; or the refusal
/// emitted. `false` as [`write_and_emit`] says.
async fn apply<C: Record>(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    at: DateTime<Utc>,
    venue_id: &str,
    decided: Result<Vec<Event>, Refusal>,
) -> Result<bool, HandleError> {
    let events = match decided {
        Ok(events) => events,
        Err(refusal) => {
            if refusal.code.starts_with("token_") {
                metrics::counter!("studyspot_attendance_token_refusals_total", "code" => refusal.code)
                    .increment(1);
            }
            out.refuse::<C>(venue_id, refusal);
            return Ok(true);
        }
    };
    write_and_emit(tx, out, at, events).await
}

/// Each event written to the projection, then emitted. `false` when a write found its key taken
/// by another partition's record (only a check-in's open session and a pass id can be): nothing
/// was written or emitted then.
async fn write_and_emit(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    at: DateTime<Utc>,
    events: Vec<Event>,
) -> Result<bool, HandleError> {
    for event in events {
        if !project(tx, out.org(), at, &event).await? {
            return Ok(false);
        }
        emit(out, event);
    }
    Ok(true)
}

/// The projection's write of one event, at `at` (the deciding record's instant); `false` when
/// the key it inserts is taken.
async fn project(
    tx: &mut PgConnection,
    org: &str,
    at: DateTime<Utc>,
    event: &Event,
) -> Result<bool, HandleError> {
    match event {
        Event::VenueDefined(e, v) => {
            let json =
                |v: serde_json::Result<serde_json::Value>| v.map_err(|e| HandleError::Fatal(e.to_string()));
            let row = VenueRow {
                organization_id: org.to_owned(),
                venue_id: e.venue_id.clone(),
                name: e.name.clone(),
                time_zone: e.time_zone.clone(),
                capacity: e.capacity,
                zones: json(serde_json::to_value(&v.zones))?,
                seats: json(serde_json::to_value(&v.seats))?,
                opening_hours: json(serde_json::to_value(&v.opening_hours))?,
                limits: json(serde_json::to_value(&v.limits))?,
                qr_required: v.qr_required,
                version: e.version,
                updated_at: at,
            };
            write::save_venue(tx, &row).await?;
        }
        Event::PassGranted(e) => {
            let valid = (instant_of(e.valid_from), instant_of(e.valid_until));
            return Ok(write::insert_pass(tx, org, &e.pass_id, &e.member_id, &e.venue_id, valid).await?);
        }
        Event::CheckedIn(e, stay) => {
            let session = Session {
                session_id: e.session_id.clone(),
                organization_id: org.to_owned(),
                member_id: e.member_id.clone(),
                venue_id: e.venue_id.clone(),
                seat_id: e.seat_id.clone(),
                checked_in_at: at,
                checked_out_at: None,
            };
            let extra = SessionExtra {
                zone_id: e.zone_id.clone(),
                booking_id: e.booking_id.clone(),
                subscription_id: e.subscription_id.clone(),
                pass_id: e.pass_id.clone(),
                auto_checkout_at: Some(stay.auto_checkout_at),
                auto_checkout_reason: Some(stay.auto_checkout_reason.to_owned()),
            };
            if !write::open_session(tx, &session, &extra).await? {
                return Ok(false);
            }
            if let Some(nonce) = &stay.spent_nonce {
                write::spend_token(tx, nonce, org, &e.member_id, &e.session_id, at).await?;
            }
            if let Some(b) = &e.booking_id {
                write::set_booking_status(tx, org, b, "checked_in", Some(&e.session_id), at).await?;
            }
            let zone = e.zone_id.as_deref().zip(e.zone_occupancy);
            write::record_occupancy(tx, org, &e.venue_id, zone, e.occupancy, at, &e.session_id).await?;
        }
        Event::SessionCompleted(e) => {
            let ended = instant_of(e.checked_out_at);
            write::close_session(tx, org, &e.session_id, ended, &e.reason, e.duration_seconds).await?;
            let zone = e.zone_id.as_deref().zip(e.zone_occupancy);
            write::record_occupancy(tx, org, &e.venue_id, zone, e.occupancy, ended, &e.session_id).await?;
            metrics::counter!("studyspot_attendance_sessions_completed_total", "reason" => e.reason.clone())
                .increment(1);
        }
        Event::OverstayDetected(_) => metrics::counter!("studyspot_attendance_overstays_total").increment(1),
        Event::BookingCreated(e, no_show_at) => {
            let row = BookingRow {
                booking_id: e.booking_id.clone(),
                organization_id: org.to_owned(),
                member_id: e.member_id.clone(),
                venue_id: e.venue_id.clone(),
                seat_id: e.seat_id.clone(),
                zone_id: e.zone_id.clone(),
                starts_at: instant_of(e.starts_at),
                ends_at: instant_of(e.ends_at),
                series_id: e.series_id.clone(),
                status: "booked".into(),
                no_show_at: *no_show_at,
                session_id: None,
                created_at: at,
                updated_at: at,
            };
            write::insert_booking(tx, &row).await?;
        }
        Event::BookingCancelled(e) => {
            write::set_booking_status(tx, org, &e.booking_id, "cancelled", None, at).await?;
        }
        Event::BookingNoShow(e) => {
            write::set_booking_status(tx, org, &e.booking_id, "no_show", None, instant_of(e.released_at))
                .await?;
            metrics::counter!("studyspot_attendance_no_shows_total").increment(1);
        }
        Event::CheckOutAsked(_) => {}
    }
    Ok(true)
}

/// The event's record, numbered as the next follow-on of the input.
fn emit(out: &mut Out<'_>, event: Event) {
    match event {
        Event::VenueDefined(r, _) => out.emit(|metadata| VenueDefined { metadata, ..r }),
        Event::PassGranted(r) => out.emit(|metadata| PassGranted { metadata, ..r }),
        Event::CheckedIn(r, _) => out.emit(|metadata| CheckedIn { metadata, ..r }),
        Event::OverstayDetected(r) => out.emit(|metadata| OverstayDetected { metadata, ..r }),
        Event::SessionCompleted(r) => out.emit(|metadata| SessionCompleted { metadata, ..r }),
        Event::BookingCreated(r, _) => out.emit(|metadata| BookingCreated { metadata, ..r }),
        Event::BookingCancelled(r) => out.emit(|metadata| BookingCancelled { metadata, ..r }),
        Event::BookingNoShow(r) => out.emit(|metadata| BookingNoShow { metadata, ..r }),
        Event::CheckOutAsked(r) => out.emit(|metadata| CheckOut { metadata, ..r }),
    }
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
        seat_id: row.seat_id.clone(),
        zone_id: row.zone_id.clone(),
        subscription_id: row.subscription_id.clone(),
        checked_in_at: row.checked_in_at,
        checked_out_at: row.checked_out_at,
        auto_checkout_at: row.auto_checkout_at,
        auto_checkout_reason: row.auto_checkout_reason.clone(),
    }
}

/// Members present at the venue, and in the zone when there is one.
async fn present(
    tx: &mut PgConnection,
    org: &str,
    venue_id: &str,
    zone_id: Option<&str>,
) -> Result<Present, HandleError> {
    let venue = write::present(tx, org, venue_id, None).await?;
    let zone = match zone_id {
        Some(z) => Some(write::present(tx, org, venue_id, Some(z)).await?),
        None => None,
    };
    Ok(Present { venue, zone })
}

async fn define_venue(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: DefineVenue = out.message.record()?;
    let defined = Venue::from_definition(&c).map_err(malformed::<DefineVenue>)?;
    let org = c.metadata.organization_id.clone();
    let previous = write::venue(tx, &org, &c.venue_id).await?.map(|v| v.version);
    let at = out.message.occurred_at()?;
    write_and_emit(tx, out, at, venue::decide_define(previous, defined, &c)).await?;
    Ok(())
}

async fn grant_pass(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: GrantPass = out.message.record()?;
    passes::validate_grant(&c).map_err(malformed::<GrantPass>)?;
    let org = c.metadata.organization_id.clone();
    let state = PassState {
        venue_defined: write::venue(tx, &org, &c.venue_id).await?.is_some(),
        pass_exists: write::pass_exists(tx, &org, &c.pass_id).await?,
    };
    let at = out.message.occurred_at()?;
    if !apply::<GrantPass>(tx, out, at, &c.venue_id, passes::decide_grant(&state, &c)).await? {
        // Another venue's partition granted the id first.
        out.refuse::<GrantPass>(&c.venue_id, passes::pass_exists(&c));
    }
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
    sessions::validate_check_in(&command).map_err(malformed::<CheckIn>)?;
    let at = out.message.occurred_at()?;
    let org = command.metadata.organization_id.clone();
    let token = sessions::token(keys, &command, at);
    let state = match &token {
        // A token that does not verify is refused before anything else is looked at.
        sessions::Token::Refused(_) => CheckInState { token, ..Default::default() },
        _ => check_in_state(tx, &org, &command, token, at).await?,
    };
    let decided = sessions::decide_check_in(&state, &command, at);
    if !apply::<CheckIn>(tx, out, at, &command.venue_id, decided).await? {
        // Another venue's partition checked the member in first: the index holds one open session.
        out.refuse::<CheckIn>(&command.venue_id, sessions::already_in(&command));
    }
    Ok(())
}

async fn check_in_state(
    tx: &mut PgConnection,
    org: &str,
    command: &CheckIn,
    token: sessions::Token,
    at: DateTime<Utc>,
) -> Result<CheckInState, HandleError> {
    let claims = match &token {
        sessions::Token::Genuine(claims) => Some(claims),
        _ => None,
    };
    let venue = load_venue(tx, org, &command.venue_id).await?;
    let seat_id = sessions::seat_of(command, claims);
    let zone_id = match (&venue, &seat_id) {
        (Some(v), Some(seat)) => v.seat(seat).and_then(|s| s.zone_id.clone()),
        _ => command.zone_id.clone(),
    };
    let (subscriptions, passes) = entitlement_of(tx, org, &command.member_id).await?;
    let mut state = CheckInState {
        open_session: write::open_session_of(tx, org, &command.member_id).await?.map(|s| s.session_id),
        session_exists: projection::session(tx, org, &command.session_id).await?.is_some(),
        occupancy: write::present(tx, org, &command.venue_id, None).await?,
        zone_occupancy: match &zone_id {
            Some(z) => write::present(tx, org, &command.venue_id, Some(z)).await?,
            None => 0,
        },
        entitlement: entitlements::entitlement_at(&subscriptions, &passes, &command.venue_id, at),
        token_replayed: match claims {
            Some(c) if c.kind.single_use() => write::token_spent(tx, org, &c.nonce).await?,
            _ => false,
        },
        ..Default::default()
    };
    if let Some(v) = &venue {
        let early = Duration::minutes(i64::from(v.limits.no_show_grace_minutes));
        let now_held = write::holding_at(tx, org, &command.venue_id, at, early).await?;
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
            state.seat_taken_by = write::seat_taken_by(tx, org, &command.venue_id, seat).await?;
            state.seat_booked_by_other =
                now_held.iter().any(|b| b.member_id != command.member_id && b.seat_id.as_ref() == Some(seat));
        }
    }
    state.venue = venue;
    state.token = token;
    Ok(state)
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
    let present = match &session {
        Some(s) => present(tx, &org, &s.venue_id, s.zone_id.as_deref()).await?,
        None => Present::default(),
    };
    let state = CheckOutState { session, present };
    apply::<CheckOut>(tx, out, at, &c.venue_id, sessions::decide_check_out(&state, &c, at)).await?;
    Ok(())
}

async fn run(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: RunAttendance = out.message.record()?;
    crate::decide::filled(&[("venue_id", &c.venue_id)]).map_err(malformed::<RunAttendance>)?;
    let up_to = time::<RunAttendance>("up_to", c.up_to)?;
    let org = c.metadata.organization_id.clone();
    let due_sessions: Vec<OpenSession> =
        write::due_sessions(tx, &org, &c.venue_id, up_to).await?.iter().map(open_session).collect();
    let mut state = TickState {
        venue: load_venue(tx, &org, &c.venue_id).await?,
        present: write::present(tx, &org, &c.venue_id, None).await?,
        due_bookings: write::due_no_shows(tx, &org, &c.venue_id, up_to)
            .await?
            .iter()
            .map(booking_view)
            .collect(),
        ..Default::default()
    };
    for zone in due_sessions.iter().filter_map(|s| s.zone_id.as_deref()) {
        if !state.present_in_zone.contains_key(zone) {
            let n = write::present(tx, &org, &c.venue_id, Some(zone)).await?;
            state.present_in_zone.insert(zone.to_owned(), n);
        }
    }
    state.due_sessions = due_sessions;
    write_and_emit(tx, out, up_to, tick::decide_run(&state, &c, up_to)).await?;
    Ok(())
}

fn booking_view(b: &BookingRow) -> BookingView {
    BookingView {
        booking_id: b.booking_id.clone(),
        member_id: b.member_id.clone(),
        venue_id: b.venue_id.clone(),
        seat_id: b.seat_id.clone(),
        zone_id: b.zone_id.clone(),
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
        holding: write::holding_for(tx, &org, &c.venue_id, &c.member_id, at, bookings::span(&c, at))
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
    apply::<CreateBooking>(tx, out, at, &c.venue_id, bookings::decide_create(&state, &c, at)).await?;
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
    let booking = write::booking(tx, &c.metadata.organization_id, &c.booking_id)
        .await?
        .filter(|b| b.venue_id == c.venue_id && b.organization_id == c.metadata.organization_id)
        .map(|b| booking_view(&b));
    apply::<CancelBooking>(tx, out, at, &c.venue_id, bookings::decide_cancel(booking.as_ref(), &c)).await?;
    Ok(())
}

async fn cancel_bookings(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: CancelBookings = out.message.record()?;
    bookings::validate_cancel_range(&c).map_err(malformed::<CancelBookings>)?;
    let at = out.message.occurred_at()?;
    let (from, to) = (time::<CancelBookings>("from", c.from)?, time::<CancelBookings>("to", c.to)?);
    let views: Vec<BookingView> =
        write::member_bookings(tx, &c.metadata.organization_id, &c.venue_id, &c.member_id, from, to)
            .await?
            .iter()
            .map(booking_view)
            .collect();
    write_and_emit(tx, out, at, bookings::cancel_range(&views, &c)).await?;
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
    let org = out.org().to_owned();
    write::set_subscription_status(tx, &org, member_id, subscription_id, status, at).await?;
    if entitlements::entitles(status) {
        return Ok(());
    }
    let (subscriptions, passes) = entitlement_of(tx, &org, member_id).await?;
    let open = write::open_session_of(tx, &org, member_id).await?.map(|r| open_session(&r));
    let events = entitlements::decide_loss(&subscriptions, &passes, open.as_ref(), at, &out.message.metadata);
    write_and_emit(tx, out, at, events).await?;
    Ok(())
}
