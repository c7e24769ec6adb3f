//! The providers the soak and the system benchmark point the consumers at: a fake Stripe that
//! honours idempotency keys the way Stripe does (a repeated key answers the first intent again and
//! charges nothing), an SMTP sink and a webhook receiver. Each keeps what reached it, so the
//! checker can count effects outside the system: charges per payment, messages per notification.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use axum::{
    Form, Json,
    extract::{ConnectInfo, Path, Query, State, connect_info::Connected},
    http::{HeaderMap, StatusCode},
    routing::{get, post},
    serve::IncomingStream,
};
use serde_json::Value;
use studyspot_mail_sink::SmtpSink;

const INTENT: &str =
    include_str!("../../../consumers/billing/tests/fixtures/stripe_payment_intent_succeeded.json");

/// One PaymentIntent the fake Stripe created (a repeated idempotency key creates none).
#[derive(Clone, Debug)]
pub struct Charge {
    pub idempotency_key: String,
    pub payment_id: String,
    pub amount_minor: i64,
}

#[derive(Default)]
struct StripeBook {
    /// Idempotency key → the intent answered for it.
    by_key: HashMap<String, Value>,
    /// Intent id → intent, for fetches.
    by_id: HashMap<String, Value>,
    charges: Vec<Charge>,
    replays: usize,
}

#[derive(Clone)]
pub struct FakeStripe {
    pub url: String,
    book: Arc<Mutex<StripeBook>>,
}

impl FakeStripe {
    pub async fn start() -> anyhow::Result<Self> {
        let template: Value = serde_json::from_str(INTENT)?;
        let book = Arc::new(Mutex::new(StripeBook::default()));
        let app = axum::Router::new()
            .route("/v1/payment_intents", post(create_intent))
            .route("/v1/payment_intents/search", get(search_intents))
            .route("/v1/payment_intents/{id}", get(fetch_intent))
            .with_state((book.clone(), Arc::new(template)));
        let url = format!("{}/", serve(app).await?);
        Ok(Self { url, book })
    }

    pub fn charges(&self) -> Vec<Charge> {
        self.book.lock().map(|b| b.charges.clone()).unwrap_or_default()
    }

    /// Requests that repeated an idempotency key (a provider call retried after a crash).
    pub fn replays(&self) -> usize {
        self.book.lock().map(|b| b.replays).unwrap_or_default()
    }
}

type StripeState = (Arc<Mutex<StripeBook>>, Arc<Value>);

