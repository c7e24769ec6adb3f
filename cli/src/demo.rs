//! `studyspot demo`: every domain at work in a fresh organization, through the gateway's HTTP API
//! as an app would use it, with the follow-on events each command caused read from the gateway's
//! live event stream (`GET /api/events/stream`).
//!
//! It sets up what the flows need (a venue open round the clock with seats, a member's e-mail
//! address and a receipt template, a plan, a cash payment method and a subscription, an alert
//! rule), then shows a check-in and check-out with the occupancy read back, the subscription's
//! invoice, its payment recorded by staff and the receipt e-mail caught by the local mail sink
//! (`studyspot mail-sink`, whose file it names), an alert firing and resolving, and one command
//! rejected on purpose. Any flow that does not succeed fails the demo (exit 1).

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use serde_json::{Value, json};
use studyspot_config::Settings;
use studyspot_tokens::{Claims, Role, mint};

/// Who a token is for and what it may do.
pub struct Grant {
    pub organization: Option<String>,
    pub roles: Vec<Role>,
    pub subject: String,
    pub member_id: Option<String>,
    pub scopes: Vec<String>,
}

/// A gateway token signed with the configured secret.
pub fn token(settings: &Settings, grant: Grant, ttl_seconds: u64) -> anyhow::Result<String> {
    let Grant { organization, roles, subject, member_id, scopes } = grant;
    anyhow::ensure!(
        ttl_seconds <= settings.auth.max_token_lifetime_secs,
        "--ttl-seconds {ttl_seconds} is longer than the gateway accepts (auth.max_token_lifetime_secs = {})",
        settings.auth.max_token_lifetime_secs
    );
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = Claims {
        sub: subject,
        org: organization,
        roles,
        member_id,
        iss: settings.auth.issuer.clone(),
        aud: settings.auth.audience.clone(),
        iat: now,
        exp: now + ttl_seconds,
        nbf: None,
        scope: (!scopes.is_empty()).then(|| scopes.join(" ")),
    };
    use secrecy::ExposeSecret;
    anyhow::ensure!(
        !settings.auth.hs256_secret.expose_secret().is_empty(),
        "auth.hs256_secret is not set, so HS256 is off and there is nothing to sign with: run \
         ./deploy/local/up (it writes $STUDYSPOT_HOME/secrets.toml), or name a secrets file with \
         STUDYSPOT_SECRETS_FILE"
    );
    Ok(mint(&settings.auth, &claims)?)
}

/// The demo's ids: a fresh organization each run, so the names inside it can be plain.
const VENUE: &str = "ven_hall";
const SEAT: &str = "seat_a1";
const MEMBER: &str = "mem_ada";
const NO_PLAN_MEMBER: &str = "mem_bob";
const PLAN: &str = "plan_desk";
const SUBSCRIPTION: &str = "sub_ada";
const RULE: &str = "rul_queue";
const METRIC: &str = "demo_front_desk_queue";

/// How long a command may take to be decided, and an event to arrive on the stream.
const DECIDED_WITHIN: Duration = Duration::from_secs(30);
/// The alerts scheduler evaluates every `alerts.evaluation_interval_secs` (15 s by default, 5 s on
/// the local stack).
const ALERT_WITHIN: Duration = Duration::from_secs(60);

