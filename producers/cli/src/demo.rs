//! `studyspot demo`: one of each domain's first commands in, their follow-on events out.
//!
//! The commands go straight onto the command topics, as the gateway would produce them.

use std::{
    collections::HashMap,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use studyspot_bus::{BusSettings, Codec, OutboundMessage, Producer, TraceContext, headers, reader};
use studyspot_config::Settings;
use studyspot_schemas::{EventMetadata, alerts, attendance, billing, notifications};

pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    let bus = BusSettings::from_settings(settings, "studyspot-demo");
    let codec = Codec::new(&settings.registry.url)?;
    let producer = Producer::new(&bus)?;
    let prefix = settings.kafka.topic_prefix.clone();
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let run = format!("{:x}", now);
    let org = format!("org_demo_{run}");
    let metadata = |what: &str| EventMetadata {
        event_id: uuid::Uuid::now_v7().to_string(),
        occurred_at: now,
        correlation_id: format!("demo-{run}-{what}"),
        causation_id: None,
        organization_id: org.clone(),
        actor: "user:demo".into(),
    };

    println!("organization {org}");
    let mut expected: Vec<(&'static str, String)> = Vec::new();
    let send = |encoded: studyspot_bus::EncodedRecord| {
        let mut message = OutboundMessage::from_encoded(encoded, &TraceContext::root());
        message.topic = format!("{prefix}{}", message.topic);
        message
    };

    let payment = billing::CreatePayment {
        metadata: metadata("payment"),
        payment_id: format!("pay_{run}"),
        member_id: format!("mem_{run}"),
        amount_minor: 4900,
        currency: "EUR".into(),
        method: "card".into(),
        description: Some("Premium plan, first month".into()),
    };
    let check_in = attendance::CheckIn {
        metadata: metadata("check-in"),
        session_id: format!("ses_{run}"),
        member_id: format!("mem_{run}"),
        venue_id: "ven_central_library".into(),
        seat_id: Some("seat_a12".into()),
    };
    let notification = notifications::SendNotification {
        metadata: metadata("notification"),
        notification_id: format!("ntf_{run}"),
        recipient_id: format!("mem_{run}"),
        channel: "email".into(),
        category: "transactional".into(),
        subject: Some("Welcome to StudySpot".into()),
        body: "Your seat is ready.".into(),
    };
    let sample = alerts::RecordMetricSample {
        metadata: metadata("metric"),
        metric: "payment_failure_ratio".into(),
        labels: HashMap::from([("gateway".into(), "stripe".into())]),
        value: 0.02,
        sampled_at: now,
    };
    for (message, events_topic, label) in [
        (send(codec.encode(&payment).await?), billing::EVENTS.name, "billing.CreatePayment"),
        (send(codec.encode(&check_in).await?), attendance::EVENTS.name, "attendance.CheckIn"),
        (
            send(codec.encode(&notification).await?),
            notifications::EVENTS.name,
            "notifications.SendNotification",
        ),
        (send(codec.encode(&sample).await?), alerts::EVENTS.name, "alerts.RecordMetricSample"),
    ] {
        let delivery = producer.send(&message).await.with_context(|| format!("producing {label}"))?;
        println!("→ {label:<34} {}[{}]@{}", message.topic, delivery.partition, delivery.offset);
        let correlation = message.headers.get(headers::CORRELATION_ID).unwrap_or_default().to_owned();
        expected.push((events_topic, correlation));
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut missing = expected;
    while !missing.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for (topic, correlation) in missing {
            let kafka_topic = format!("{prefix}{topic}");
            let found = reader::read_to_end(&bus, &kafka_topic, Duration::from_secs(10))
                .with_context(|| format!("reading {kafka_topic}"))?
                .into_iter()
                .find(|r| r.headers.get(headers::CORRELATION_ID) == Some(correlation.as_str()));
            match found {
                Some(record) => {
                    let decoded = codec.decode(record.payload.as_deref().unwrap_or_default()).await?;
                    println!(
                        "← {:<34} {}[{}]@{}",
                        decoded.full_name.trim_start_matches("studyspot."),
                        kafka_topic,
                        record.partition,
                        record.offset
                    );
                    println!("    {}", summary(&decoded.value));
                }
                None => still.push((topic, correlation)),
            }
        }
        missing = still;
        if !missing.is_empty() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    for (topic, correlation) in &missing {
        println!("✗ no follow-on event for {correlation} on {topic} within 30 s");
    }
    if missing.is_empty() { Ok(()) } else { anyhow::bail!("{} follow-on events missing", missing.len()) }
}

/// The record's fields other than the metadata, on one line.
fn summary(value: &apache_avro::types::Value) -> String {
    let apache_avro::types::Value::Record(fields) = value else { return format!("{value:?}") };
    fields
        .iter()
        .filter(|(name, _)| name != "metadata")
        .map(|(name, v)| format!("{name}={}", scalar(v)))
        .collect::<Vec<_>>()
        .join("  ")
}

fn scalar(value: &apache_avro::types::Value) -> String {
    use apache_avro::types::Value;
    match value {
        Value::String(s) => s.clone(),
        Value::Long(n) => n.to_string(),
        Value::Int(n) => n.to_string(),
        Value::Double(n) => n.to_string(),
        Value::Union(_, inner) => scalar(inner),
        Value::Null => "null".into(),
        Value::Map(m) => format!("{m:?}"),
        other => format!("{other:?}"),
    }
}