async fn create_intent(
    State((book, template)): State<StripeState>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Json<Value>, StatusCode> {
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or(StatusCode::BAD_REQUEST)?;
    let mut book = book.lock().map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    if let Some(intent) = book.by_key.get(&key).cloned() {
        book.replays += 1;
        return Ok(Json(intent));
    }
    let amount = field("amount").and_then(|a| a.parse::<i64>().ok()).unwrap_or(0);
    let payment_id = field("metadata[payment_id]").unwrap_or_default();
    let mut intent = (*template).clone();
    let id = format!("pi_soak_{}", book.charges.len());
    intent["id"] = id.clone().into();
    intent["amount"] = amount.into();
    intent["amount_received"] = amount.into();
    if let Some(currency) = field("currency") {
        intent["currency"] = currency.into();
    }
    let organization_id = field("metadata[organization_id]").unwrap_or_default();
    intent["metadata"] = serde_json::json!({ "payment_id": payment_id, "organization_id": organization_id });
    book.charges.push(Charge { idempotency_key: key.clone(), payment_id, amount_minor: amount });
    book.by_key.insert(key, intent.clone());
    book.by_id.insert(id, intent.clone());
    Ok(Json(intent))
}

async fn fetch_intent(
    State((book, _)): State<StripeState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, StatusCode> {
    let book = book.lock().map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    book.by_id.get(&id).cloned().map(Json).ok_or(StatusCode::NOT_FOUND)
}

/// `query=metadata['payment_id']:'pay_…' AND metadata['organization_id']:'org_…'`: the intents
/// created for that payment of that organization (each clause is matched when present).
async fn search_intents(
    State((book, _)): State<StripeState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, StatusCode> {
    let clauses: Vec<(String, String)> = query
        .get("query")
        .map(|q| {
            q.split(" AND ")
                .filter_map(|clause| {
                    let (key, value) = clause.split_once("]:'")?;
                    let key = key.trim_start_matches("metadata['").trim_end_matches('\'');
                    Some((key.to_owned(), value.trim_end_matches('\'').to_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    let book = book.lock().map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    let data: Vec<Value> = book
        .by_id
        .values()
        .filter(|i| {
            !clauses.is_empty() && clauses.iter().all(|(k, v)| i["metadata"][k.as_str()] == v.as_str())
        })
        .cloned()
        .collect();
    Ok(Json(serde_json::json!({ "object": "search_result", "data": data, "has_more": false })))
}

/// One webhook received: its `webhook-id`, the recipient, when it arrived and when its connection
/// was accepted.
type Hooks = Arc<Mutex<Vec<(String, String, Instant, Instant)>>>;

/// When the webhook receiver accepted a connection (reqwest keeps connections alive, so one
/// carries many requests).
#[derive(Clone, Copy)]
struct Accepted(Instant);

impl Connected<IncomingStream<'_, tokio::net::TcpListener>> for Accepted {
    fn connect_info(_: IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Accepted(Instant::now())
    }
}

/// Messages at the SMTP sink and the webhook receiver, by the organization and notification their
/// idempotency key names (`X-StudySpot-Idempotency-Key`, `webhook-id`: see
/// `studyspot_notification_channels::message_key`).
pub struct Mailroom {
    pub smtp: SmtpSink,
    pub webhook_base: String,
    webhooks: Hooks,
}

/// One message that reached a channel: the organization and notification its key names
/// (notification ids are unique only within an organization), the recipient address, the
/// channel, the id the recipient's client tells copies apart by (`Message-ID`, `webhook-id`),
/// when it arrived, and when the connection that carried it was accepted (the sender was alive
/// then). A key that names no (organization, notification) is kept whole as the notification id,
/// with no organization.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Delivered {
    pub organization_id: String,
    pub notification_id: String,
    pub recipient: String,
    pub channel: &'static str,
    pub message_id: String,
    pub at: Instant,
    pub connected_at: Instant,
}

impl Mailroom {
    pub async fn start() -> anyhow::Result<Self> {
        let smtp = SmtpSink::accepting().await;
        let webhooks = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route(
                "/hooks/{recipient}",
                post(
                    |State(seen): State<Hooks>,
                     ConnectInfo(Accepted(connected_at)): ConnectInfo<Accepted>,
                     Path(recipient): Path<String>,
                     headers: HeaderMap| async move {
                        let id = headers
                            .get("webhook-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        if let Ok(mut seen) = seen.lock() {
                            seen.push((id, recipient, Instant::now(), connected_at));
                        }
                        StatusCode::NO_CONTENT
                    },
                ),
            )
            .with_state(webhooks.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let webhook_base = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<Accepted>()).await
        });
        Ok(Self { smtp, webhook_base, webhooks })
    }

    /// Every message received, one entry per receipt (a message sent twice is here twice).
    pub fn delivered(&self) -> Vec<Delivered> {
        let mut all: Vec<Delivered> = self
            .smtp
            .captured()
            .into_iter()
            .map(|m| {
                let (organization_id, notification_id) =
                    named_by(&header(&m.data, "x-studyspot-idempotency-key").unwrap_or_default());
                Delivered {
                    organization_id,
                    notification_id,
                    recipient: m.rcpt_to.join(","),
                    channel: "email",
                    message_id: header(&m.data, "message-id").unwrap_or_default(),
                    at: m.received_at,
                    connected_at: m.connected_at,
                }
            })
            .collect();
        if let Ok(hooks) = self.webhooks.lock() {
            all.extend(hooks.iter().map(|(id, recipient, at, connected_at)| {
                let (organization_id, notification_id) = named_by(id);
                Delivered {
                    organization_id,
                    notification_id,
                    recipient: recipient.clone(),
                    channel: "webhook",
                    message_id: id.clone(),
                    at: *at,
                    connected_at: *connected_at,
                }
            }));
        }
        all
    }
}

/// The (organization, notification) an idempotency key names; an unknown key whole, with no
/// organization, so the checker reports it as a message of no notification.
fn named_by(key: &str) -> (String, String) {
    studyspot_notification_channels::parse_message_key(key).unwrap_or_else(|| (String::new(), key.to_owned()))
}

/// A header of a raw RFC 5322 message (unfolded, first occurrence).
fn header(data: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.split("\r\n").peekable();
    while let Some(line) = lines.next() {
        let Some((key, value)) = line.split_once(':') else { continue };
        if key.eq_ignore_ascii_case(name) {
            let mut value = value.trim().to_owned();
            while let Some(next) = lines.peek().filter(|l| l.starts_with([' ', '\t'])) {
                value.push_str(next.trim());
                lines.next();
            }
            return Some(value);
        }
    }
    None
}

pub(crate) async fn serve(app: axum::Router) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::{header, named_by};

    #[test]
    fn reads_a_folded_header_case_insensitively() {
        let raw = b"From: a@b\r\nX-StudySpot-Idempotency-Key: org_1/ntf_\r\n 1\r\nSubject: x\r\n\r\nbody";
        assert_eq!(header(raw, "x-studyspot-idempotency-key").as_deref(), Some("org_1/ntf_1"));
        assert_eq!(header(raw, "missing"), None);
    }

    #[test]
    fn a_key_reads_back_as_its_organization_and_notification() {
        let key = studyspot_notification_channels::message_key("org_1", "ntf/1");
        assert_eq!(named_by(&key), ("org_1".to_owned(), "ntf/1".to_owned()));
        assert_eq!(named_by("not a key"), (String::new(), "not a key".to_owned()));
    }
}