/// Runs the demo against the gateway of `settings`; the receipt e-mail is looked for in `mail_dir`.
pub async fn run(settings: &Settings, mail_dir: &Path) -> anyhow::Result<()> {
    let gateway = format!("http://{}", settings.gateway.http_listen.replace("0.0.0.0:", "127.0.0.1:"));
    let run = format!("{:x}", SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis());
    let org = format!("org_demo_{run}");
    let staff = Grant {
        organization: Some(org.clone()),
        roles: vec![Role::Staff],
        subject: "user:demo".into(),
        member_id: None,
        scopes: Vec::new(),
    };
    let token = token(settings, staff, 900)?;
    let started = chrono::Utc::now();
    println!("StudySpot demo: organization {org} (a fresh one each run), gateway {gateway}");
    let api = Api {
        http: reqwest::Client::builder().timeout(Duration::from_secs(20)).build()?,
        gateway: gateway.clone(),
        token: token.clone(),
    };
    let events = Events::open(&gateway, &token).await?;

    section(
        "Set up: a venue open round the clock, a member who can be e-mailed, a plan, an alert rule and who it tells",
    );
    let all_week: Vec<Value> =
        (1..=7).map(|day| json!({ "weekday": day, "opens": "00:00", "closes": "24:00" })).collect();
    api.applied(
        &events,
        "/api/attendance/venues",
        json!({ "venue_id": VENUE, "name": "Reading Hall", "time_zone": "Europe/Berlin", "capacity": 30,
                "seats": [{ "seat_id": SEAT, "label": "A1" }, { "seat_id": "seat_a2", "label": "A2" }],
                "opening_hours": all_week }),
    )
    .await?;
    api.applied(
        &events,
        "/api/notifications/subscriptions",
        json!({ "recipient_id": MEMBER, "email": "ada@example.org", "time_zone": "Europe/Berlin" }),
    )
    .await?;
    api.applied(
        &events,
        "/api/notifications/templates",
        json!({ "template_id": "payment_receipt", "channel": "email", "subject": "Your receipt: {{ amount }}",
                "body": "Hello Ada, we received {{ amount }} ({{ method }}, payment {{ payment_id }}). Thank you!",
                "sample_variables": { "amount": "EUR 49.00", "method": "cash", "payment_id": "pay_1" } }),
    )
    .await?;
    api.applied(
        &events,
        "/api/subscriptions/plans",
        json!({ "plan_id": PLAN, "name": "Monthly desk", "tier": "basic", "cycle": "monthly",
                "price_minor": 4900, "currency": "EUR" }),
    )
    .await?;
    api.applied(
        &events,
        "/api/payments/methods",
        json!({ "payment_method_id": "pm_ada_cash", "member_id": MEMBER, "method": "cash", "make_default": true }),
    )
    .await?;
    api.applied(
        &events,
        "/api/subscriptions",
        json!({ "subscription_id": SUBSCRIPTION, "member_id": MEMBER, "plan_id": PLAN }),
    )
    .await?;
    api.applied(
        &events,
        "/api/monitoring/alerts",
        json!({ "rule_id": RULE, "name": "FrontDeskQueueLong", "metric": METRIC, "aggregation": "last",
                "window_seconds": 600, "op": ">", "threshold": 5, "severity": "warning",
                "annotations": { "summary": "More than 5 people wait at the front desk" } }),
    )
    .await?;
    api.applied(
        &events,
        "/api/monitoring/routes",
        json!({ "route_id": "rte_front_desk", "receivers": [{ "recipient_id": "op_front_desk", "channel": "in_app" }] }),
    )
    .await?;
    // The queue grows now, so the alert fires at the scheduler's next evaluation while the other
    // flows run.
    api.applied(
        &events,
        "/api/monitoring/metrics",
        json!({ "metric": METRIC, "labels": { "venue": VENUE }, "value": 8 }),
    )
    .await?;

    section("Billing: the subscription's invoice, paid at the front desk, and the receipt e-mail");
    let invoice = api
        .until(
            &format!("/api/subscriptions/{SUBSCRIPTION}/invoices"),
            "the subscription's first invoice, numbered",
            |b| b["items"][0]["number"].is_string().then(|| b["items"][0].clone()),
        )
        .await?;
    let invoice_id = text(&invoice["invoice_id"]);
    println!(
        "  invoice {} ({invoice_id}): {} {}, {}, due {}",
        text(&invoice["number"]),
        money(&invoice["total_minor"]),
        text(&invoice["currency"]),
        text(&invoice["status"]),
        text(&invoice["due_at"])
    );
    let issued = events
        .wait("InvoiceIssued of the invoice", |name, e| {
            name.ends_with("InvoiceIssued") && e["invoice_id"] == invoice_id.as_str()
        })
        .await?;
    print_event(&issued);
    api.applied(
        &events,
        &format!("/api/payments/invoices/{invoice_id}/payments"),
        json!({ "method": "cash", "reference": "front desk receipt 1" }),
    )
    .await?;
    let paid = api.get(&format!("/api/payments/invoices/{invoice_id}")).await?;
    anyhow::ensure!(paid["status"] == "paid", "the invoice is not paid after the payment: {paid}");
    println!(
        "  invoice {}: {}, {} paid",
        text(&paid["number"]),
        text(&paid["status"]),
        money(&paid["amount_paid_minor"])
    );
    let receipt = api
        .until(&format!("/api/notifications?recipient_id={MEMBER}"), "the receipt e-mail, sent", |b| {
            b["items"]
                .as_array()?
                .iter()
                .find(|n| n["template_id"] == "payment_receipt" && n["status"] == "sent")
                .cloned()
        })
        .await?;
    let notification_id = text(&receipt["notification_id"]);
    let sent = events
        .wait("NotificationSent of the receipt", |name, e| {
            name.ends_with("NotificationSent") && e["notification_id"] == notification_id.as_str()
        })
        .await?;
    print_event(&sent);
    let file = mail_file(mail_dir, &notification_id).await.with_context(|| {
        format!(
            "the receipt {notification_id} was sent, but no message in {} names it: is the notifications \
             consumer's e-mail channel pointed at `studyspot mail-sink` (STUDYSPOT_MAIL_DIR names its directory)?",
            mail_dir.display()
        )
    })?;
    println!("  receipt e-mail \"{}\" to ada@example.org: {}", text(&receipt["subject"]), file.display());

    section("Attendance: Ada checks in and out, occupancy read back");
    let checked_in =
        api.check_in(&events, json!({ "member_id": MEMBER, "venue_id": VENUE, "seat_id": SEAT })).await?;
    anyhow::ensure!(checked_in["status"] == "applied", "Ada's check-in: {checked_in}");
    let occupancy = api.occupancy(VENUE).await?;
    println!("  occupancy of Reading Hall: {occupancy} of 30");
    anyhow::ensure!(occupancy == 1, "occupancy {occupancy} after Ada's check-in, not 1");
    api.applied(&events, "/api/attendance/check-outs", json!({ "member_id": MEMBER, "venue_id": VENUE }))
        .await?;
    let occupancy = api.occupancy(VENUE).await?;
    println!("  occupancy of Reading Hall: {occupancy} of 30");
    anyhow::ensure!(occupancy == 0, "occupancy {occupancy} after Ada's check-out, not 0");

    section("Alerts: the front-desk queue alert fires, and resolves once the queue is short");
    let fired = events
        .wait_long("AlertFired (at the alerts scheduler's next evaluation)", ALERT_WITHIN, |name, e| {
            name.ends_with("AlertFired") && e["rule_id"] == RULE
        })
        .await?;
    print_event(&fired);
    api.applied(
        &events,
        "/api/monitoring/metrics",
        json!({ "metric": METRIC, "labels": { "venue": VENUE }, "value": 1 }),
    )
    .await?;
    let resolved = events
        .wait_long("AlertResolved (at the next evaluation)", ALERT_WITHIN, |name, e| {
            name.ends_with("AlertResolved") && e["rule_id"] == RULE
        })
        .await?;
    print_event(&resolved);
    // Switched off again: the scheduler evaluates every organization with an enabled rule, and the
    // demo makes a fresh organization each run.
    api.applied(
        &events,
        "/api/monitoring/alerts",
        json!({ "rule_id": RULE, "name": "FrontDeskQueueLong", "metric": METRIC, "aggregation": "last",
                "window_seconds": 600, "op": ">", "threshold": 5, "severity": "warning", "enabled": false,
                "annotations": { "summary": "More than 5 people wait at the front desk" } }),
    )
    .await?;

    section("Rejected on purpose: Bob has neither a subscription nor a pass");
    let refused = api
        .post(&events, "/api/attendance/check-ins", json!({ "member_id": NO_PLAN_MEMBER, "venue_id": VENUE }))
        .await?;
    anyhow::ensure!(
        refused["status"] == "rejected" && refused["rejection"]["code"] == "no_entitlement",
        "Bob's check-in was to be rejected no_entitlement: {refused}"
    );
    println!("  (this rejection is intended: a command the domain refuses is an event, not an error)");

    let cli = std::env::current_exe().map_or_else(|_| "studyspot".into(), |p| p.display().to_string());
    let since = started.format("%Y-%m-%dT%H:%M:%SZ");
    println!();
    println!("Every flow succeeded. What to try next:");
    println!("  TOKEN=$({cli} token --organization {org} --role staff)");
    println!("  curl -s {gateway}/api/attendance/occupancy -H \"authorization: Bearer $TOKEN\"");
    println!(
        "  curl -s {gateway}/api/subscriptions/{SUBSCRIPTION}/invoices -H \"authorization: Bearer $TOKEN\""
    );
    println!(
        "  curl -sN {gateway}/api/events/stream -H \"authorization: Bearer $TOKEN\"   # live events; Ctrl-C ends"
    );
    println!(
        "  {cli} replay -t studyspot.billing.events.v1 --from time:{since} --to now --organization {org}"
    );
    println!("  the receipt: {}", file.display());
    Ok(())
}

