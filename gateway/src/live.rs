//! `GET /api/events/stream`: the domains' follow-on events as Server-Sent Events, as they happen,
//! filtered to what the caller may see (their organization; a member, records about themselves).
//!
//! One [`Tail`] per gateway follows the event topics and fans records out. Each SSE event's id is
//! the stream's position (the next offset of every partition), so a client that reconnects with
//! `Last-Event-ID` first gets what it missed, read from the topics, and then the live records —
//! nothing lost, nothing twice. A client too slow for the fan-out is disconnected and resumes the
//! same way.

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    extract::State,
    http::HeaderMap,
    response::sse::{Event, KeepAlive, Sse},
};
use futures::Stream;
use serde_json::Value;
use studyspot_bus::{
    BusSettings, Codec, InboundMessage, PartitionId,
    tail::{Positions, Tail, high_watermarks, read_range},
};
use tokio::sync::{broadcast, mpsc};

use crate::{AppState, GatewayError, auth::Caller};

/// Fan-out buffer: a client this far behind the live records is disconnected (and resumes).
const FAN_OUT: usize = 4096;

#[derive(Clone)]
pub struct Live {
    settings: BusSettings,
    codec: Codec,
    /// The Kafka names of the event topics, in catalogue order: an index is a topic in event ids.
    topics: Arc<[String]>,
    records: broadcast::Sender<Arc<InboundMessage>>,
    _tail: Arc<Tail>,
}

impl Live {
    pub fn start(settings: BusSettings, codec: Codec, topic_prefix: &str) -> Result<Self, GatewayError> {
        let topics: Arc<[String]> = studyspot_schemas::catalogue()
            .iter()
            .filter(|t| t.kind == studyspot_schemas::TopicKind::Events)
            .map(|t| format!("{topic_prefix}{}", t.name))
            .collect();
        let (records, _) = broadcast::channel(FAN_OUT);
        let (tail, _) = Tail::start(&settings, &topics, {
            let records = records.clone();
            move |record| {
                let _ = records.send(Arc::new(record));
            }
        })
        .map_err(|e| GatewayError::Startup(format!("the event tail: {e}")))?;
        Ok(Self { settings, codec, topics, records, _tail: Arc::new(tail) })
    }

