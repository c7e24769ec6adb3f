//! Attendance: venues (zones, seats, opening hours, capacity, limits), passes, bookings (single,
//! recurring, cancel one or a date range), QR tokens and a printable QR per seat, check-outs, and
//! the reads of live occupancy and the attendance dashboard. Check-ins are in `commands`. The
//! gateway checks shapes and who may ask; attendance decides. Times are RFC 3339 here and epoch
//! milliseconds in the commands.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Extension, Json,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use studyspot_attendance::decide::venue;
use studyspot_attendance_projection::reads::{self, AttendanceDashboard, VenueOccupancy};
use studyspot_bus::TraceContext;
use studyspot_ids::{BookingId, MemberId, PassId, SeatId, SessionId, VenueId, ZoneId};
use studyspot_qr_tokens::{Claims, Keys, Kind};
use studyspot_schemas::attendance::{
    self as schema, CHECK_OUT_REASONS, OpeningHours, RECURRENCES, Recurrence, Seat, VenueLimits, Zone,
};

use crate::{
    AppState, GatewayError,
    auth::Caller,
    commands::{Accept, CommandRequest, PathId, accept, answer, metadata, new_id, one_of, parse},
    error::projection_missing,
    queries::{Params, analytics_range, only_params, query_values},
};

/// Mints QR tokens with the current key of `attendance.qr`.
#[derive(Clone)]
pub struct QrIssuer {
    keys: Option<Arc<Keys>>,
    ttl_secs: i64,
    seat_code_ttl_days: i64,
}

impl QrIssuer {
    pub fn from_settings(settings: &studyspot_config::Settings) -> Self {
        let qr = &settings.attendance.qr;
        Self {
            keys: studyspot_attendance::keys(settings).ok().map(Arc::new),
            ttl_secs: i64::try_from(qr.ttl_secs).unwrap_or(120),
            seat_code_ttl_days: i64::try_from(qr.seat_code_ttl_days).unwrap_or(365),
        }
    }

    fn sign(&self, claims: &Claims) -> Result<String, GatewayError> {
        let keys = self.keys.as_ref().ok_or_else(|| GatewayError::Unavailable("no QR signing key".into()))?;
        keys.sign(claims).map_err(|e| GatewayError::invalid("venue_id", e.to_string()))
    }
}

fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn default_limits() -> VenueLimits {
    VenueLimits {
        max_bookings_per_member: 10,
        max_concurrent_bookings: 1,
        max_days_ahead: 14,
        min_booking_minutes: 30,
        max_booking_minutes: 480,
        no_show_grace_minutes: 15,
        max_stay_minutes: 720,
    }
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ZoneBody {
    #[schema(value_type = String)]
    pub(crate) zone_id: ZoneId,
    pub(crate) name: String,
    pub(crate) capacity: i32,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeatBody {
    #[schema(value_type = String)]
    pub(crate) seat_id: SeatId,
    #[schema(value_type = Option<String>)]
    pub(crate) zone_id: Option<ZoneId>,
    /// What is printed on the seat; default its id.
    pub(crate) label: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpeningHoursBody {
    /// 1 = Monday … 7 = Sunday.
    pub(crate) weekday: i32,
    /// `HH:MM` in the venue's time zone.
    pub(crate) opens: String,
    /// `HH:MM`, after `opens`; `24:00` for midnight.
    pub(crate) closes: String,
}

#[derive(Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct LimitsBody {
    pub(crate) max_bookings_per_member: Option<i32>,
    pub(crate) max_concurrent_bookings: Option<i32>,
    pub(crate) max_days_ahead: Option<i32>,
    pub(crate) min_booking_minutes: Option<i32>,
    pub(crate) max_booking_minutes: Option<i32>,
    /// 15 to 60.
    pub(crate) no_show_grace_minutes: Option<i32>,
    pub(crate) max_stay_minutes: Option<i32>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VenueRequest {
    /// `ven_…`; the same id again replaces the venue's definition.
    #[schema(value_type = Option<String>)]
    pub(crate) venue_id: Option<VenueId>,
    pub(crate) name: String,
    /// IANA, e.g. Europe/Berlin.
    pub(crate) time_zone: String,
    pub(crate) capacity: i32,
    #[serde(default)]
    pub(crate) zones: Vec<ZoneBody>,
    #[serde(default)]
    pub(crate) seats: Vec<SeatBody>,
    /// Required, at least one interval: a venue is open only within them (round the clock is
    /// `00:00`–`24:00` on each weekday). Missing or empty is a 422 naming `opening_hours`.
    #[serde(default)]
    pub(crate) opening_hours: Vec<OpeningHoursBody>,
    #[serde(default)]
    pub(crate) limits: LimitsBody,
    /// Members check in with a QR token (default true); staff at the desk need none.
    #[serde(default = "yes")]
    pub(crate) qr_required: bool,
}

#[utoipa::path(post, path = "/api/attendance/venues", tag = "attendance", request_body = VenueRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 202, description = "Accepted; decided asynchronously", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services define venues", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid (named in `field`)", body = crate::openapi::ErrorBody),
        (status = 503, description = "Broker, registry or database unavailable; retry", body = crate::openapi::ErrorBody),
    )
)]
pub async fn define_venue(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<VenueRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(define_venue_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

pub(crate) async fn define_venue_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<crate::ledger::Idempotency>,
    body: VenueRequest,
) -> Result<(Value, bool), GatewayError> {
    caller.require_operator("defining venues")?;
    if body.opening_hours.is_empty() {
        // Without hours attendance finds the venue closed at every instant; refusing here says so
        // at once instead of at the first check-in. Not defaulted to round the clock: a venue open
        // all night by an omission is never checked out at closing time, and that is worse.
        return Err(GatewayError::invalid(
            "opening_hours",
            "opening_hours is required: the venue is open only within them (in its time zone); \
             a venue open round the clock lists 00:00 to 24:00 for each weekday",
        ));
    }
    let d = default_limits();
    let l = body.limits;
    let venue_id = body.venue_id.map_or_else(|| new_id("ven"), String::from);
    let command = schema::DefineVenue {
        metadata: metadata(caller),
        venue_id: venue_id.clone(),
        name: body.name,
        time_zone: body.time_zone,
        capacity: body.capacity,
        zones: body
            .zones
            .into_iter()
            .map(|z| Zone { zone_id: z.zone_id.into(), name: z.name, capacity: z.capacity })
            .collect(),
        seats: body
            .seats
            .into_iter()
            .map(|s| Seat {
                label: s.label.unwrap_or_else(|| s.seat_id.to_string()),
                seat_id: s.seat_id.into(),
                zone_id: s.zone_id.map(String::from),
            })
            .collect(),
        opening_hours: body
            .opening_hours
            .into_iter()
            .map(|h| OpeningHours { weekday: h.weekday, opens: h.opens, closes: h.closes })
            .collect(),
        limits: VenueLimits {
            max_bookings_per_member: l.max_bookings_per_member.unwrap_or(d.max_bookings_per_member),
            max_concurrent_bookings: l.max_concurrent_bookings.unwrap_or(d.max_concurrent_bookings),
            max_days_ahead: l.max_days_ahead.unwrap_or(d.max_days_ahead),
            min_booking_minutes: l.min_booking_minutes.unwrap_or(d.min_booking_minutes),
            max_booking_minutes: l.max_booking_minutes.unwrap_or(d.max_booking_minutes),
            no_show_grace_minutes: l.no_show_grace_minutes.unwrap_or(d.no_show_grace_minutes),
            max_stay_minutes: l.max_stay_minutes.unwrap_or(d.max_stay_minutes),
        },
        qr_required: body.qr_required,
    };
    venue::validate(&command).map_err(|(field, message)| GatewayError::invalid(&field, message))?;
    let how = Accept { caller, trace, idempotency, aggregate: ("venue_id", venue_id), member_id: None };
    accept(state, command, how).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PassRequest {
    #[schema(value_type = Option<String>)]
    pub(crate) pass_id: Option<PassId>,
    #[schema(value_type = String)]
    pub(crate) member_id: MemberId,
    #[schema(value_type = String)]
    pub(crate) venue_id: VenueId,
    pub(crate) valid_from: DateTime<Utc>,
    pub(crate) valid_until: DateTime<Utc>,
}

#[utoipa::path(post, path = "/api/attendance/passes", tag = "attendance", request_body = PassRequest,
    responses(
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 202, description = "Accepted; decided asynchronously", body = crate::openapi::Accepted),
        (status = 403, description = "Only owners, staff and services grant passes", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid (named in `field`)", body = crate::openapi::ErrorBody),
    )
)]
pub async fn grant_pass(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<PassRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(grant_pass_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

pub(crate) async fn grant_pass_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<crate::ledger::Idempotency>,
    body: PassRequest,
) -> Result<(Value, bool), GatewayError> {
    caller.require_operator("granting passes")?;
    if body.valid_until <= body.valid_from {
        return Err(GatewayError::invalid("valid_until", "valid_until must be after valid_from"));
    }
    let pass_id = body.pass_id.map_or_else(|| new_id("pas"), String::from);
    let command = schema::GrantPass {
        metadata: metadata(caller),
        pass_id: pass_id.clone(),
        member_id: body.member_id.to_string(),
        venue_id: body.venue_id.into(),
        valid_from: ms(body.valid_from),
        valid_until: ms(body.valid_until),
    };
    let how = Accept {
        caller,
        trace,
        idempotency,
        aggregate: ("pass_id", pass_id),
        member_id: Some(body.member_id.as_str()),
    };
    accept(state, command, how).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecurrenceBody {
    /// daily or weekly.
    pub(crate) frequency: String,
    /// Occurrences in all, 1 to 52.
    pub(crate) count: i32,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookingRequest {
    #[schema(value_type = Option<String>)]
    pub(crate) booking_id: Option<BookingId>,
    #[schema(value_type = String)]
    pub(crate) member_id: MemberId,
    #[schema(value_type = String)]
    pub(crate) venue_id: VenueId,
    #[schema(value_type = Option<String>)]
    pub(crate) seat_id: Option<SeatId>,
    #[schema(value_type = Option<String>)]
    pub(crate) zone_id: Option<ZoneId>,
    pub(crate) starts_at: DateTime<Utc>,
    pub(crate) ends_at: DateTime<Utc>,
    pub(crate) recurrence: Option<RecurrenceBody>,
}

#[utoipa::path(post, path = "/api/attendance/bookings", tag = "attendance", request_body = BookingRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 202, description = "Accepted; attendance enforces the venue's limits", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 403, description = "Members book for themselves", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid (named in `field`)", body = crate::openapi::ErrorBody),
    )
)]
pub async fn create_booking(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<BookingRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(create_booking_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

pub(crate) async fn create_booking_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<crate::ledger::Idempotency>,
    body: BookingRequest,
) -> Result<(Value, bool), GatewayError> {
    caller.require_member_or_operator(body.member_id.as_str(), "booking")?;
    if body.ends_at <= body.starts_at {
        return Err(GatewayError::invalid("ends_at", "ends_at must be after starts_at"));
    }
    if let Some(r) = &body.recurrence {
        one_of("recurrence.frequency", &r.frequency, &RECURRENCES)?;
        if !(1..=studyspot_attendance::decide::bookings::MAX_OCCURRENCES).contains(&r.count) {
            return Err(GatewayError::invalid("recurrence.count", "recurrence.count must be 1 to 52"));
        }
    }
    let booking_id = body.booking_id.map_or_else(|| new_id("bkg"), String::from);
    let command = schema::CreateBooking {
        metadata: metadata(caller),
        booking_id: booking_id.clone(),
        member_id: body.member_id.to_string(),
        venue_id: body.venue_id.into(),
        seat_id: body.seat_id.map(String::from),
        zone_id: body.zone_id.map(String::from),
        starts_at: ms(body.starts_at),
        ends_at: ms(body.ends_at),
        recurrence: body.recurrence.map(|r| Recurrence { frequency: r.frequency, count: r.count }),
    };
    let how = Accept {
        caller,
        trace,
        idempotency,
        aggregate: ("booking_id", booking_id),
        member_id: Some(body.member_id.as_str()),
    };
    accept(state, command, how).await
}

#[utoipa::path(post, path = "/api/attendance/bookings/{booking_id}/cancel", tag = "attendance",
    params(("booking_id" = String, Path, description = "The booking")),
    responses(
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 202, description = "Accepted; decided asynchronously", body = crate::openapi::Accepted),
        (status = 404, description = "No such booking visible to the caller", body = crate::openapi::ErrorBody),
    )
)]
pub async fn cancel_booking(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    PathId(booking_id): PathId<BookingId>,
) -> Result<Response, GatewayError> {
    Ok(answer(cancel_booking_with(&state, &caller, &trace, None, booking_id).await?))
}

