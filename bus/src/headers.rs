//! Record header names. Consumers read them without decoding the value, so tracing, dedupe and
//! dead-letter tooling work even for records they cannot decode.

use crate::TraceContext;

pub const EVENT_ID: &str = "studyspot.event_id";
pub const CORRELATION_ID: &str = "studyspot.correlation_id";
pub const CAUSATION_ID: &str = "studyspot.causation_id";
pub const RECORD_TYPE: &str = "studyspot.record_type";
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";
/// On dead letters: why, from where, and which consumer gave up.
pub const DLQ_REASON: &str = "studyspot.dlq.reason";
pub const DLQ_TOPIC: &str = "studyspot.dlq.topic";
pub const DLQ_PARTITION: &str = "studyspot.dlq.partition";
pub const DLQ_OFFSET: &str = "studyspot.dlq.offset";
pub const DLQ_CONSUMER: &str = "studyspot.dlq.consumer";

/// Ordered header list; values are UTF-8 for every header StudySpot writes.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn insert(&mut self, name: &str, value: impl Into<String>) {
        self.0.retain(|(k, _)| k != name);
        self.0.push((name.to_owned(), value.into()));
    }

    pub fn trace(&self) -> Option<TraceContext> {
        TraceContext::parse(self.get(TRACEPARENT)?, self.get(TRACESTATE))
    }

    pub fn set_trace(&mut self, trace: &TraceContext) {
        self.insert(TRACEPARENT, trace.traceparent());
        if let Some(state) = &trace.tracestate {
            self.insert(TRACESTATE, state.clone());
        }
    }
}
