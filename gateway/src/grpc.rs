//! The gRPC face of the gateway: the same operations as HTTP, through the same functions, with the
//! same token, organization, idempotency and rate-limit rules (metadata instead of headers).
//! Server reflection is on when `gateway.grpc_reflection` is (or in development mode): it lists
//! every service and message to anyone who asks, without a token.

use std::{pin::Pin, time::Duration};

use futures::Stream;
use sha2::{Digest, Sha256};
use studyspot_bus::TraceContext;
use studyspot_grpc_api::{self as pb, gateway_server::GatewayServer};
use tonic::{Request, Response, Status};

use crate::{
    AppState, BODY_LIMIT, GatewayError, attendance_routes,
    auth::{Authenticates, Caller, authenticate},
    billing, campaign_routes, commands,
    commands::{parse, parse_all, parse_opt},
    ledger::Idempotency,
    live, monitoring_insight_grpc as insight, monitoring_insight_routes as insight_routes,
    monitoring_ops_grpc as ops_grpc, monitoring_routes, notification_routes, queries, status, subscriptions,
};

pub struct GatewayService {
    state: AppState,
}

/// The gRPC services, as an axum router to serve beside the HTTP routes.
pub fn router(state: AppState, reflection: bool) -> Result<axum::Router, GatewayError> {
    let gateway = GatewayServer::new(GatewayService { state }).max_decoding_message_size(BODY_LIMIT);
    let mut routes = tonic::service::Routes::new(gateway);
    if reflection {
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| GatewayError::Startup(format!("gRPC reflection: {e}")))?;
        routes = routes.add_service(reflection);
    }
    Ok(routes.prepare().into_axum_router())
}

/// Who calls, with which trace and idempotency key: what an HTTP handler's extractors give it.
struct Prepared {
    caller: Caller,
    trace: TraceContext,
    idempotency: Option<Idempotency>,
}

impl GatewayService {
    fn prepare<M: prost::Message + serde::Serialize>(
        &self,
        request: &Request<M>,
        method: &str,
    ) -> Result<Prepared, GatewayError> {
        let headers = request.metadata().clone().into_headers();
        let caller = authenticate(&headers, self.state.verifier())?;
        self.state.admit(&caller)?;
        // Every method comes through here before its message becomes the HTTP operation's.
        crate::nul::check_message(request.get_ref())?;
        let trace = request.extensions().get::<TraceContext>().cloned().unwrap_or_else(TraceContext::root);
        let idempotency = match headers.get("idempotency-key") {
            None => None,
            Some(value) => {
                let key = commands::idempotency_key(value)?;
                let mut hash = Sha256::new();
                hash.update(format!("grpc {method}").as_bytes());
                hash.update([0]);
                hash.update(request.get_ref().encode_to_vec());
                Some(Idempotency { key, request_hash: hash.finalize().to_vec() })
            }
        };
        Ok(Prepared { caller, trace, idempotency })
    }
}

fn accepted((answer, replayed): (serde_json::Value, bool), field: &str) -> Response<pb::Accepted> {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    Response::new(pb::Accepted {
        command_id: text(&answer["command_id"]),
        status_url: text(&answer["status_url"]),
        aggregate_field: field.to_owned(),
        aggregate_id: text(&answer[field]),
        replayed,
    })
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

fn time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn tracking_dashboard(
    t: studyspot_notifications_projection::tracking::TrackingDashboard,
) -> pb::TrackingDashboard {
    use studyspot_notifications_projection::tracking::{KeyedTracking, TrackingCounts};
    let counts = |c: TrackingCounts| pb::TrackingCounts {
        sent: c.sent,
        delivered: c.delivered,
        undelivered: c.undelivered,
        bounced: c.bounced,
        opened: c.opened,
        opens: c.opens,
        clicked: c.clicked,
        clicks: c.clicks,
        open_rate: c.open_rate,
        click_rate: c.click_rate,
    };
    let keyed = |rows: Vec<KeyedTracking>| {
        rows.into_iter().map(|k| pb::KeyedTracking { key: k.key, counts: Some(counts(k.counts)) }).collect()
    };
    pb::TrackingDashboard {
        totals: Some(counts(t.totals)),
        by_channel: keyed(t.by_channel),
        by_template: keyed(t.by_template),
        by_campaign: keyed(t.by_campaign),
    }
}

fn campaign(c: studyspot_notifications_projection::campaign_reads::Campaign) -> pb::Campaign {
    let list = |key: &str| -> Vec<String> {
        c.segment[key]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let segment = pb::Segment {
        plan_ids: list("plan_ids"),
        subscription_statuses: list("subscription_statuses"),
        venue_ids: list("venue_ids"),
        attended_within_days: c.segment["attended_within_days"].as_i64().and_then(|d| i32::try_from(d).ok()),
        recipient_ids: list("recipient_ids"),
    };
    pb::Campaign {
        campaign_id: c.campaign_id,
        name: c.name,
        kind: c.kind,
        category: c.category,
        channel: c.channel,
        template_id: c.template_id,
        subject: c.subject,
        body: c.body,
        segment: Some(segment),
        send_at_local: c.send_at_local.map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string()),
        send_at: c.send_at.map(time),
        throttle_per_minute: c.throttle_per_minute,
        trigger: c.trigger,
        status: c.status,
        recipients: c.recipients,
        waiting: c.waiting,
        sent: c.sent,
        failed: c.failed,
        suppressed: c.suppressed,
        cancelled: c.cancelled,
        created_at: time(c.created_at),
        launched_at: c.launched_at.map(time),
        cancelled_at: c.cancelled_at.map(time),
    }
}

/// A list request as the HTTP query parameters it mirrors.
fn list_values(m: pb::ListRequest) -> std::collections::HashMap<String, String> {
    let mut values: std::collections::HashMap<String, String> = m.filters.into_iter().collect();
    if let Some(limit) = m.limit {
        values.insert("limit".into(), limit.to_string());
    }
    if let Some(cursor) = m.cursor {
        values.insert("cursor".into(), cursor);
    }
    values
}

fn payment(p: studyspot_billing_projection::Payment) -> pb::Payment {
    pb::Payment {
        payment_id: p.payment_id,
        member_id: p.member_id,
        amount_minor: p.amount_minor,
        currency: p.currency,
        method: p.method,
        description: p.description,
        status: p.status,
        created_at: time(p.created_at),
        updated_at: time(p.updated_at),
    }
}

fn invoice(i: studyspot_billing_projection::Invoice) -> pb::Invoice {
    pb::Invoice {
        invoice_id: i.invoice_id,
        member_id: i.member_id,
        number: i.number,
        currency: i.currency,
        subtotal_minor: i.subtotal_minor,
        tax_minor: i.tax_minor,
        total_minor: i.total_minor,
        amount_paid_minor: i.amount_paid_minor,
        status: i.status,
        due_at: time(i.due_at),
        created_at: time(i.created_at),
    }
}

/// An optional RFC 3339 time of a request; absent when empty.
fn parse_time(
    field: &str,
    value: Option<String>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, GatewayError> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(&v)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|_| GatewayError::invalid(field, format!("{field} must be an RFC 3339 time")))
        })
        .transpose()
}

fn plan(p: studyspot_billing_projection::subscription_reads::Plan) -> pb::Plan {
    let allowances = p
        .allowances
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| pb::PlanAllowance {
            metric: a["metric"].as_str().unwrap_or_default().to_owned(),
            included: a["included"].as_i64().unwrap_or_default(),
            overage_unit_minor: a["overage_unit_minor"].as_i64().unwrap_or_default(),
        })
        .collect();
    pb::Plan {
        plan_id: p.plan_id,
        version: p.version,
        name: p.name,
        tier: p.tier,
        cycle: p.cycle,
        price_minor: p.price_minor,
        currency: p.currency,
        trial_days: p.trial_days,
        tax_rate_bps: p.tax_rate_bps,
        allowances,
        created_at: time(p.created_at),
    }
}