    /// `topic index:partition:next offset`, comma-separated.
    fn encode(&self, positions: &Positions) -> String {
        positions
            .iter()
            .filter_map(|(p, offset)| {
                let index = self.topics.iter().position(|t| *t == p.topic)?;
                Some(format!("{index}:{}:{offset}", p.partition))
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    fn decode(&self, id: &str) -> Option<Positions> {
        let mut positions = Positions::new();
        for part in id.split(',').filter(|p| !p.is_empty()) {
            let mut fields = part.split(':');
            let topic = self.topics.get(fields.next()?.parse::<usize>().ok()?)?.clone();
            let partition = fields.next()?.parse().ok()?;
            let offset = fields.next()?.parse().ok().filter(|o: &i64| *o >= 0)?;
            if fields.next().is_some() {
                return None;
            }
            positions.insert(PartitionId { topic, partition }, offset);
        }
        Some(positions)
    }
}

/// Whether `caller` may see this event (as JSON).
fn visible(caller: &Caller, event: &Value) -> bool {
    if event["metadata"]["organization_id"].as_str() != Some(caller.organization_id.as_str()) {
        return false;
    }
    let about = event["member_id"].as_str().or_else(|| event["recipient_id"].as_str());
    caller.may_see_member(about)
}

#[utoipa::path(get, path = "/api/events/stream", tag = "events",
    params(("Last-Event-ID" = Option<String>, Header, description = "Resume after this event: what was missed comes first")),
    responses(
        (status = 200, description = "Server-Sent Events: event = record name, data = the record as JSON", content_type = "text/event-stream", body = String),
        (status = 400, description = "A Last-Event-ID this stream did not send", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = crate::openapi::ErrorBody),
    )
)]
pub async fn events_stream(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, GatewayError> {
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(value.to_str().map_err(|_| bad_last_event_id("Last-Event-ID"))?.to_owned()),
    };
    let events = open(&state, caller, last_event_id.as_deref(), "Last-Event-ID").await?;
    let stream = futures::stream::unfold(events, |mut events| async move {
        let event = events.recv().await?;
        Some((Ok(Event::default().id(event.id).event(event.name).data(event.json)), events))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// One event for a client: its resumable id, the record's name and the record as JSON.
pub(crate) struct LiveEvent {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) json: String,
}

fn bad_last_event_id(field: &str) -> GatewayError {
    GatewayError::InvalidHeader { header: field.into(), message: "not an id this stream sent".into() }
}

/// Opens a stream of what `caller` may see, from now or after `last_event_id` (named `field` in
/// errors), whichever protocol carries it.
pub(crate) async fn open(
    state: &AppState,
    caller: Caller,
    last_event_id: Option<&str>,
    field: &str,
) -> Result<mpsc::Receiver<LiveEvent>, GatewayError> {
    let live = state.live.clone();
    // Subscribe before reading positions: whatever the tail hands out from now on is buffered, and
    // whatever it handed out before is below the watermarks read next, so the replay has it.
    let mut fan_out = live.records.subscribe();
    let settings = live.settings.clone();
    let topics = live.topics.to_vec();
    let now =
        tokio::task::spawn_blocking(move || high_watermarks(&settings, &topics, Duration::from_secs(10)))
            .await
            .map_err(|e| GatewayError::Internal(e.to_string()))?
            .map_err(|e| GatewayError::Unavailable(e.to_string()))?;
    let resume = match last_event_id {
        None => None,
        Some(id) => Some(live.decode(id).ok_or_else(|| bad_last_event_id(field))?),
    };

    let (out, events) = mpsc::channel::<LiveEvent>(256);
    tokio::spawn(async move {
        // Partitions not named by the client's id start at the position of now.
        let mut positions = now.clone();
        if let Some(resume) = resume {
            positions.extend(resume);
            let (missed_tx, mut missed) = mpsc::channel::<InboundMessage>(256);
            let (settings, from, until) = (live.settings.clone(), positions.clone(), now.clone());
            let reading = tokio::task::spawn_blocking(move || {
                read_range(&settings, &from, &until, Duration::from_secs(60), |record| {
                    missed_tx.blocking_send(record).is_ok()
                })
            });
            while let Some(record) = missed.recv().await {
                if !forward(&live, &caller, &mut positions, &record, &out).await {
                    return;
                }
            }
            if let Ok(Err(e)) = reading.await {
                tracing::warn!(error = %e, "event stream: could not read the missed range");
                return;
            }
        }
        loop {
            match fan_out.recv().await {
                Ok(record) => {
                    if !forward(&live, &caller, &mut positions, &record, &out).await {
                        return;
                    }
                }
                // Too slow: end the stream; the client reconnects with its last event id.
                Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Ok(events)
}

/// Sends `record` to the client when it is new to this stream and visible to the caller; false
/// when the client is gone.
async fn forward(
    live: &Live,
    caller: &Caller,
    positions: &mut Positions,
    record: &InboundMessage,
    out: &mpsc::Sender<LiveEvent>,
) -> bool {
    let id = record.partition_id();
    let Some(next) = positions.get_mut(&id) else { return true };
    if record.offset < *next {
        return true;
    }
    *next = record.offset + 1;
    let Some(payload) = record.payload.as_deref() else { return true };
    let decoded = match live.codec.decode(payload).await {
        Ok(decoded) => decoded,
        Err(e) => {
            tracing::warn!(error = %e, topic = %record.topic, offset = record.offset, "event stream: undecodable record skipped");
            return true;
        }
    };
    let Ok(json) = decoded.to_json() else { return true };
    if !visible(caller, &json) {
        return true;
    }
    let name = decoded.full_name.rsplit('.').next().unwrap_or(&decoded.full_name).to_owned();
    out.send(LiveEvent { id: live.encode(positions), name, json: json.to_string() }).await.is_ok()
}