pub(crate) async fn cancel_booking_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<crate::ledger::Idempotency>,
    booking_id: BookingId,
) -> Result<(Value, bool), GatewayError> {
    let booking_id = String::from(booking_id);
    let found =
        match reads::booking_owner(&state.readonly, caller.organization_id.as_str(), &booking_id).await {
            Err(e) if projection_missing(&e) => None,
            other => other?,
        };
    let (member_id, venue_id) = found
        .filter(|(member, _)| caller.may_see_member(Some(member)))
        .ok_or_else(|| GatewayError::NotFound(format!("booking {booking_id}")))?;
    let command = schema::CancelBooking {
        metadata: metadata(caller),
        booking_id: booking_id.clone(),
        member_id: member_id.clone(),
        venue_id,
    };
    let how = Accept {
        caller,
        trace,
        idempotency,
        aggregate: ("booking_id", booking_id),
        member_id: Some(&member_id),
    };
    accept(state, command, how).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRangeRequest {
    #[schema(value_type = String)]
    pub(crate) member_id: MemberId,
    #[schema(value_type = String)]
    pub(crate) venue_id: VenueId,
    /// Bookings starting at or after this …
    pub(crate) from: DateTime<Utc>,
    /// … and before this are cancelled.
    pub(crate) to: DateTime<Utc>,
}

#[utoipa::path(post, path = "/api/attendance/bookings/cancel", tag = "attendance", request_body = CancelRangeRequest,
    responses(
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 202, description = "Accepted; every booked booking of the member at the venue starting in [from, to) is cancelled", body = crate::openapi::Accepted),
        (status = 422, description = "A field is invalid (named in `field`)", body = crate::openapi::ErrorBody),
    )
)]
pub async fn cancel_bookings(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<CancelRangeRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(cancel_bookings_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

pub(crate) async fn cancel_bookings_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<crate::ledger::Idempotency>,
    body: CancelRangeRequest,
) -> Result<(Value, bool), GatewayError> {
    caller.require_member_or_operator(body.member_id.as_str(), "cancelling bookings")?;
    if body.to <= body.from {
        return Err(GatewayError::invalid("to", "to must be after from"));
    }
    let command = schema::CancelBookings {
        metadata: metadata(caller),
        member_id: body.member_id.to_string(),
        venue_id: body.venue_id.to_string(),
        from: ms(body.from),
        to: ms(body.to),
    };
    let how = Accept {
        caller,
        trace,
        idempotency,
        aggregate: ("venue_id", body.venue_id.into()),
        member_id: Some(body.member_id.as_str()),
    };
    accept(state, command, how).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckOutRequest {
    #[schema(value_type = String)]
    pub(crate) member_id: MemberId,
    /// Default: the venue of the member's open session.
    #[schema(value_type = Option<String>)]
    pub(crate) venue_id: Option<VenueId>,
    #[schema(value_type = Option<String>)]
    pub(crate) session_id: Option<SessionId>,
    /// manual (default) or, for staff, operator.
    pub(crate) reason: Option<String>,
}

#[utoipa::path(post, path = "/api/attendance/check-outs", tag = "attendance", request_body = CheckOutRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 202, description = "Accepted; the session completes with its duration", body = crate::openapi::Accepted),
        (status = 403, description = "Members check themselves out", body = crate::openapi::ErrorBody),
        (status = 404, description = "The member has no open session (when venue_id is not given)", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid (named in `field`)", body = crate::openapi::ErrorBody),
    )
)]
pub async fn check_out(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<CheckOutRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(check_out_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

pub(crate) async fn check_out_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<crate::ledger::Idempotency>,
    body: CheckOutRequest,
) -> Result<(Value, bool), GatewayError> {
    caller.require_member_or_operator(body.member_id.as_str(), "checking out")?;
    let reason = body.reason.unwrap_or_else(|| CHECK_OUT_REASONS[0].into());
    one_of("reason", &reason, &["manual", "operator"])?;
    if reason == "operator" {
        caller.require_operator("checking a member out as staff")?;
    }
    let session_id = body.session_id.map(String::from);
    let (venue_id, session_id) = match body.venue_id {
        Some(v) => (v.into(), session_id),
        None => {
            let open = match reads::open_session_of(
                &state.readonly,
                caller.organization_id.as_str(),
                body.member_id.as_str(),
            )
            .await
            {
                Err(e) if projection_missing(&e) => None,
                other => other?,
            };
            let (session, venue) = open.ok_or_else(|| {
                GatewayError::NotFound(format!("an open session of member {}", body.member_id))
            })?;
            (venue, session_id.or(Some(session)))
        }
    };
    let command = schema::CheckOut {
        metadata: metadata(caller),
        member_id: body.member_id.to_string(),
        venue_id: venue_id.clone(),
        session_id,
        reason,
        effective_at: None,
    };
    let how = Accept {
        caller,
        trace,
        idempotency,
        aggregate: ("venue_id", venue_id),
        member_id: Some(body.member_id.as_str()),
    };
    accept(state, command, how).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QrTokenRequest {
    /// member (shown by the member's app), seat (shown by a kiosk at the seat) or seat_code
    /// (printed; reusable until it expires).
    pub(crate) kind: String,
    #[schema(value_type = String)]
    pub(crate) venue_id: VenueId,
    #[schema(value_type = Option<String>)]
    pub(crate) seat_id: Option<SeatId>,
    #[schema(value_type = Option<String>)]
    pub(crate) member_id: Option<MemberId>,
}

#[utoipa::path(post, path = "/api/attendance/qr-tokens", tag = "attendance", request_body = QrTokenRequest,
    responses(
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 201, description = "A signed token: `token`, `expires_at`, `kind`"),
        (status = 403, description = "Members mint their own member tokens; seat tokens are for staff and kiosks", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid (named in `field`)", body = crate::openapi::ErrorBody),
    )
)]
pub async fn mint_qr_token(
    State(state): State<AppState>,
    caller: Caller,
    request: CommandRequest<QrTokenRequest>,
) -> Result<Response, GatewayError> {
    let minted = mint_qr_token_with(&state, &caller, request.body)?;
    Ok((StatusCode::CREATED, Json(minted)).into_response())
}