fn subscription(s: studyspot_billing_projection::subscription_reads::Subscription) -> pb::Subscription {
    pb::Subscription {
        subscription_id: s.subscription_id,
        member_id: s.member_id,
        plan_id: s.plan_id,
        plan_version: s.plan_version,
        currency: s.currency,
        status: s.status,
        current_period_start: time(s.current_period_start),
        current_period_end: time(s.current_period_end),
        trial_end: s.trial_end.map(time),
        cancel_at_period_end: s.cancel_at_period_end,
        cancelled_at: s.cancelled_at.map(time),
        paused_at: s.paused_at.map(time),
        resume_at: s.resume_at.map(time),
        coupon_id: s.coupon_id,
        coupon_cycles_left: s.coupon_cycles_left,
        payment_method_id: s.payment_method_id,
        dunning_attempt: s.dunning_attempt,
        next_retry_at: s.next_retry_at.map(time),
        mrr_minor: s.mrr_minor,
        created_at: time(s.created_at),
        updated_at: time(s.updated_at),
    }
}

fn notification(n: studyspot_notifications_projection::Notification) -> pb::Notification {
    pb::Notification {
        notification_id: n.notification_id,
        recipient_id: n.recipient_id,
        channel: n.channel,
        category: n.category,
        subject: n.subject,
        body: n.body,
        status: n.status,
        created_at: time(n.created_at),
        reason: n.reason,
        not_before: n.not_before.map(time),
        attempts: n.attempts,
        sent_at: n.sent_at.map(time),
        failure_code: n.failure_code,
        failure_message: n.failure_message,
        template_id: n.template_id,
        template_version: n.template_version,
        locale: n.locale,
        critical: n.critical,
        transaction_id: n.transaction_id,
        updated_at: n.updated_at.map(time),
    }
}

fn status_counts(c: studyspot_notifications_projection::reads::StatusCounts) -> pb::StatusCounts {
    pb::StatusCounts {
        queued: c.queued,
        deferred: c.deferred,
        sent: c.sent,
        failed: c.failed,
        suppressed: c.suppressed,
        cancelled: c.cancelled,
        total: c.total,
        delivery_rate: c.delivery_rate,
    }
}

fn keyed_counts(rows: Vec<studyspot_notifications_projection::reads::KeyedCounts>) -> Vec<pb::KeyedCounts> {
    rows.into_iter().map(|r| pb::KeyedCounts { key: r.key, counts: Some(status_counts(r.counts)) }).collect()
}

/// A list of one subscription's records as the HTTP query parameters it mirrors.
fn subscription_list(m: pb::SubscriptionListRequest) -> (String, std::collections::HashMap<String, String>) {
    let values =
        list_values(pb::ListRequest { filters: Default::default(), limit: m.limit, cursor: m.cursor });
    (m.subscription_id, values)
}

