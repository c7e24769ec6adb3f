//! `GET /api/events/stream`: the domains' follow-on events as Server-Sent Events, as they happen,
//! filtered to what the caller may see (their organization; a member, records about themselves).
//!
//! One [`Tail`] per gateway follows the event topics and fans records out. Each SSE event's id is
//! the stream's position (the next offset of every partition), so a client that reconnects with
//! `Last-Event-ID` first gets what it missed, read from the topics, and then the live records —
//! nothing lost, nothing twice. A client too slow for the fan-out is disconnected and resumes the
//! same way.
//!
//! What one client can cost is bounded: a resume more than `gateway.event_stream_resume_window`
//! records behind now is refused (`410 resume_too_old`: the replay reads every organization's
//! records of that range), and an organization holds at most
//! `gateway.event_streams_per_organization` streams at once (`429 too_many_streams`).

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

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
use tokio_util::sync::CancellationToken;

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
    /// The most records (over every event partition) a resume may replay.
    resume_window: i64,
    streams: Streams,
    /// Cancelled when the gateway stops: every open stream ends.
    shutdown: CancellationToken,
}

/// Open streams per organization.
#[derive(Clone, Default)]
struct Streams {
    open: Arc<Mutex<HashMap<String, usize>>>,
    per_organization: usize,
}

impl Streams {
    fn admit(&self, organization_id: &str) -> Result<StreamGuard, GatewayError> {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(organization_id.to_owned()).or_default();
        if *count >= self.per_organization {
            return Err(GatewayError::TooManyStreams { limit: self.per_organization });
        }
        *count += 1;
        Ok(StreamGuard { streams: self.clone(), organization_id: organization_id.to_owned() })
    }
}

/// One open stream, counted until the client's stream is dropped.
struct StreamGuard {
    streams: Streams,
    organization_id: String,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut open = self.streams.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.organization_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.organization_id);
            }
        }
    }
}

/// A client's events; dropping it ends the stream and frees its place.
pub(crate) struct LiveEvents {
    events: mpsc::Receiver<LiveEvent>,
    _guard: StreamGuard,
}

impl LiveEvents {
    pub(crate) async fn recv(&mut self) -> Option<LiveEvent> {
        self.events.recv().await
    }
}

impl Live {
    /// Follows the event topics; the streams opened on it end once `shutdown` is cancelled.
    pub fn start(
        settings: BusSettings,
        codec: Codec,
        topic_prefix: &str,
        shutdown: CancellationToken,
    ) -> Result<Self, GatewayError> {
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
        Ok(Self {
            settings,
            codec,
            topics,
            records,
            _tail: Arc::new(tail),
            resume_window: 10_000,
            streams: Streams { per_organization: 20, ..Streams::default() },
            shutdown,
        })
    }

    /// How far back a resume may go (records) and how many streams an organization may hold.
    pub fn with_limits(mut self, resume_window: u64, streams_per_organization: u32) -> Self {
        self.resume_window = i64::try_from(resume_window).unwrap_or(i64::MAX);
        self.streams.per_organization = streams_per_organization as usize;
        self
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
        (status = 410, description = "Last-Event-ID is further back than the resume window (resume_too_old): reconnect without it", body = crate::openapi::ErrorBody),
        (status = 429, description = "Rate limited (rate_limited; see Retry-After), or the organization has as many streams open as it may (too_many_streams)", body = crate::openapi::ErrorBody),
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
) -> Result<LiveEvents, GatewayError> {
    let live = state.live.clone();
    let guard = live.streams.admit(caller.organization_id.as_str())?;
    // Subscribe before reading positions: whatever the tail hands out from now on is buffered, and
    // whatever it handed out before is below the watermarks read next, so the replay has it.
    let fan_out = live.records.subscribe();
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
    if let Some(resume) = &resume {
        let behind: i64 = resume
            .iter()
            .map(|(p, from)| now.get(p).map_or(0, |until| until.saturating_sub(*from).max(0)))
            .sum();
        if behind > live.resume_window {
            return Err(GatewayError::ResumeTooOld { behind, window: live.resume_window });
        }
    }

    let (out, events) = mpsc::channel::<LiveEvent>(256);
    let shutdown = live.shutdown.clone();
    // Ends with the client, or when the gateway stops: dropping `out` ends the client's stream.
    tokio::spawn(async move {
        tokio::select! {
            () = follow(live, caller, now, resume, fan_out, out) => {}
            () = shutdown.cancelled() => {}
        }
    });
    Ok(LiveEvents { events, _guard: guard })
}

/// Sends the client what it missed (after `resume`), then the live records, until the client is
/// gone or too slow.
async fn follow(
    live: Live,
    caller: Caller,
    now: Positions,
    resume: Option<Positions>,
    mut fan_out: broadcast::Receiver<Arc<InboundMessage>>,
    out: mpsc::Sender<LiveEvent>,
) {
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
        let received = tokio::select! {
            received = fan_out.recv() => received,
            // The client went away while nothing happened: stop following for it.
            () = out.closed() => return,
        };
        match received {
            Ok(record) => {
                if !forward(&live, &caller, &mut positions, &record, &out).await {
                    return;
                }
            }
            // Too slow: end the stream; the client reconnects with its last event id.
            Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => return,
        }
    }
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