pub(crate) fn mint_qr_token_with(
    state: &AppState,
    caller: &Caller,
    body: QrTokenRequest,
) -> Result<Value, GatewayError> {
    one_of("kind", &body.kind, &["member", "seat", "seat_code"])?;
    let now = Utc::now();
    let issuer = &state.qr;
    let (kind, expires_at) = match body.kind.as_str() {
        "member" => {
            let member = body
                .member_id
                .as_ref()
                .map(MemberId::as_str)
                .ok_or_else(|| GatewayError::invalid("member_id", "a member token names its member"))?;
            caller.require_member_or_operator(member, "minting a member's token")?;
            (Kind::Member, now + chrono::Duration::seconds(issuer.ttl_secs))
        }
        kind => {
            caller.require_operator("minting seat tokens")?;
            if body.seat_id.is_none() {
                return Err(GatewayError::invalid("seat_id", "a seat token names its seat"));
            }
            if kind == "seat" {
                (Kind::Seat, now + chrono::Duration::seconds(issuer.ttl_secs))
            } else {
                (Kind::SeatCode, now + chrono::Duration::days(issuer.seat_code_ttl_days))
            }
        }
    };
    let claims = Claims {
        kind,
        organization_id: caller.organization_id.to_string(),
        venue_id: body.venue_id.to_string(),
        seat_id: body.seat_id.as_ref().map(SeatId::to_string),
        member_id: if kind == Kind::Member { body.member_id.as_ref().map(MemberId::to_string) } else { None },
        expires_at_ms: ms(expires_at),
        nonce: uuid::Uuid::now_v7().simple().to_string(),
    };
    metrics::counter!("studyspot_gateway_qr_tokens_minted_total", "kind" => body.kind.clone()).increment(1);
    Ok(json!({
        "token": issuer.sign(&claims)?,
        "kind": body.kind,
        "venue_id": body.venue_id,
        "seat_id": body.seat_id,
        "member_id": claims.member_id,
        "expires_at": expires_at,
    }))
}