#[tonic::async_trait]
impl pb::gateway_server::Gateway for GatewayService {
    async fn create_payment(
        &self,
        request: Request<pb::CreatePaymentRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "CreatePayment")?;
        let m = request.into_inner();
        let body = commands::CreatePaymentRequest {
            payment_id: parse_opt("payment_id", m.payment_id.as_deref())?,
            member_id: parse("member_id", &m.member_id)?,
            amount_minor: m.amount_minor,
            currency: parse("currency", &m.currency)?,
            method: parse("method", &m.method)?,
            description: m.description,
            invoice_id: parse_opt("invoice_id", m.invoice_id.as_deref())?,
            payment_method_id: parse_opt("payment_method_id", m.payment_method_id.as_deref())?,
        };
        let answer =
            commands::create_payment_with(&self.state, &p.caller, &p.trace, p.idempotency, body).await?;
        Ok(accepted(answer, "payment_id"))
    }

    async fn send_notification(
        &self,
        request: Request<pb::SendNotificationRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "SendNotification")?;
        let m = request.into_inner();
        let body = commands::SendNotificationRequest {
            notification_id: parse_opt("notification_id", m.notification_id.as_deref())?,
            recipient_id: parse("recipient_id", &m.recipient_id)?,
            channel: m.channel,
            category: m.category,
            subject: m.subject,
            body: m.body,
            template_id: parse_opt("template_id", m.template_id.as_deref())?,
            variables: m.variables.into_iter().collect(),
            locale: m.locale,
            critical: m.critical,
            transaction_id: parse_opt("transaction_id", m.transaction_id.as_deref())?,
            send_at: m
                .send_at
                .map(|t| {
                    t.parse().map_err(|_| GatewayError::invalid("send_at", "send_at is not an RFC 3339 time"))
                })
                .transpose()?,
            digest_key: m.digest_key,
            digest_window_secs: m.digest_window_secs,
            digest_at_local: m.digest_at_local,
        };
        let answer =
            commands::send_notification_with(&self.state, &p.caller, &p.trace, p.idempotency, body).await?;
        Ok(accepted(answer, "notification_id"))
    }

    async fn define_venue(
        &self,
        request: Request<pb::DefineVenueRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        use attendance_routes as a;
        let p = self.prepare(&request, "DefineVenue")?;
        let m = request.into_inner();
        let l = m.limits.unwrap_or_default();
        let body = a::VenueRequest {
            venue_id: parse_opt("venue_id", m.venue_id.as_deref())?,
            name: m.name,
            time_zone: m.time_zone,
            capacity: m.capacity,
            zones: m
                .zones
                .into_iter()
                .enumerate()
                .map(|(i, z)| {
                    let zone_id = parse(&format!("zones[{i}].zone_id"), &z.zone_id)?;
                    Ok(a::ZoneBody { zone_id, name: z.name, capacity: z.capacity })
                })
                .collect::<Result<_, GatewayError>>()?,
            seats: m
                .seats
                .into_iter()
                .enumerate()
                .map(|(i, s)| {
                    let seat_id = parse(&format!("seats[{i}].seat_id"), &s.seat_id)?;
                    let zone_id = parse_opt(&format!("seats[{i}].zone_id"), s.zone_id.as_deref())?;
                    Ok(a::SeatBody { seat_id, zone_id, label: s.label })
                })
                .collect::<Result<_, GatewayError>>()?,
            opening_hours: m
                .opening_hours
                .into_iter()
                .map(|h| a::OpeningHoursBody { weekday: h.weekday, opens: h.opens, closes: h.closes })
                .collect(),
            limits: a::LimitsBody {
                max_bookings_per_member: l.max_bookings_per_member,
                max_concurrent_bookings: l.max_concurrent_bookings,
                max_days_ahead: l.max_days_ahead,
                min_booking_minutes: l.min_booking_minutes,
                max_booking_minutes: l.max_booking_minutes,
                no_show_grace_minutes: l.no_show_grace_minutes,
                max_stay_minutes: l.max_stay_minutes,
            },
            qr_required: m.qr_required.unwrap_or(true),
        };
        let answer = a::define_venue_with(&self.state, &p.caller, &p.trace, p.idempotency, body).await?;
        Ok(accepted(answer, "venue_id"))
    }

    async fn grant_pass(
        &self,
        request: Request<pb::GrantPassRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "GrantPass")?;
        let m = request.into_inner();
        let required_time = |field: &str, v: String| {
            parse_time(field, Some(v))?
                .ok_or_else(|| GatewayError::invalid(field, format!("{field} is required")))
        };
        let body = attendance_routes::PassRequest {
            pass_id: parse_opt("pass_id", m.pass_id.as_deref())?,
            member_id: parse("member_id", &m.member_id)?,
            venue_id: parse("venue_id", &m.venue_id)?,
            valid_from: required_time("valid_from", m.valid_from)?,
            valid_until: required_time("valid_until", m.valid_until)?,
        };
        let answer =
            attendance_routes::grant_pass_with(&self.state, &p.caller, &p.trace, p.idempotency, body).await?;
        Ok(accepted(answer, "pass_id"))
    }

    async fn create_booking(
        &self,
        request: Request<pb::CreateBookingRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "CreateBooking")?;
        let m = request.into_inner();
        let required_time = |field: &str, v: String| {
            parse_time(field, Some(v))?
                .ok_or_else(|| GatewayError::invalid(field, format!("{field} is required")))
        };
        let body = attendance_routes::BookingRequest {
            booking_id: parse_opt("booking_id", m.booking_id.as_deref())?,
            member_id: parse("member_id", &m.member_id)?,
            venue_id: parse("venue_id", &m.venue_id)?,
            seat_id: parse_opt("seat_id", m.seat_id.as_deref())?,
            zone_id: parse_opt("zone_id", m.zone_id.as_deref())?,
            starts_at: required_time("starts_at", m.starts_at)?,
            ends_at: required_time("ends_at", m.ends_at)?,
            recurrence: m
                .recurrence
                .map(|r| attendance_routes::RecurrenceBody { frequency: r.frequency, count: r.count }),
        };
        let answer =
            attendance_routes::create_booking_with(&self.state, &p.caller, &p.trace, p.idempotency, body)
                .await?;
        Ok(accepted(answer, "booking_id"))
    }

    async fn cancel_booking(
        &self,
        request: Request<pb::CancelBookingRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "CancelBooking")?;
        let m = request.into_inner();
        let answer = attendance_routes::cancel_booking_with(
            &self.state,
            &p.caller,
            &p.trace,
            p.idempotency,
            parse("booking_id", &m.booking_id)?,
        )
        .await?;
        Ok(accepted(answer, "booking_id"))
    }

    async fn cancel_bookings(
        &self,
        request: Request<pb::CancelBookingsRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "CancelBookings")?;
        let m = request.into_inner();
        let required_time = |field: &str, v: String| {
            parse_time(field, Some(v))?
                .ok_or_else(|| GatewayError::invalid(field, format!("{field} is required")))
        };
        let body = attendance_routes::CancelRangeRequest {
            member_id: parse("member_id", &m.member_id)?,
            venue_id: parse("venue_id", &m.venue_id)?,
            from: required_time("from", m.from)?,
            to: required_time("to", m.to)?,
        };
        let answer =
            attendance_routes::cancel_bookings_with(&self.state, &p.caller, &p.trace, p.idempotency, body)
                .await?;
        Ok(accepted(answer, "venue_id"))
    }

    async fn check_out(
        &self,
        request: Request<pb::CheckOutRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "CheckOut")?;
        let m = request.into_inner();
        let body = attendance_routes::CheckOutRequest {
            member_id: parse("member_id", &m.member_id)?,
            venue_id: parse_opt("venue_id", m.venue_id.as_deref())?,
            session_id: parse_opt("session_id", m.session_id.as_deref())?,
            reason: m.reason,
        };
        let answer =
            attendance_routes::check_out_with(&self.state, &p.caller, &p.trace, p.idempotency, body).await?;
        Ok(accepted(answer, "venue_id"))
    }

    async fn mint_qr_token(
        &self,
        request: Request<pb::MintQrTokenRequest>,
    ) -> Result<Response<pb::QrToken>, Status> {
        let p = self.prepare(&request, "MintQrToken")?;
        let m = request.into_inner();
        let body = attendance_routes::QrTokenRequest {
            kind: m.kind,
            venue_id: parse("venue_id", &m.venue_id)?,
            seat_id: parse_opt("seat_id", m.seat_id.as_deref())?,
            member_id: parse_opt("member_id", m.member_id.as_deref())?,
        };
        let minted = attendance_routes::mint_qr_token_with(&self.state, &p.caller, body)?;
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        Ok(Response::new(pb::QrToken {
            token: text(&minted["token"]),
            kind: text(&minted["kind"]),
            expires_at: text(&minted["expires_at"]),
        }))
    }

    async fn get_occupancy(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::OccupancyList>, Status> {
        let p = self.prepare(&request, "GetOccupancy")?;
        let venues = attendance_routes::occupancy_with(
            &self.state,
            &p.caller,
            request.into_inner().filters.into_iter().collect(),
        )
        .await?;
        Ok(Response::new(pb::OccupancyList {
            venues: venues
                .into_iter()
                .map(|v| pb::VenueOccupancy {
                    venue_id: v.venue_id,
                    name: v.name,
                    capacity: v.capacity,
                    occupancy: v.occupancy,
                    zones: v
                        .zones
                        .into_iter()
                        .map(|z| pb::ZoneOccupancy {
                            zone_id: z.zone_id,
                            name: z.name,
                            capacity: z.capacity,
                            occupancy: z.occupancy,
                        })
                        .collect(),
                })
                .collect(),
        }))
    }

    async fn get_attendance_dashboard(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::AttendanceDashboard>, Status> {
        let p = self.prepare(&request, "GetAttendanceDashboard")?;
        let d = attendance_routes::dashboard_with(
            &self.state,
            &p.caller,
            request.into_inner().filters.into_iter().collect(),
        )
        .await?;
        Ok(Response::new(pb::AttendanceDashboard {
            from: time(d.from),
            to: time(d.to),
            venues: d
                .venues
                .into_iter()
                .map(|v| pb::VenueStats {
                    venue_id: v.venue_id,
                    check_ins: v.check_ins,
                    completed_sessions: v.completed_sessions,
                    average_stay_seconds: v.average_stay_seconds,
                    overstays: v.overstays,
                    bookings: v.bookings,
                    no_shows: v.no_shows,
                    cancellations: v.cancellations,
                })
                .collect(),
            occupancy: d
                .occupancy
                .into_iter()
                .map(|o| pb::OccupancyPoint { venue_id: o.venue_id, hour: time(o.hour), peak: o.peak })
                .collect(),
            peak_hours: d
                .peak_hours
                .into_iter()
                .map(|h| pb::PeakHour {
                    venue_id: h.venue_id,
                    hour_of_day: h.hour_of_day,
                    check_ins: h.check_ins,
                })
                .collect(),
        }))
    }

    async fn check_in(&self, request: Request<pb::CheckInRequest>) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "CheckIn")?;
        let m = request.into_inner();
        let body = commands::CheckInRequest {
            session_id: parse_opt("session_id", m.session_id.as_deref())?,
            member_id: parse("member_id", &m.member_id)?,
            venue_id: parse("venue_id", &m.venue_id)?,
            seat_id: parse_opt("seat_id", m.seat_id.as_deref())?,
            zone_id: parse_opt("zone_id", m.zone_id.as_deref())?,
            qr_token: m.qr_token,
        };
        let answer = commands::check_in_with(&self.state, &p.caller, &p.trace, p.idempotency, body).await?;
        Ok(accepted(answer, "session_id"))
    }

    async fn record_metric_sample(
        &self,
        request: Request<pb::RecordMetricSampleRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "RecordMetricSample")?;
        let m = request.into_inner();
        let body = commands::MetricSampleRequest {
            metric: m.metric,
            labels: m.labels.into_iter().collect(),
            value: m.value,
            sampled_at: m.sampled_at,
        };
        let answer =
            commands::record_metric_sample_with(&self.state, &p.caller, &p.trace, p.idempotency, body)
                .await?;
        Ok(accepted(answer, "metric"))
    }

    async fn get_command(
        &self,
        request: Request<pb::GetCommandRequest>,
    ) -> Result<Response<pb::CommandStatus>, Status> {
        let p = self.prepare(&request, "GetCommand")?;
        let m = request.into_inner();
        let wait = Duration::from_millis(u64::from(m.wait_ms.unwrap_or(0)));
        let body = status::status_with(&self.state, &p.caller, &m.command_id, wait).await?;
        let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
        Ok(Response::new(pb::CommandStatus {
            command_id: text(&body["command_id"]).unwrap_or_default(),
            command_type: text(&body["command_type"]).unwrap_or_default(),
            status: text(&body["status"]).unwrap_or_default(),
            accepted_at: text(&body["accepted_at"]).unwrap_or_default(),
            decided_at: text(&body["decided_at"]),
            events: body["events"].as_array().into_iter().flatten().filter_map(text).collect(),
            rejection_code: text(&body["rejection"]["code"]),
            rejection_reason: text(&body["rejection"]["reason"]),
            error_reason: text(&body["error"]["reason"]),
        }))
    }

    type StreamEventsStream = EventStream;

    async fn stream_events(
        &self,
        request: Request<pb::StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        let p = self.prepare(&request, "StreamEvents")?;
        let last = request.into_inner().last_event_id;
        let events = live::open(&self.state, p.caller, last.as_deref(), "last_event_id").await?;
        let stream = futures::stream::unfold(events, |mut events| async move {
            let e = events.recv().await?;
            Some((Ok(pb::Event { id: e.id, name: e.name, json: e.json }), events))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_payments(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::PaymentPage>, Status> {
        let p = self.prepare(&request, "ListPayments")?;
        let page = queries::payments_with(&self.state, &p.caller, list_values(request.into_inner())).await?;
        let items = page.items.into_iter().map(payment).collect();
        Ok(Response::new(pb::PaymentPage { items, next_cursor: page.next_cursor }))
    }

    async fn get_payment(
        &self,
        request: Request<pb::GetPaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let p = self.prepare(&request, "GetPayment")?;
        let id = request.into_inner().payment_id;
        Ok(Response::new(payment(queries::payment_with(&self.state, &p.caller, &id).await?)))
    }

    async fn list_notifications(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::NotificationPage>, Status> {
        let p = self.prepare(&request, "ListNotifications")?;
        let page =
            queries::notifications_with(&self.state, &p.caller, list_values(request.into_inner())).await?;
        let items = page.items.into_iter().map(notification).collect();
        Ok(Response::new(pb::NotificationPage { items, next_cursor: page.next_cursor }))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::SessionPage>, Status> {
        let p = self.prepare(&request, "ListSessions")?;
        let page = queries::sessions_with(&self.state, &p.caller, list_values(request.into_inner())).await?;
        let items = page
            .items
            .into_iter()
            .map(|s| pb::Session {
                session_id: s.session_id,
                member_id: s.member_id,
                venue_id: s.venue_id,
                seat_id: s.seat_id,
                checked_in_at: time(s.checked_in_at),
                checked_out_at: s.checked_out_at.map(time),
            })
            .collect();
        Ok(Response::new(pb::SessionPage { items, next_cursor: page.next_cursor }))
    }

    async fn list_metric_samples(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::MetricSamplePage>, Status> {
        let p = self.prepare(&request, "ListMetricSamples")?;
        let page =
            queries::metric_samples_with(&self.state, &p.caller, list_values(request.into_inner())).await?;
        let items = page
            .items
            .into_iter()
            .map(|s| pb::MetricSample {
                event_id: s.event_id,
                metric: s.metric,
                labels_json: s.labels.to_string(),
                value: s.value,
                sampled_at: time(s.sampled_at),
            })
            .collect();
        Ok(Response::new(pb::MetricSamplePage { items, next_cursor: page.next_cursor }))
    }

    async fn process_payment(
        &self,
        request: Request<pb::ProcessPaymentRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "ProcessPayment")?;
        let headers = request.metadata().clone().into_headers();
        let client = billing::PayerClient::of(
            &self.state.proxies,
            crate::client_address::peer(request.extensions()),
            &headers,
        );
        let m = request.into_inner();
        let body = billing::ProcessPaymentRequest {
            return_url: m.return_url,
            payer_email: m.payer_email,
            payer_phone: m.payer_phone,
            scan_qr: m.scan_qr,
        };
        let answer = billing::process_payment_with(
            &self.state,
            &p.caller,
            &p.trace,
            p.idempotency,
            parse("payment_id", &m.payment_id)?,
            body,
            client,
        )
        .await?;
        Ok(accepted(answer, "payment_id"))
    }

    async fn confirm_payment(
        &self,
        request: Request<pb::ConfirmPaymentRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "ConfirmPayment")?;
        let m = request.into_inner();
        let body = billing::ConfirmPaymentRequest { reference: m.reference };
        let answer = billing::confirm_payment_with(
            &self.state,
            &p.caller,
            &p.trace,
            p.idempotency,
            parse("payment_id", &m.payment_id)?,
            body,
        )
        .await?;
        Ok(accepted(answer, "payment_id"))
    }

    async fn refund_payment(
        &self,
        request: Request<pb::RefundPaymentRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "RefundPayment")?;
        let m = request.into_inner();
        let body = billing::RefundRequest {
            refund_id: parse_opt("refund_id", m.refund_id.as_deref())?,
            amount_minor: m.amount_minor,
            reason: m.reason,
        };
        let answer = billing::refund_payment_with(
            &self.state,
            &p.caller,
            &p.trace,
            p.idempotency,
            parse("payment_id", &m.payment_id)?,
            body,
        )
        .await?;
        Ok(accepted(answer, "refund_id"))
    }

    async fn add_payment_method(
        &self,
        request: Request<pb::AddPaymentMethodRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "AddPaymentMethod")?;
        let m = request.into_inner();
        let body = billing::AddPaymentMethodRequest {
            payment_method_id: parse_opt("payment_method_id", m.payment_method_id.as_deref())?,
            member_id: parse("member_id", &m.member_id)?,
            method: parse("method", &m.method)?,
            provider_token: m.provider_token,
            label: m.label,
            make_default: m.make_default,
        };
        let answer =
            billing::add_payment_method_with(&self.state, &p.caller, &p.trace, p.idempotency, body).await?;
        Ok(accepted(answer, "payment_method_id"))
    }

    async fn create_invoice(
        &self,
        request: Request<pb::CreateInvoiceRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "CreateInvoice")?;
        let m = request.into_inner();
        let due_at = chrono::DateTime::parse_from_rfc3339(&m.due_at)
            .map_err(|_| GatewayError::invalid("due_at", "due_at must be an RFC 3339 time"))?
            .with_timezone(&chrono::Utc);
        let body = billing::CreateInvoiceRequest {
            invoice_id: parse_opt("invoice_id", m.invoice_id.as_deref())?,
            member_id: parse("member_id", &m.member_id)?,
            currency: parse("currency", &m.currency)?,
            lines: m
                .lines
                .into_iter()
                .map(|l| billing::InvoiceLineRequest {
                    description: l.description,
                    quantity: l.quantity,
                    unit_amount_minor: l.unit_amount_minor,
                    tax_rate_bps: l.tax_rate_bps,
                    tax_name: l.tax_name,
                })
                .collect(),
            due_at,
            finalize: m.finalize,
        };
        let answer =
            billing::create_invoice_with(&self.state, &p.caller, &p.trace, p.idempotency, body).await?;
        Ok(accepted(answer, "invoice_id"))
    }

    async fn change_invoice_status(
        &self,
        request: Request<pb::ChangeInvoiceStatusRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "ChangeInvoiceStatus")?;
        let m = request.into_inner();
        let body = billing::InvoiceStatusRequest { status: m.status };
        let answer = billing::change_invoice_status_with(
            &self.state,
            &p.caller,
            &p.trace,
            p.idempotency,
            parse("invoice_id", &m.invoice_id)?,
            body,
        )
        .await?;
        Ok(accepted(answer, "invoice_id"))
    }

    async fn record_invoice_payment(
        &self,
        request: Request<pb::RecordInvoicePaymentRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "RecordInvoicePayment")?;
        let m = request.into_inner();
        let body = billing::InvoicePaymentRequest {
            payment_id: parse_opt("payment_id", m.payment_id.as_deref())?,
            method: m.method,
            amount_minor: m.amount_minor,
            reference: m.reference,
        };
        let answer = billing::record_invoice_payment_with(
            &self.state,
            &p.caller,
            &p.trace,
            p.idempotency,
            parse("invoice_id", &m.invoice_id)?,
            body,
        )
        .await?;
        Ok(accepted(answer, "payment_id"))
    }

    async fn list_refunds(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::RefundPage>, Status> {
        let p = self.prepare(&request, "ListRefunds")?;
        let page = billing::refunds_with(&self.state, &p.caller, list_values(request.into_inner())).await?;
        let items = page
            .items
            .into_iter()
            .map(|r| pb::Refund {
                refund_id: r.refund_id,
                payment_id: r.payment_id,
                member_id: r.member_id,
                amount_minor: r.amount_minor,
                currency: r.currency,
                status: r.status,
                provider_refund_id: r.provider_refund_id,
                failure_code: r.failure_code,
                created_at: time(r.created_at),
            })
            .collect();
        Ok(Response::new(pb::RefundPage { items, next_cursor: page.next_cursor }))
    }

    async fn list_invoices(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::InvoicePage>, Status> {
        let p = self.prepare(&request, "ListInvoices")?;
        let page = billing::invoices_with(&self.state, &p.caller, list_values(request.into_inner())).await?;
        let items = page.items.into_iter().map(invoice).collect();
        Ok(Response::new(pb::InvoicePage { items, next_cursor: page.next_cursor }))
    }

    async fn list_payment_methods(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::PaymentMethodPage>, Status> {
        let p = self.prepare(&request, "ListPaymentMethods")?;
        let page =
            billing::payment_methods_with(&self.state, &p.caller, list_values(request.into_inner())).await?;
        let items = page
            .items
            .into_iter()
            .map(|m| pb::PaymentMethod {
                payment_method_id: m.payment_method_id,
                member_id: m.member_id,
                method: m.method,
                label: m.label,
                is_default: m.is_default,
                created_at: time(m.created_at),
            })
            .collect();
        Ok(Response::new(pb::PaymentMethodPage { items, next_cursor: page.next_cursor }))
    }

    async fn get_payments_dashboard(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::PaymentsDashboard>, Status> {
        let p = self.prepare(&request, "GetPaymentsDashboard")?;
        let d = billing::payments_dashboard_with(
            &self.state,
            &p.caller,
            request.into_inner().filters.into_iter().collect(),
        )
        .await?;
        let rows = |rows: Vec<studyspot_billing_projection::reads::RevenueRow>| {
            rows.into_iter()
                .map(|r| pb::RevenueRow {
                    key: r.key,
                    currency: r.currency,
                    payments: r.payments,
                    amount_minor: r.amount_minor,
                    fees_minor: r.fees_minor,
                })
                .collect()
        };
        Ok(Response::new(pb::PaymentsDashboard {
            from: time(d.from),
            to: time(d.to),
            totals: d
                .totals
                .into_iter()
                .map(|t| pb::CurrencyTotals {
                    currency: t.currency,
                    succeeded: t.succeeded,
                    failed: t.failed,
                    success_rate: t.success_rate,
                    failure_rate: t.failure_rate,
                    revenue_minor: t.revenue_minor,
                    gateway_fees_minor: t.gateway_fees_minor,
                    processing_fees_minor: t.processing_fees_minor,
                    average_fee_minor: t.average_fee_minor,
                    refunds: t.refunds,
                    refunded_minor: t.refunded_minor,
                })
                .collect(),
            revenue_by_day: rows(d.revenue_by_day),
            revenue_by_method: rows(d.revenue_by_method),
            revenue_by_connector: rows(d.revenue_by_connector),
        }))
    }

    async fn define_plan(
        &self,
        request: Request<pb::DefinePlanRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "DefinePlan")?;
        let m = request.into_inner();
        let body = subscriptions::DefinePlanRequest {
            plan_id: parse_opt("plan_id", m.plan_id.as_deref())?,
            name: m.name,
            tier: parse("tier", &m.tier)?,
            cycle: parse("cycle", &m.cycle)?,
            price_minor: m.price_minor,
            currency: parse("currency", &m.currency)?,
            trial_days: m.trial_days,
            tax_rate_bps: m.tax_rate_bps,
            allowances: m
                .allowances
                .into_iter()
                .map(|a| subscriptions::PlanAllowanceRequest {
                    metric: a.metric,
                    included: a.included,
                    overage_unit_minor: a.overage_unit_minor,
                })
                .collect(),
        };
        let answer =
            subscriptions::define_plan_with(&self.state, &p.caller, &p.trace, p.idempotency, body).await?;
        Ok(accepted(answer, "plan_id"))
    }

    async fn define_coupon(
        &self,
        request: Request<pb::DefineCouponRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "DefineCoupon")?;
        let m = request.into_inner();
        let body = subscriptions::DefineCouponRequest {
            coupon_id: parse("coupon_id", &m.coupon_id)?,
            name: m.name,
            percent_off_bps: m.percent_off_bps,
            amount_off_minor: m.amount_off_minor,
            currency: parse_opt("currency", m.currency.as_deref())?,
            duration: m.duration,
            duration_cycles: m.duration_cycles,
        };
        let answer =
            subscriptions::define_coupon_with(&self.state, &p.caller, &p.trace, p.idempotency, body).await?;
        Ok(accepted(answer, "coupon_id"))
    }

    async fn run_billing(
        &self,
        request: Request<pb::RunBillingRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "RunBilling")?;
        let m = request.into_inner();
        let body = subscriptions::RunBillingRequest { up_to: parse_time("up_to", m.up_to)? };
        let answer =
            subscriptions::run_billing_with(&self.state, &p.caller, &p.trace, p.idempotency, body).await?;
        Ok(accepted(answer, "organization_id"))
    }

    async fn create_subscription(
        &self,
        request: Request<pb::CreateSubscriptionRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "CreateSubscription")?;
        let m = request.into_inner();
        let body = subscriptions::CreateSubscriptionRequest {
            subscription_id: parse_opt("subscription_id", m.subscription_id.as_deref())?,
            member_id: parse("member_id", &m.member_id)?,
            plan_id: parse("plan_id", &m.plan_id)?,
            effective_at: parse_time("effective_at", m.effective_at)?,
            trial_days: m.trial_days,
            paused: m.paused,
            resume_at: parse_time("resume_at", m.resume_at)?,
            coupon_id: parse_opt("coupon_id", m.coupon_id.as_deref())?,
            payment_method_id: parse_opt("payment_method_id", m.payment_method_id.as_deref())?,
        };
        let answer =
            subscriptions::create_subscription_with(&self.state, &p.caller, &p.trace, p.idempotency, body)
                .await?;
        Ok(accepted(answer, "subscription_id"))
    }

    async fn change_subscription_plan(
        &self,
        request: Request<pb::ChangeSubscriptionPlanRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "ChangeSubscriptionPlan")?;
        let m = request.into_inner();
        let body = subscriptions::ChangeSubscriptionPlanRequest {
            plan_id: parse("plan_id", &m.plan_id)?,
            proration: m.proration,
            effective_at: parse_time("effective_at", m.effective_at)?,
        };
        let answer = subscriptions::change_plan_with(
            &self.state,
            &p.caller,
            &p.trace,
            p.idempotency,
            parse("subscription_id", &m.subscription_id)?,
            body,
        )
        .await?;
        Ok(accepted(answer, "subscription_id"))
    }

    async fn pause_subscription(
        &self,
        request: Request<pb::PauseSubscriptionRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "PauseSubscription")?;
        let m = request.into_inner();
        let body = subscriptions::PauseSubscriptionRequest {
            resume_at: parse_time("resume_at", m.resume_at)?,
            effective_at: parse_time("effective_at", m.effective_at)?,
        };
        let answer = subscriptions::pause_with(
            &self.state,
            &p.caller,
            &p.trace,
            p.idempotency,
            parse("subscription_id", &m.subscription_id)?,
            body,
        )
        .await?;
        Ok(accepted(answer, "subscription_id"))
    }

    async fn resume_subscription(
        &self,
        request: Request<pb::ResumeSubscriptionRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "ResumeSubscription")?;
        let m = request.into_inner();
        let body = subscriptions::ResumeSubscriptionRequest {
            effective_at: parse_time("effective_at", m.effective_at)?,
        };
        let answer = subscriptions::resume_with(
            &self.state,
            &p.caller,
            &p.trace,
            p.idempotency,
            parse("subscription_id", &m.subscription_id)?,
            body,
        )
        .await?;
        Ok(accepted(answer, "subscription_id"))
    }

    async fn cancel_subscription(
        &self,
        request: Request<pb::CancelSubscriptionRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "CancelSubscription")?;
        let m = request.into_inner();
        let body = subscriptions::CancelSubscriptionRequest {
            at_period_end: m.at_period_end,
            prorate: m.prorate,
            reason: m.reason,
            effective_at: parse_time("effective_at", m.effective_at)?,
        };
        let answer = subscriptions::cancel_with(
            &self.state,
            &p.caller,
            &p.trace,
            p.idempotency,
            parse("subscription_id", &m.subscription_id)?,
            body,
        )
        .await?;
        Ok(accepted(answer, "subscription_id"))
    }

    async fn issue_credit_note(
        &self,
        request: Request<pb::IssueCreditNoteRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "IssueCreditNote")?;
        let m = request.into_inner();
        let body = subscriptions::IssueCreditNoteRequest {
            credit_note_id: parse_opt("credit_note_id", m.credit_note_id.as_deref())?,
            amount_minor: m.amount_minor,
            memo: m.memo,
        };
        let answer = subscriptions::issue_credit_note_with(
            &self.state,
            &p.caller,
            &p.trace,
            p.idempotency,
            parse("subscription_id", &m.subscription_id)?,
            body,
        )
        .await?;
        Ok(accepted(answer, "credit_note_id"))
    }

    async fn record_usage(
        &self,
        request: Request<pb::RecordUsageRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "RecordUsage")?;
        let m = request.into_inner();
        let body = subscriptions::RecordUsageRequest {
            usage_id: parse("usage_id", &m.usage_id)?,
            subscription_id: parse("subscription_id", &m.subscription_id)?,
            metric: m.metric,
            quantity: m.quantity,
            effective_at: parse_time("effective_at", m.effective_at)?,
        };
        let answer =
            subscriptions::record_usage_with(&self.state, &p.caller, &p.trace, p.idempotency, body).await?;
        Ok(accepted(answer, "usage_id"))
    }

    async fn list_plans(&self, request: Request<pb::ListRequest>) -> Result<Response<pb::PlanPage>, Status> {
        let p = self.prepare(&request, "ListPlans")?;
        let page =
            subscriptions::plans_with(&self.state, &p.caller, list_values(request.into_inner())).await?;
        let items = page.items.into_iter().map(plan).collect();
        Ok(Response::new(pb::PlanPage { items, next_cursor: page.next_cursor }))
    }

    async fn get_plan(
        &self,
        request: Request<pb::GetPlanRequest>,
    ) -> Result<Response<pb::PlanVersions>, Status> {
        let p = self.prepare(&request, "GetPlan")?;
        let id = request.into_inner().plan_id;
        let versions = subscriptions::plan_with(&self.state, &p.caller, &id).await?;
        Ok(Response::new(pb::PlanVersions { versions: versions.into_iter().map(plan).collect() }))
    }

    async fn list_coupons(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::CouponPage>, Status> {
        let p = self.prepare(&request, "ListCoupons")?;
        let page =
            subscriptions::coupons_with(&self.state, &p.caller, list_values(request.into_inner())).await?;
        let items = page
            .items
            .into_iter()
            .map(|c| pb::Coupon {
                coupon_id: c.coupon_id,
                name: c.name,
                percent_off_bps: c.percent_off_bps,
                amount_off_minor: c.amount_off_minor,
                currency: c.currency,
                duration: c.duration,
                duration_cycles: c.duration_cycles,
                created_at: time(c.created_at),
            })
            .collect();
        Ok(Response::new(pb::CouponPage { items, next_cursor: page.next_cursor }))
    }

    async fn list_subscriptions(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::SubscriptionPage>, Status> {
        let p = self.prepare(&request, "ListSubscriptions")?;
        let page =
            subscriptions::subscriptions_with(&self.state, &p.caller, list_values(request.into_inner()))
                .await?;
        let items = page.items.into_iter().map(subscription).collect();
        Ok(Response::new(pb::SubscriptionPage { items, next_cursor: page.next_cursor }))
    }

    async fn get_subscription(
        &self,
        request: Request<pb::GetSubscriptionRequest>,
    ) -> Result<Response<pb::Subscription>, Status> {
        let p = self.prepare(&request, "GetSubscription")?;
        let id = request.into_inner().subscription_id;
        Ok(Response::new(subscription(subscriptions::subscription_with(&self.state, &p.caller, &id).await?)))
    }

    async fn get_subscription_usage(
        &self,
        request: Request<pb::GetSubscriptionUsageRequest>,
    ) -> Result<Response<pb::SubscriptionUsage>, Status> {
        let p = self.prepare(&request, "GetSubscriptionUsage")?;
        let m = request.into_inner();
        let values = m.period_start.into_iter().map(|at| ("period_start".to_owned(), at)).collect();
        let usage = subscriptions::usage_with(&self.state, &p.caller, &m.subscription_id, values).await?;
        Ok(Response::new(pb::SubscriptionUsage {
            subscription_id: usage.subscription_id,
            period_start: time(usage.period_start),
            metrics: usage
                .metrics
                .into_iter()
                .map(|u| pb::MetricUsage {
                    metric: u.metric,
                    used: u.used,
                    included: u.included,
                    overage_unit_minor: u.overage_unit_minor,
                    percent_used: u.percent_used,
                })
                .collect(),
        }))
    }

    async fn list_subscription_invoices(
        &self,
        request: Request<pb::SubscriptionListRequest>,
    ) -> Result<Response<pb::InvoicePage>, Status> {
        let p = self.prepare(&request, "ListSubscriptionInvoices")?;
        let (id, values) = subscription_list(request.into_inner());
        let page = subscriptions::invoices_with(&self.state, &p.caller, &id, values).await?;
        let items = page.items.into_iter().map(invoice).collect();
        Ok(Response::new(pb::InvoicePage { items, next_cursor: page.next_cursor }))
    }

    async fn list_credit_notes(
        &self,
        request: Request<pb::SubscriptionListRequest>,
    ) -> Result<Response<pb::CreditNotePage>, Status> {
        let p = self.prepare(&request, "ListCreditNotes")?;
        let (id, values) = subscription_list(request.into_inner());
        let page = subscriptions::credit_notes_with(&self.state, &p.caller, &id, values).await?;
        let items = page
            .items
            .into_iter()
            .map(|c| pb::CreditNote {
                credit_note_id: c.credit_note_id,
                member_id: c.member_id,
                subscription_id: c.subscription_id,
                currency: c.currency,
                amount_minor: c.amount_minor,
                remaining_minor: c.remaining_minor,
                reason: c.reason,
                memo: c.memo,
                created_at: time(c.created_at),
            })
            .collect();
        Ok(Response::new(pb::CreditNotePage { items, next_cursor: page.next_cursor }))
    }

    async fn get_subscriptions_dashboard(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::SubscriptionsDashboard>, Status> {
        let p = self.prepare(&request, "GetSubscriptionsDashboard")?;
        let d = subscriptions::dashboard_with(
            &self.state,
            &p.caller,
            request.into_inner().filters.into_iter().collect(),
        )
        .await?;
        Ok(Response::new(pb::SubscriptionsDashboard {
            from: time(d.from),
            to: time(d.to),
            currencies: d
                .currencies
                .into_iter()
                .map(|c| pb::SubscriptionMetrics {
                    currency: c.currency,
                    mrr_minor: c.mrr_minor,
                    arr_minor: c.arr_minor,
                    mrr_from_minor: c.mrr_from_minor,
                    new_mrr_minor: c.new_mrr_minor,
                    churned_mrr_minor: c.churned_mrr_minor,
                    expansion_mrr_minor: c.expansion_mrr_minor,
                    contraction_mrr_minor: c.contraction_mrr_minor,
                    trialing: c.trialing,
                    active: c.active,
                    past_due: c.past_due,
                    paused: c.paused,
                    suspended: c.suspended,
                    cancelled: c.cancelled,
                    churn_rate: c.churn_rate,
                    net_revenue_retention: c.net_revenue_retention,
                    growth_rate: c.growth_rate,
                })
                .collect(),
        }))
    }

    async fn create_template(
        &self,
        request: Request<pb::CreateTemplateRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "CreateTemplate")?;
        let m = request.into_inner();
        let body = notification_routes::CreateTemplateRequest {
            template_id: parse_opt("template_id", m.template_id.as_deref())?,
            channel: m.channel,
            locale: m.locale,
            subject: m.subject,
            body: m.body,
            html: m.html,
            sample_variables: m.sample_variables.into_iter().collect(),
        };
        let answer =
            notification_routes::create_template_with(&self.state, &p.caller, &p.trace, p.idempotency, body)
                .await?;
        Ok(accepted(answer, "template_id"))
    }

    async fn preview_template(
        &self,
        request: Request<pb::PreviewTemplateRequest>,
    ) -> Result<Response<pb::RenderedTemplate>, Status> {
        let p = self.prepare(&request, "PreviewTemplate")?;
        let m = request.into_inner();
        let body = notification_routes::PreviewTemplateRequest {
            subject: m.subject,
            body: m.body,
            html: m.html,
            variables: m.variables.into_iter().collect(),
        };
        let rendered = notification_routes::preview_template_with(&p.caller, body).await?;
        Ok(Response::new(pb::RenderedTemplate {
            subject: rendered.subject,
            body: rendered.body,
            html: rendered.html,
        }))
    }

    async fn set_preferences(
        &self,
        request: Request<pb::SetPreferencesRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "SetPreferences")?;
        let m = request.into_inner();
        let body = notification_routes::SetPreferencesRequest {
            recipient_id: parse("recipient_id", &m.recipient_id)?,
            email: m.email,
            phone: m.phone,
            whatsapp: m.whatsapp,
            push_token: m.push_token,
            webhook_url: m.webhook_url,
            webhook_secret: m.webhook_secret,
            time_zone: m.time_zone,
            quiet_start: m.quiet_start,
            quiet_end: m.quiet_end,
            opted_out_channels: m.opted_out_channels,
            opted_out_categories: m.opted_out_categories,
            category_caps: m.category_caps.into_iter().collect(),
            daily_cap: m.daily_cap,
        };
        let answer =
            notification_routes::set_preferences_with(&self.state, &p.caller, &p.trace, p.idempotency, body)
                .await?;
        Ok(accepted(answer, "recipient_id"))
    }

    async fn cancel_notifications(
        &self,
        request: Request<pb::CancelNotificationsRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "CancelNotifications")?;
        let m = request.into_inner();
        let body = notification_routes::CancelNotificationsRequest {
            recipient_id: parse("recipient_id", &m.recipient_id)?,
            transaction_id: parse("transaction_id", &m.transaction_id)?,
        };
        let answer = notification_routes::cancel_notifications_with(
            &self.state,
            &p.caller,
            &p.trace,
            p.idempotency,
            body,
        )
        .await?;
        Ok(accepted(answer, "transaction_id"))
    }

    async fn get_notification(
        &self,
        request: Request<pb::GetNotificationRequest>,
    ) -> Result<Response<pb::Notification>, Status> {
        let p = self.prepare(&request, "GetNotification")?;
        let id = request.into_inner().notification_id;
        Ok(Response::new(notification(
            notification_routes::notification_with(&self.state, &p.caller, &id).await?,
        )))
    }

    async fn list_templates(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::TemplatePage>, Status> {
        let p = self.prepare(&request, "ListTemplates")?;
        let page =
            notification_routes::templates_with(&self.state, &p.caller, list_values(request.into_inner()))
                .await?;
        let items = page
            .items
            .into_iter()
            .map(|t| pb::Template {
                template_id: t.template_id,
                channel: t.channel,
                locale: t.locale,
                version: t.version,
                subject: t.subject,
                body: t.body,
                html: t.html,
                created_at: time(t.created_at),
            })
            .collect();
        Ok(Response::new(pb::TemplatePage { items, next_cursor: page.next_cursor }))
    }

    async fn get_preferences(
        &self,
        request: Request<pb::GetPreferencesRequest>,
    ) -> Result<Response<pb::Preferences>, Status> {
        let p = self.prepare(&request, "GetPreferences")?;
        let id = request.into_inner().recipient_id;
        let found = notification_routes::preferences_with(&self.state, &p.caller, &id).await?;
        let category_caps = found
            .category_caps
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(category, cap)| Some((category.clone(), i32::try_from(cap.as_i64()?).ok()?)))
            .collect();
        Ok(Response::new(pb::Preferences {
            recipient_id: found.recipient_id,
            email: found.email,
            phone: found.phone,
            whatsapp: found.whatsapp,
            push_token: found.push_token,
            webhook_url: found.webhook_url,
            webhook_secret_set: found.webhook_secret_set,
            time_zone: found.time_zone,
            quiet_start: found.quiet_start,
            quiet_end: found.quiet_end,
            opted_out_channels: found.opted_out_channels,
            opted_out_categories: found.opted_out_categories,
            category_caps,
            daily_cap: found.daily_cap,
            updated_at: time(found.updated_at),
        }))
    }

    async fn list_inbox(&self, request: Request<pb::ListRequest>) -> Result<Response<pb::InboxPage>, Status> {
        let p = self.prepare(&request, "ListInbox")?;
        let page = notification_routes::inbox_with(&self.state, &p.caller, list_values(request.into_inner()))
            .await?;
        let items = page
            .items
            .into_iter()
            .map(|m| pb::InboxMessage {
                notification_id: m.notification_id,
                category: m.category,
                subject: m.subject,
                body: m.body,
                html: m.html,
                status: m.status,
                not_before: m.not_before.map(time),
                sent_at: m.sent_at.map(time),
                created_at: time(m.created_at),
            })
            .collect();
        Ok(Response::new(pb::InboxPage { items, next_cursor: page.next_cursor }))
    }

    async fn create_campaign(
        &self,
        request: Request<pb::CreateCampaignRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "CreateCampaign")?;
        let m = request.into_inner();
        let segment = m.segment.unwrap_or_default();
        let body = campaign_routes::CreateCampaignRequest {
            campaign_id: parse_opt("campaign_id", m.campaign_id.as_deref())?,
            name: m.name,
            kind: m.kind,
            category: m.category,
            channel: m.channel,
            template_id: parse_opt("template_id", m.template_id.as_deref())?,
            subject: m.subject,
            body: m.body,
            variables: m.variables.into_iter().collect(),
            locale: m.locale,
            segment: campaign_routes::SegmentRequest {
                plan_ids: parse_all("segment.plan_ids", &segment.plan_ids)?,
                subscription_statuses: segment.subscription_statuses,
                venue_ids: parse_all("segment.venue_ids", &segment.venue_ids)?,
                attended_within_days: segment.attended_within_days,
                recipient_ids: parse_all("segment.recipient_ids", &segment.recipient_ids)?,
            },
            send_at_local: m.send_at_local,
            send_at: m
                .send_at
                .map(|t| {
                    t.parse().map_err(|_| GatewayError::invalid("send_at", "send_at is not an RFC 3339 time"))
                })
                .transpose()?,
            throttle_per_minute: m.throttle_per_minute,
            trigger: m.trigger,
        };
        let answer =
            campaign_routes::create_campaign_with(&self.state, &p.caller, &p.trace, p.idempotency, body)
                .await?;
        Ok(accepted(answer, "campaign_id"))
    }

    async fn launch_campaign(
        &self,
        request: Request<pb::CampaignRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "LaunchCampaign")?;
        let id = request.into_inner().campaign_id;
        let answer = campaign_routes::campaign_command_with(
            &self.state,
            &p.caller,
            &p.trace,
            p.idempotency,
            parse("campaign_id", &id)?,
            true,
        )
        .await?;
        Ok(accepted(answer, "campaign_id"))
    }

    async fn cancel_campaign(
        &self,
        request: Request<pb::CampaignRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "CancelCampaign")?;
        let id = request.into_inner().campaign_id;
        let answer = campaign_routes::campaign_command_with(
            &self.state,
            &p.caller,
            &p.trace,
            p.idempotency,
            parse("campaign_id", &id)?,
            false,
        )
        .await?;
        Ok(accepted(answer, "campaign_id"))
    }

    async fn get_campaign(
        &self,
        request: Request<pb::CampaignRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        let p = self.prepare(&request, "GetCampaign")?;
        let id = request.into_inner().campaign_id;
        Ok(Response::new(campaign(campaign_routes::campaign_with(&self.state, &p.caller, &id).await?)))
    }

    async fn list_campaigns(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::CampaignPage>, Status> {
        let p = self.prepare(&request, "ListCampaigns")?;
        let page = campaign_routes::campaigns_with(&self.state, &p.caller, list_values(request.into_inner()))
            .await?;
        let items = page.items.into_iter().map(campaign).collect();
        Ok(Response::new(pb::CampaignPage { items, next_cursor: page.next_cursor }))
    }

    async fn mark_notifications_read(
        &self,
        request: Request<pb::MarkNotificationsReadRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "MarkNotificationsRead")?;
        let body = campaign_routes::MarkReadRequest {
            notification_ids: parse_all("notification_ids", &request.into_inner().notification_ids)?,
        };
        let answer =
            campaign_routes::mark_read_with(&self.state, &p.caller, &p.trace, p.idempotency, body).await?;
        Ok(accepted(answer, "recipient_id"))
    }

    async fn send_notification_now(
        &self,
        request: Request<pb::GetNotificationRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "SendNotificationNow")?;
        let id = request.into_inner().notification_id;
        let answer = campaign_routes::send_now_with(
            &self.state,
            &p.caller,
            &p.trace,
            p.idempotency,
            parse("notification_id", &id)?,
        )
        .await?;
        Ok(accepted(answer, "notification_id"))
    }

    async fn get_notifications_dashboard(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::NotificationsDashboard>, Status> {
        let p = self.prepare(&request, "GetNotificationsDashboard")?;
        let d = notification_routes::dashboard_with(
            &self.state,
            &p.caller,
            request.into_inner().filters.into_iter().collect(),
        )
        .await?;
        Ok(Response::new(pb::NotificationsDashboard {
            from: time(d.from),
            to: time(d.to),
            totals: Some(status_counts(d.totals)),
            by_channel: keyed_counts(d.by_channel),
            by_category: keyed_counts(d.by_category),
            by_template: keyed_counts(d.by_template),
            breakdown: d
                .breakdown
                .into_iter()
                .map(|b| pb::BreakdownCounts {
                    channel: b.channel,
                    category: b.category,
                    template_id: b.template_id,
                    counts: Some(status_counts(b.counts)),
                })
                .collect(),
            tracking: Some(tracking_dashboard(d.tracking)),
        }))
    }

    async fn record_metric_samples(
        &self,
        request: Request<pb::RecordMetricSamplesRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "RecordMetricSamples")?;
        let samples = request
            .into_inner()
            .samples
            .into_iter()
            .map(|m| commands::MetricSampleRequest {
                metric: m.metric,
                labels: m.labels.into_iter().collect(),
                value: m.value,
                sampled_at: m.sampled_at,
            })
            .collect();
        let answer =
            monitoring_routes::record_samples_with(&self.state, &p.caller, &p.trace, p.idempotency, samples)
                .await?;
        Ok(accepted(answer, "metric"))
    }

    async fn define_alert_rule(
        &self,
        request: Request<pb::MonitoringCommandRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        self.monitoring_command(request, "DefineAlertRule", monitoring_routes::JsonCommand::Rule).await
    }

    async fn define_alert_route(
        &self,
        request: Request<pb::MonitoringCommandRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        self.monitoring_command(request, "DefineAlertRoute", monitoring_routes::JsonCommand::Route).await
    }

    async fn define_inhibit_rule(
        &self,
        request: Request<pb::MonitoringCommandRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        self.monitoring_command(request, "DefineInhibitRule", monitoring_routes::JsonCommand::InhibitRule)
            .await
    }

    async fn create_silence(
        &self,
        request: Request<pb::MonitoringCommandRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        self.monitoring_command(request, "CreateSilence", monitoring_routes::JsonCommand::Silence).await
    }

    async fn list_alert_rules(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::MonitoringItems>, Status> {
        self.monitoring_list(request, "ListAlertRules", monitoring_routes::List::Rules).await
    }

    async fn list_silences(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::MonitoringItems>, Status> {
        self.monitoring_list(request, "ListSilences", monitoring_routes::List::Silences).await
    }

    async fn list_active_alerts(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::MonitoringItems>, Status> {
        self.monitoring_list(request, "ListActiveAlerts", monitoring_routes::List::ActiveAlerts).await
    }

    async fn list_alert_history(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::MonitoringItems>, Status> {
        self.monitoring_list(request, "ListAlertHistory", monitoring_routes::List::History).await
    }

    async fn define_health_check(
        &self,
        request: Request<pb::DefineHealthCheckRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "DefineHealthCheck")?;
        let m = request.into_inner();
        let answer =
            ops_grpc::define_health_check(&self.state, &p.caller, &p.trace, p.idempotency, m).await?;
        Ok(accepted(answer, "health_check_id"))
    }

    async fn list_health_checks(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::HealthCheckPage>, Status> {
        let p = self.prepare(&request, "ListHealthChecks")?;
        Ok(Response::new(
            ops_grpc::health_checks(&self.state, &p.caller, list_values(request.into_inner())).await?,
        ))
    }

    async fn get_health_check(
        &self,
        request: Request<pb::HealthCheckRequest>,
    ) -> Result<Response<pb::HealthCheckDetail>, Status> {
        let p = self.prepare(&request, "GetHealthCheck")?;
        Ok(Response::new(ops_grpc::health_check_detail(&self.state, &p.caller, request.into_inner()).await?))
    }

    async fn record_logs(
        &self,
        request: Request<pb::RecordLogsRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "RecordLogs")?;
        let m = request.into_inner();
        let answer = ops_grpc::record_logs(&self.state, &p.caller, &p.trace, p.idempotency, m).await?;
        Ok(accepted(answer, "service"))
    }

    async fn search_logs(&self, request: Request<pb::ListRequest>) -> Result<Response<pb::LogPage>, Status> {
        let p = self.prepare(&request, "SearchLogs")?;
        Ok(Response::new(
            ops_grpc::search_logs(&self.state, &p.caller, list_values(request.into_inner())).await?,
        ))
    }

    async fn define_dashboard(
        &self,
        request: Request<pb::DefineDashboardRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "DefineDashboard")?;
        let m = request.into_inner();
        let answer = insight::define_dashboard(&self.state, &p.caller, &p.trace, p.idempotency, m).await?;
        Ok(accepted(answer, "dashboard_id"))
    }

    async fn list_dashboards(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::DashboardPage>, Status> {
        let p = self.prepare(&request, "ListDashboards")?;
        let views =
            insight_routes::dashboards_with(&self.state, &p.caller, list_values(request.into_inner()))
                .await?;
        let items = views.into_iter().map(insight::dashboard).collect::<Result<_, _>>()?;
        Ok(Response::new(pb::DashboardPage { items }))
    }

    async fn get_dashboard(
        &self,
        request: Request<pb::DashboardRequest>,
    ) -> Result<Response<pb::Dashboard>, Status> {
        let p = self.prepare(&request, "GetDashboard")?;
        let id = request.into_inner().dashboard_id;
        Ok(Response::new(insight::dashboard(
            insight_routes::dashboard_with(&self.state, &p.caller, &id).await?,
        )?))
    }

    async fn get_dashboard_data(
        &self,
        request: Request<pb::DashboardDataRequest>,
    ) -> Result<Response<pb::DashboardData>, Status> {
        let p = self.prepare(&request, "GetDashboardData")?;
        Ok(Response::new(insight::dashboard_data(&self.state, &p.caller, request.into_inner()).await?))
    }

    async fn define_report(
        &self,
        request: Request<pb::DefineReportRequest>,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, "DefineReport")?;
        let m = request.into_inner();
        let answer = insight::define_report(&self.state, &p.caller, &p.trace, p.idempotency, m).await?;
        Ok(accepted(answer, "report_id"))
    }

    async fn list_reports(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ReportPage>, Status> {
        let p = self.prepare(&request, "ListReports")?;
        let views =
            insight_routes::reports_with(&self.state, &p.caller, list_values(request.into_inner())).await?;
        let items = views.into_iter().map(|v| insight::report(v, Vec::new())).collect::<Result<_, _>>()?;
        Ok(Response::new(pb::ReportPage { items }))
    }

    async fn get_report(&self, request: Request<pb::ReportRequest>) -> Result<Response<pb::Report>, Status> {
        let p = self.prepare(&request, "GetReport")?;
        let id = request.into_inner().report_id;
        let (view, runs) = insight_routes::report_with(&self.state, &p.caller, &id).await?;
        Ok(Response::new(insight::report(view, runs)?))
    }

    async fn get_report_run_file(
        &self,
        request: Request<pb::ReportRunFileRequest>,
    ) -> Result<Response<pb::ReportRunFile>, Status> {
        let p = self.prepare(&request, "GetReportRunFile")?;
        Ok(Response::new(insight::report_run_file(&self.state, &p.caller, request.into_inner()).await?))
    }
}

/// Monitoring's gRPC operations share these: a JSON command body, a JSON item list.
impl GatewayService {
    async fn monitoring_command(
        &self,
        request: Request<pb::MonitoringCommandRequest>,
        operation: &'static str,
        command: monitoring_routes::JsonCommand,
    ) -> Result<Response<pb::Accepted>, Status> {
        let p = self.prepare(&request, operation)?;
        let body = request.into_inner().body_json;
        let (answer, field) = monitoring_routes::json_command_with(
            &self.state,
            &p.caller,
            &p.trace,
            p.idempotency,
            command,
            &body,
        )
        .await?;
        Ok(accepted(answer, field))
    }

    async fn monitoring_list(
        &self,
        request: Request<pb::ListRequest>,
        operation: &'static str,
        list: monitoring_routes::List,
    ) -> Result<Response<pb::MonitoringItems>, Status> {
        let p = self.prepare(&request, operation)?;
        let mut values = list_values(request.into_inner());
        // These lists are not paged: a cursor is refused as an unknown parameter.
        values.retain(|k, _| k != "cursor");
        let items_json = monitoring_routes::list_json_with(&self.state, &p.caller, list, values).await?;
        Ok(Response::new(pb::MonitoringItems { items_json }))
    }
}
