//! Attendance through the gateway without consumers: venue, booking and check-out requests
//! checked field by field and by role, the exact Avro commands on the attendance topic (over HTTP
//! and gRPC), QR tokens that attendance's keys verify, a seat's printable QR code, and the
//! occupancy read.

#[allow(dead_code, reason = "the support module serves every test binary; this one uses part of it")]
mod support;

use reqwest::Method;
use serde_json::{Value, json};
use studyspot_bus::Codec;
use studyspot_grpc_api::{DefineVenueRequest, VenueOpeningHours, VenueZone, gateway_client::GatewayClient};
use studyspot_schemas::attendance;
use studyspot_tokens::Role;
use support::TestGateway;
use tonic::{Request, transport::Channel};

fn venue() -> Value {
    json!({
        "venue_id": "ven_1", "name": "Main library", "time_zone": "Europe/Berlin", "capacity": 40,
        "zones": [{ "zone_id": "quiet", "name": "Quiet room", "capacity": 10 }],
        "seats": [{ "seat_id": "q1", "zone_id": "quiet", "label": "Q1" }, { "seat_id": "h1" }],
        "opening_hours": [{ "weekday": 1, "opens": "08:00", "closes": "22:00" }],
        "limits": { "no_show_grace_minutes": 20, "max_stay_minutes": 600 },
    })
}

fn with(mut body: Value, path: &str, value: Value) -> Value {
    let parts: Vec<&str> = path.split('.').collect();
    let mut target = &mut body;
    for part in &parts[..parts.len() - 1] {
        target = match part.parse::<usize>() {
            Ok(n) => &mut target[n],
            Err(_) => &mut target[*part],
        };
    }
    target[parts[parts.len() - 1]] = value;
    body
}

