use rand::RngCore;

/// W3C trace context carried in record headers, so one trace spans gateway → consumer →
/// follow-on consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub sampled: bool,
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// A new trace, for work that did not arrive with one.
    pub fn root() -> Self {
        let mut rng = rand::rng();
        let mut trace_id = [0u8; 16];
        let mut parent_id = [0u8; 8];
        rng.fill_bytes(&mut trace_id);
        rng.fill_bytes(&mut parent_id);
        Self { trace_id, parent_id, sampled: true, tracestate: None }
    }

    /// The same trace with a new span id: what a hop hands on to the records it causes.
    pub fn child(&self) -> Self {
        let mut parent_id = [0u8; 8];
        rand::rng().fill_bytes(&mut parent_id);
        Self { parent_id, ..self.clone() }
    }

    /// What a hop hands on to the records it causes: the context of its own span when that span is
    /// exported (`own_span`: its `traceparent` and `tracestate`), else a child of what it received,
    /// else a new trace.
    pub fn hand_on(own_span: Option<(String, Option<String>)>, received: Option<TraceContext>) -> Self {
        own_span
            .and_then(|(parent, state)| Self::parse(&parent, state.as_deref()))
            .or_else(|| received.map(|t| t.child()))
            .unwrap_or_else(Self::root)
    }

    /// Parses a `traceparent` header (version 00); anything malformed is ignored, as the spec asks.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let mut parts = traceparent.trim().split('-');
        let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2
            || version == "ff"
            || trace.len() != 32
            || parent.len() != 16
            || flags.len() != 2
        {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut parent_id = [0u8; 8];
        decode_hex(trace, &mut trace_id)?;
        decode_hex(parent, &mut parent_id)?;
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(Self {
            trace_id,
            parent_id,
            sampled: flags & 1 == 1,
            tracestate: tracestate.filter(|s| !s.is_empty()).map(str::to_owned),
        })
    }

    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{:02x}", hex(&self.trace_id), hex(&self.parent_id), u8::from(self.sampled))
    }

    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str, out: &mut [u8]) -> Option<()> {
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_children_keep_the_trace() {
        let root = TraceContext::root();
        let parsed = TraceContext::parse(&root.traceparent(), Some("vendor=1")).expect("valid");
        assert_eq!(parsed.trace_id, root.trace_id);
        assert_eq!(parsed.tracestate.as_deref(), Some("vendor=1"));
        let child = parsed.child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.parent_id, root.parent_id);
    }

    #[test]
    fn a_hop_hands_on_its_own_span_or_a_child_of_what_it_received() {
        let received = TraceContext::root();
        let own = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned();
        let handed = TraceContext::hand_on(Some((own.clone(), Some("k=v".into()))), Some(received.clone()));
        assert_eq!(handed.traceparent(), own);
        assert_eq!(handed.tracestate.as_deref(), Some("k=v"));
        let handed = TraceContext::hand_on(None, Some(received.clone()));
        assert_eq!(handed.trace_id, received.trace_id);
        assert_ne!(handed.parent_id, received.parent_id);
        let handed = TraceContext::hand_on(Some(("garbage".into(), None)), None);
        assert_ne!(handed.trace_id, received.trace_id);
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        for bad in [
            "",
            "00-abc-def-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-zzf067aa0ba902b7-01",
        ] {
            assert!(TraceContext::parse(bad, None).is_none(), "{bad}");
        }
        let ok = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None)
            .expect("spec example");
        assert!(ok.sampled);
    }
}