#[utoipa::path(get, path = "/api/attendance/venues/{venue_id}/seats/{seat_id}/qr.svg", tag = "attendance",
    params(
        ("venue_id" = String, Path, description = "The venue"),
        ("seat_id" = String, Path, description = "One of its seats"),
    ),
    responses(
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 200, description = "A printable SVG QR code of the seat's reusable code (seat_code token)", content_type = "image/svg+xml"),
        (status = 403, description = "Only owners, staff and services print seat codes", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such venue or seat", body = crate::openapi::ErrorBody),
    )
)]
pub async fn seat_qr(
    State(state): State<AppState>,
    caller: Caller,
    Path((venue_id, seat_id)): Path<(String, String)>,
) -> Result<Response, GatewayError> {
    let venue_id: VenueId = parse("venue_id", &venue_id)?;
    let seat_id: SeatId = parse("seat_id", &seat_id)?;
    caller.require_operator("printing seat codes")?;
    let found =
        match reads::venue_seats(&state.readonly, caller.organization_id.as_str(), venue_id.as_str()).await {
            Err(e) if projection_missing(&e) => None,
            other => other?,
        };
    let seats = found.map(|(_, seats)| seats).unwrap_or_default();
    let known = seats.as_array().is_some_and(|s| s.iter().any(|s| s["seat_id"] == seat_id.as_str()));
    if !known {
        return Err(GatewayError::NotFound(format!("seat {seat_id} of venue {venue_id}")));
    }
    let body = QrTokenRequest { kind: "seat_code".into(), venue_id, seat_id: Some(seat_id), member_id: None };
    let minted = mint_qr_token_with(&state, &caller, body)?;
    let token = minted["token"].as_str().unwrap_or_default();
    let code =
        qrcode::QrCode::new(token.as_bytes()).map_err(|e| GatewayError::Internal(format!("QR code: {e}")))?;
    let svg = code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(256, 256).build();
    Ok(([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "no-store")], svg).into_response())
}