async fn post(gw: &TestGateway, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let (status, _, answer) = TestGateway::send(gw.request(Method::POST, path, Some(token)).json(body)).await;
    (status, answer)
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_attendance_requests_name_the_field_and_roles_are_enforced() {
    let gw = TestGateway::start(|_| {}).await;
    let owner = gw.token(Some("org_1"), &[Role::Owner], None);
    let member = gw.token(Some("org_1"), &[Role::Member], Some("mem_1"));
    let cases: Vec<(&str, Value, &str)> = vec![
        ("/api/attendance/venues", with(venue(), "time_zone", json!("Mars/Olympus")), "time_zone"),
        ("/api/attendance/venues", with(venue(), "capacity", json!(0)), "capacity"),
        ("/api/attendance/venues", with(venue(), "zones.0.capacity", json!(41)), "zones[0].capacity"),
        ("/api/attendance/venues", with(venue(), "seats.1.zone_id", json!("loud")), "seats[1].zone_id"),
        (
            "/api/attendance/venues",
            with(venue(), "opening_hours.0.closes", json!("07:00")),
            "opening_hours[0].closes",
        ),
        // A venue without hours would be closed at every instant.
        ("/api/attendance/venues", with(venue(), "opening_hours", json!([])), "opening_hours"),
        (
            "/api/attendance/venues",
            {
                let mut v = venue();
                v.as_object_mut().expect("object").remove("opening_hours");
                v
            },
            "opening_hours",
        ),
        (
            "/api/attendance/venues",
            with(venue(), "limits.no_show_grace_minutes", json!(90)),
            "limits.no_show_grace_minutes",
        ),
        (
            "/api/attendance/bookings",
            json!({ "member_id": "mem_1", "venue_id": "ven_1", "starts_at": "2026-12-01T10:00:00Z", "ends_at": "2026-12-01T09:00:00Z" }),
            "ends_at",
        ),
        (
            "/api/attendance/bookings",
            json!({ "member_id": "mem_1", "venue_id": "ven_1", "starts_at": "2026-12-01T10:00:00Z",
                    "ends_at": "2026-12-01T11:00:00Z", "recurrence": { "frequency": "hourly", "count": 2 } }),
            "recurrence.frequency",
        ),
        ("/api/attendance/qr-tokens", json!({ "kind": "badge", "venue_id": "ven_1" }), "kind"),
        ("/api/attendance/qr-tokens", json!({ "kind": "seat", "venue_id": "ven_1" }), "seat_id"),
        (
            "/api/attendance/check-outs",
            json!({ "member_id": "mem_1", "venue_id": "ven_1", "reason": "bored" }),
            "reason",
        ),
    ];
    for (path, body, field) in cases {
        let (status, answer) = post(&gw, path, &owner, &body).await;
        assert_eq!(
            (status, answer["error"]["field"].as_str()),
            (422, Some(field)),
            "{path} {body}: {answer}"
        );
        assert_eq!(answer["error"]["code"], "validation_failed");
    }
    // Members do not define venues, mint seat tokens or act for others.
    assert_eq!(post(&gw, "/api/attendance/venues", &member, &venue()).await.0, 403);
    let seat = json!({ "kind": "seat", "venue_id": "ven_1", "seat_id": "q1" });
    assert_eq!(post(&gw, "/api/attendance/qr-tokens", &member, &seat).await.0, 403);
    let other = json!({ "kind": "member", "venue_id": "ven_1", "member_id": "mem_2" });
    assert_eq!(post(&gw, "/api/attendance/qr-tokens", &member, &other).await.0, 403);
    let booking = json!({ "member_id": "mem_2", "venue_id": "ven_1", "starts_at": "2026-12-01T10:00:00Z", "ends_at": "2026-12-01T11:00:00Z" });
    assert_eq!(post(&gw, "/api/attendance/bookings", &member, &booking).await.0, 403);
    assert!(gw.read_all(attendance::COMMANDS.name).is_empty(), "nothing refused reaches the topic");
}

#[tokio::test(flavor = "multi_thread")]
async fn venues_bookings_and_check_outs_become_commands_and_tokens_verify_with_attendances_keys() {
    let gw = TestGateway::start(|_| {}).await;
    let owner = gw.token(Some("org_1"), &[Role::Owner], None);
    let member = gw.token(Some("org_1"), &[Role::Member], Some("mem_1"));
    assert_eq!(post(&gw, "/api/attendance/venues", &owner, &venue()).await.0, 202);
    let booking = json!({
        "booking_id": "bkg_1", "member_id": "mem_1", "venue_id": "ven_1", "seat_id": "q1",
        "starts_at": "2026-12-07T09:00:00Z", "ends_at": "2026-12-07T11:00:00Z",
        "recurrence": { "frequency": "weekly", "count": 2 },
    });
    assert_eq!(post(&gw, "/api/attendance/bookings", &member, &booking).await.0, 202);
    let range = json!({ "member_id": "mem_1", "venue_id": "ven_1", "from": "2026-12-01T00:00:00Z", "to": "2026-12-31T00:00:00Z" });
    assert_eq!(post(&gw, "/api/attendance/bookings/cancel", &member, &range).await.0, 202);
    let out = json!({ "member_id": "mem_1", "venue_id": "ven_1" });
    assert_eq!(post(&gw, "/api/attendance/check-outs", &member, &out).await.0, 202);
    // Without a venue, the member's open session names it; there is none here.
    assert_eq!(
        post(&gw, "/api/attendance/check-outs", &member, &json!({ "member_id": "mem_1" })).await.0,
        404
    );

    let mut client = GatewayClient::new(
        Channel::from_shared(gw.base.clone()).expect("uri").connect().await.expect("connect"),
    );
    let mut request = Request::new(DefineVenueRequest {
        venue_id: Some("ven_2".into()),
        name: "Annex".into(),
        time_zone: "Asia/Kolkata".into(),
        capacity: 8,
        zones: vec![VenueZone { zone_id: "z".into(), name: "Z".into(), capacity: 4 }],
        opening_hours: vec![VenueOpeningHours { weekday: 2, opens: "09:00".into(), closes: "18:00".into() }],
        ..Default::default()
    });
    request.metadata_mut().insert("authorization", format!("Bearer {owner}").parse().expect("metadata"));
    let accepted = client.define_venue(request).await.expect("accepted").into_inner();
    assert_eq!((accepted.aggregate_field.as_str(), accepted.aggregate_id.as_str()), ("venue_id", "ven_2"));

    let codec = Codec::new(&gw.settings.registry.url).expect("codec");
    let mut types = Vec::new();
    for record in gw.read_all(attendance::COMMANDS.name) {
        let decoded = codec.decode(record.payload.as_deref().expect("payload")).await.expect("decode");
        types.push(decoded.full_name.clone());
        if decoded.full_name == "studyspot.attendance.CreateBooking" {
            let b: attendance::CreateBooking = decoded.into_record().expect("a booking");
            assert_eq!(b.recurrence.map(|r| (r.frequency, r.count)), Some(("weekly".into(), 2)));
            assert_eq!(b.seat_id.as_deref(), Some("q1"));
        } else if decoded.full_name == "studyspot.attendance.DefineVenue" {
            let v: attendance::DefineVenue = decoded.into_record().expect("a venue");
            assert!(v.qr_required, "venues require QR tokens unless told otherwise");
        }
    }
    // Keyed by venue: each venue's commands in order, venues in any order.
    types.sort();
    assert_eq!(
        types,
        [
            "studyspot.attendance.CancelBookings",
            "studyspot.attendance.CheckOut",
            "studyspot.attendance.CreateBooking",
            "studyspot.attendance.DefineVenue",
            "studyspot.attendance.DefineVenue",
        ]
    );

    // A member's token verifies with the keys attendance is configured with.
    let (status, minted) = post(
        &gw,
        "/api/attendance/qr-tokens",
        &member,
        &json!({ "kind": "member", "venue_id": "ven_1", "member_id": "mem_1" }),
    )
    .await;
    assert_eq!(status, 201, "{minted}");
    let keys = studyspot_attendance_keys(&gw.settings);
    let claims = keys
        .verify(minted["token"].as_str().expect("token"), chrono::Utc::now().timestamp_millis())
        .expect("valid");
    assert_eq!((claims.member_id.as_deref(), claims.venue_id.as_str()), (Some("mem_1"), "ven_1"));
}

fn studyspot_attendance_keys(settings: &studyspot_config::Settings) -> studyspot_qr_tokens::Keys {
    use secrecy::ExposeSecret;
    let qr = &settings.attendance.qr;
    studyspot_qr_tokens::Keys::new(
        &qr.signing_key_id,
        qr.keys.iter().map(|(id, s)| (id.clone(), s.expose_secret().as_bytes().to_vec())),
    )
    .expect("keys")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seat_prints_as_an_svg_qr_code_and_occupancy_is_read_per_zone() {
    let gw = TestGateway::start(|_| {}).await;
    let owner = gw.token(Some("org_1"), &[Role::Owner], None);
    let mut db = gw.projection("attendance", &studyspot_attendance_projection::MIGRATIONS).await;
    let at = chrono::Utc::now();
    studyspot_attendance_projection::write::save_venue(
        &mut db,
        &studyspot_attendance_projection::write::VenueRow {
            organization_id: "org_1".into(),
            venue_id: "ven_1".into(),
            name: "Main".into(),
            time_zone: "Europe/Berlin".into(),
            capacity: 40,
            zones: json!([{ "zone_id": "quiet", "name": "Quiet", "capacity": 10 }]),
            seats: json!([{ "seat_id": "q1", "zone_id": "quiet", "label": "Q1" }]),
            opening_hours: json!([]),
            limits: json!({}),
            qr_required: true,
            version: 1,
            updated_at: at,
        },
    )
    .await
    .expect("venue");
    let session = studyspot_attendance_projection::Session {
        session_id: "ses_1".into(),
        organization_id: "org_1".into(),
        member_id: "mem_1".into(),
        venue_id: "ven_1".into(),
        seat_id: Some("q1".into()),
        checked_in_at: at,
        checked_out_at: None,
    };
    let extra = studyspot_attendance_projection::write::SessionExtra {
        zone_id: Some("quiet".into()),
        ..Default::default()
    };
    assert!(
        studyspot_attendance_projection::write::open_session(&mut db, &session, &extra)
            .await
            .expect("session")
    );

    let response = gw
        .request(Method::GET, "/api/attendance/venues/ven_1/seats/q1/qr.svg", Some(&owner))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/svg+xml");
    let svg = response.text().await.expect("svg");
    assert!(svg.contains("<svg") && svg.contains("</svg>"), "{}", &svg[..svg.len().min(200)]);
    let (status, _, _) = TestGateway::send(gw.request(
        Method::GET,
        "/api/attendance/venues/ven_1/seats/zz/qr.svg",
        Some(&owner),
    ))
    .await;
    assert_eq!(status, 404);

    let (status, _, body) =
        TestGateway::send(gw.request(Method::GET, "/api/attendance/occupancy", Some(&owner))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["occupancy"], 1);
    assert_eq!(body[0]["zones"][0]["zone_id"], "quiet");
    assert_eq!(body[0]["zones"][0]["occupancy"], 1);
    let (status, _, body) =
        TestGateway::send(gw.request(Method::GET, "/api/attendance/occupancy?floor=2", Some(&owner))).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("floor")));
}