fn section(title: &str) {
    println!();
    println!("{title}");
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Minor units as a decimal amount.
fn money(minor: &Value) -> String {
    minor.as_i64().map_or_else(|| text(minor), |m| format!("{}.{:02}", m / 100, (m % 100).abs()))
}

/// The gateway, as an app calls it.
struct Api {
    http: reqwest::Client,
    gateway: String,
    token: String,
}

impl Api {
    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.gateway))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("GET {path}: is the gateway running at {}?", self.gateway))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        anyhow::ensure!(status.is_success(), "GET {path}: {status} {body}");
        Ok(body)
    }

    /// Polls `path` until `found` picks something out of the answer.
    async fn until(
        &self,
        path: &str,
        what: &str,
        found: impl Fn(&Value) -> Option<Value>,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + DECIDED_WITHIN;
        loop {
            let body = self.get(path).await?;
            if let Some(value) = found(&body) {
                return Ok(value);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{what}: not within {DECIDED_WITHIN:?} ({path}: {body})"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn occupancy(&self, venue: &str) -> anyhow::Result<i64> {
        let body = self.get(&format!("/api/attendance/occupancy?venue_id={venue}")).await?;
        body.as_array()
            .and_then(|venues| venues.iter().find(|v| v["venue_id"] == venue))
            .and_then(|v| v["occupancy"].as_i64())
            .with_context(|| format!("no occupancy of {venue}: {body}"))
    }

    /// Sends a command, waits until its domain decided it and prints the command, its outcome and
    /// the follow-on events it caused. Returns the command's status.
    async fn post(&self, events: &Events, path: &str, body: Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.gateway))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {path}: is the gateway running at {}?", self.gateway))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or_default();
        anyhow::ensure!(status.as_u16() == 202, "POST {path}: {status} {answer}");
        let status_url = answer["status_url"].as_str().context("a 202 without status_url")?;
        let deadline = Instant::now() + DECIDED_WITHIN;
        let outcome = loop {
            let outcome = self.get(&format!("{status_url}?wait=5s")).await?;
            if outcome["status"] != "accepted" {
                break outcome;
            }
            anyhow::ensure!(Instant::now() < deadline, "POST {path}: not decided within {DECIDED_WITHIN:?}");
        };
        let decided = text(&outcome["status"]);
        match outcome["rejection"].as_object() {
            Some(rejection) => println!(
                "→ POST {path:<42} 202  {decided}: {} ({})",
                text(&rejection["code"].clone()),
                text(&rejection["reason"].clone())
            ),
            None => println!("→ POST {path:<42} 202  {decided}"),
        }
        // The stream carries the domains' events; a command may also have written commands (to
        // its own domain or another), which are not on it.
        let ids: Vec<&str> =
            outcome["events"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let mut shown = 0;
        for id in &ids {
            let within = if shown == 0 { DECIDED_WITHIN } else { Duration::from_secs(2) };
            let is_it = |_: &str, e: &Value| e["metadata"]["event_id"] == *id;
            if let Ok(event) =
                events.wait_long(&format!("follow-on event {id} of POST {path}"), within, is_it).await
            {
                print_event(&event);
                shown += 1;
            }
        }
        anyhow::ensure!(
            ids.is_empty() || shown > 0,
            "POST {path}: none of its follow-on events {ids:?} on the event stream"
        );
        if shown < ids.len() {
            let more = ids.len() - shown;
            println!(
                "    (+{more} follow-on command{} for the domains to act on)",
                if more == 1 { "" } else { "s" }
            );
        }
        Ok(outcome)
    }

    /// [`Api::post`] that must be applied.
    async fn applied(&self, events: &Events, path: &str, body: Value) -> anyhow::Result<Value> {
        let outcome = self.post(events, path, body).await?;
        anyhow::ensure!(outcome["status"] == "applied", "POST {path} was not applied: {outcome}");
        Ok(outcome)
    }

    /// A check-in of a subscriber. Attendance learns of the subscription from billing's events, on
    /// its own time: the one refusal that means "not yet" (`no_entitlement`) is tried again, for a
    /// while, and said so.
    async fn check_in(&self, events: &Events, body: Value) -> anyhow::Result<Value> {
        let deadline = Instant::now() + DECIDED_WITHIN;
        loop {
            let outcome = self.post(events, "/api/attendance/check-ins", body.clone()).await?;
            if outcome["rejection"]["code"] != "no_entitlement" || Instant::now() > deadline {
                return Ok(outcome);
            }
            println!(
                "  (attendance has not seen the subscription from billing's events yet: again in a moment)"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// One event of the stream: the record's name and the record as JSON.
type Seen = (String, Value);

/// The organization's live follow-on events (`GET /api/events/stream`), collected as they come.
struct Events {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Why the stream ended, when it did.
    ended: Arc<Mutex<Option<String>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Events {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Events {
    async fn open(gateway: &str, token: &str) -> anyhow::Result<Self> {
        // No timeout: the stream stays open for the whole demo.
        let client = reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).build()?;
        let mut response = client
            .get(format!("{gateway}/api/events/stream"))
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("is the gateway running at {gateway}?"))?;
        anyhow::ensure!(
            response.status().is_success(),
            "GET /api/events/stream: {} {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let ended = Arc::new(Mutex::new(None));
        let reader = tokio::spawn({
            let (seen, ended) = (Arc::clone(&seen), Arc::clone(&ended));
            async move {
                let mut parser = SseParser::default();
                let why = loop {
                    match response.chunk().await {
                        Ok(Some(bytes)) => {
                            for (name, data) in parser.feed(&bytes) {
                                if let (Ok(json), Ok(mut seen)) = (serde_json::from_str(&data), seen.lock()) {
                                    seen.push((name, json));
                                }
                            }
                        }
                        Ok(None) => break "the gateway closed the event stream".to_owned(),
                        Err(e) => break format!("the event stream failed: {e}"),
                    }
                };
                if let Ok(mut ended) = ended.lock() {
                    *ended = Some(why);
                }
            }
        });
        Ok(Self { seen, ended, reader })
    }

    async fn wait(&self, what: &str, matches: impl Fn(&str, &Value) -> bool) -> anyhow::Result<Seen> {
        self.wait_long(what, DECIDED_WITHIN, matches).await
    }

    async fn wait_long(
        &self,
        what: &str,
        within: Duration,
        matches: impl Fn(&str, &Value) -> bool,
    ) -> anyhow::Result<Seen> {
        let deadline = Instant::now() + within;
        loop {
            let found = self
                .seen
                .lock()
                .ok()
                .and_then(|seen| seen.iter().find(|(name, json)| matches(name, json)).cloned());
            if let Some(found) = found {
                return Ok(found);
            }
            if let Some(why) = self.ended.lock().ok().and_then(|e| e.clone()) {
                anyhow::bail!("{what}: {why}");
            }
            anyhow::ensure!(Instant::now() < deadline, "{what}: not on the event stream within {within:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Server-Sent Events split out of a byte stream: (event name, data) of each complete event.
#[derive(Default)]
struct SseParser {
    buffer: Vec<u8>,
    name: String,
    data: String,
}

impl SseParser {
    fn feed(&mut self, bytes: &[u8]) -> Vec<(String, String)> {
        self.buffer.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    out.push((std::mem::take(&mut self.name), std::mem::take(&mut self.data)));
                }
                self.name.clear();
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.name = value.to_owned(),
                "data" => {
                    if !self.data.is_empty() {
                        self.data.push('\n');
                    }
                    self.data.push_str(value);
                }
                _ => {}
            }
        }
        out
    }
}

/// `← name  field=value …`: the record's own fields (not its metadata), on one line.
fn print_event((name, event): &Seen) {
    println!("    ← {:<34} {}", name.trim_start_matches("studyspot."), summary(event));
}

fn summary(event: &Value) -> String {
    const WIDTH: usize = 110;
    let Some(fields) = event.as_object() else { return event.to_string() };
    // Ids first: they say what the event is about.
    let mut fields: Vec<(&String, &Value)> = fields.iter().filter(|(key, _)| *key != "metadata").collect();
    fields.sort_by_key(|(key, _)| !key.ends_with("_id"));
    let mut line = String::new();
    for (key, value) in fields {
        let shown = match value {
            Value::Number(n) if is_instant(key) => n
                .as_i64()
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map_or_else(|| n.to_string(), |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            Value::Null => continue,
            Value::String(s) if s.is_empty() => continue,
            Value::Array(items) if items.is_empty() => continue,
            Value::Object(map) if map.is_empty() => continue,
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let shown: String =
            if shown.chars().count() > 40 { shown.chars().take(39).chain(['…']).collect() } else { shown };
        line.push_str(&format!("{key}={shown}  "));
    }
    let line = line.trim_end();
    if line.chars().count() > WIDTH {
        line.chars().take(WIDTH - 1).chain(['…']).collect()
    } else {
        line.to_owned()
    }
}

/// Whether a field holds an instant (milliseconds since the epoch in the records).
fn is_instant(key: &str) -> bool {
    ["_at", "_start", "_end", "_until", "_from"].iter().any(|suffix| key.ends_with(suffix))
}

/// The `.eml` file of `mail_dir` that names `notification_id` (its idempotency-key header), once
/// the mail sink has written it.
async fn mail_file(mail_dir: &Path, notification_id: &str) -> anyhow::Result<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut read: HashSet<PathBuf> = HashSet::new();
    loop {
        if let Ok(entries) = std::fs::read_dir(mail_dir) {
            for path in entries.filter_map(Result::ok).map(|e| e.path()) {
                if path.extension().is_none_or(|x| x != "eml") || read.contains(&path) {
                    continue;
                }
                let data = std::fs::read(&path).unwrap_or_default();
                if String::from_utf8_lossy(&data).contains(notification_id) {
                    return Ok(path);
                }
                read.insert(path);
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "not within 10 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::{SseParser, money, summary};

    #[test]
    fn server_sent_events_split_across_chunks_come_out_whole() {
        let mut parser = SseParser::default();
        assert!(parser.feed(b"id: 1\nevent: studyspot.billing.PaymentSucceeded\nda").is_empty());
        let out = parser.feed(b"ta: {\"a\":1}\n\n: keep-alive\n\nevent: x\r\ndata: 2\r\n\r\n");
        assert_eq!(
            out,
            vec![
                ("studyspot.billing.PaymentSucceeded".to_owned(), "{\"a\":1}".to_owned()),
                ("x".to_owned(), "2".to_owned())
            ]
        );
    }

    #[test]
    fn a_summary_leaves_out_metadata_and_empty_fields() {
        let event = serde_json::json!({ "metadata": { "event_id": "e" }, "payment_id": "pay_1",
                                        "amount_minor": 4900, "reason": null, "tags": [] });
        let line = summary(&event);
        let mut fields: Vec<&str> = line.split("  ").collect();
        fields.sort_unstable();
        assert_eq!(fields, ["amount_minor=4900", "payment_id=pay_1"], "{line}");
        assert_eq!(money(&serde_json::json!(4905)), "49.05");
    }
}