#[utoipa::path(get, path = "/api/attendance/occupancy", tag = "attendance",
    params(("venue_id" = Option<String>, Query, description = "Only this venue")),
    responses(
        (status = 200, description = "Per venue and zone: capacity and members present now", body = Vec<VenueOccupancy>),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown parameter", body = crate::openapi::ErrorBody),
    )
)]
pub async fn occupancy(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    Ok(Json(json!(occupancy_with(&state, &caller, query_values(params)?).await?)))
}

pub(crate) async fn occupancy_with(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<Vec<VenueOccupancy>, GatewayError> {
    only_params(&values, &["venue_id"])?;
    match reads::occupancy(
        &state.readonly,
        caller.organization_id.as_str(),
        values.get("venue_id").map(String::as_str),
    )
    .await
    {
        Err(e) if projection_missing(&e) => Ok(Vec::new()),
        other => Ok(other?),
    }
}

#[utoipa::path(get, path = "/api/attendance/analytics/dashboard", tag = "attendance",
    params(
        ("from" = Option<String>, Query, description = "RFC 3339; default 30 days before `to`"),
        ("to" = Option<String>, Query, description = "RFC 3339; default now"),
        ("venue_id" = Option<String>, Query, description = "Only this venue"),
    ),
    responses(
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 200, description = "Occupancy over time (hourly peaks), peak hours, average stay, overstays, bookings, no-shows, cancellations", body = AttendanceDashboard),
        (status = 403, description = "Only owners, staff and services see analytics", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
    )
)]
pub async fn dashboard(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    Ok(Json(json!(dashboard_with(&state, &caller, query_values(params)?).await?)))
}

pub(crate) async fn dashboard_with(
    state: &AppState,
    caller: &Caller,
    mut values: HashMap<String, String>,
) -> Result<AttendanceDashboard, GatewayError> {
    caller.require_operator("attendance analytics")?;
    let venue_id = values.remove("venue_id");
    let (from, to) = analytics_range(&values)?;
    match reads::dashboard(&state.readonly, caller.organization_id.as_str(), venue_id.as_deref(), from, to)
        .await
    {
        Err(e) if projection_missing(&e) => Ok(AttendanceDashboard {
            from,
            to,
            venues: Vec::new(),
            occupancy: Vec::new(),
            peak_hours: Vec::new(),
        }),
        other => Ok(other?),
    }
}
