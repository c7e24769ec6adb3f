//! Notification decisions: no I/O, no clock. Every refusal is decided here, from domain state the
//! handler loaded (typed ids, not projection rows); the handler only loads, calls, writes and
//! emits.

pub mod campaigns;
pub mod digests;
pub mod notifications;
pub mod reports;
pub mod routing;
pub mod templates;
pub mod waiting;

use studyspot_schemas::notifications::{CATEGORIES, CreateTemplate, SendNotification, SetPreferences};

pub use studyspot_schemas::notifications::CHANNELS;

use studyspot_consumer_runtime::filled as blank;
pub use studyspot_consumer_runtime::{Malformed, Refusal};
use studyspot_ids::ParseError;

/// A field as its typed id, once [`blank`] (or a command's own check) has passed on it: the
/// checks that existed before the types keep their messages.
pub fn parse<T: std::str::FromStr<Err = ParseError>>(field: &str, value: &str) -> Result<T, Malformed> {
    value.parse().map_err(|e: ParseError| Malformed(e.for_field(field)))
}

/// An optional field as its typed id.
pub fn parse_opt<T: std::str::FromStr<Err = ParseError>>(
    field: &str,
    value: Option<&str>,
) -> Result<Option<T>, Malformed> {
    value.map(|v| parse(field, v)).transpose()
}

fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<(), Malformed> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(Malformed(format!("{field} {value:?} is not one of {}", allowed.join(", "))))
    }
}

pub fn validate_send(c: &SendNotification) -> Result<(), Malformed> {
    blank(&[
        ("notification_id", &c.notification_id),
        ("recipient_id", &c.recipient_id),
        ("category", &c.category),
        ("metadata.organization_id", &c.metadata.organization_id),
    ])?;
    match &c.template_id {
        Some(template) => blank(&[("template_id", template)])?,
        None => blank(&[("body", &c.body)])?,
    }
    one_of("channel", &c.channel, &CHANNELS)?;
    one_of("category", &c.category, &CATEGORIES)
}

/// Preferences as the routing rules read them.
pub fn preferences(c: &SetPreferences) -> Result<routing::Preferences, Malformed> {
    blank(&[("recipient_id", &c.recipient_id)])?;
    for channel in &c.opted_out_channels {
        one_of("opted_out_channels[]", channel, &CHANNELS)?;
    }
    for category in c.opted_out_categories.iter().chain(c.category_caps.keys()) {
        one_of("category", category, &CATEGORIES)?;
    }
    if c.category_caps.values().chain(c.daily_cap.iter()).any(|cap| *cap < 0) {
        return Err(Malformed("caps cannot be negative".into()));
    }
    let quiet = match (&c.quiet_start, &c.quiet_end) {
        (Some(start), Some(end)) => Some((
            routing::local_time("quiet_start", start).map_err(Malformed)?,
            routing::local_time("quiet_end", end).map_err(Malformed)?,
        )),
        (None, None) => None,
        _ => return Err(Malformed("quiet_start and quiet_end go together".into())),
    };
    Ok(routing::Preferences {
        email: c.email.clone(),
        phone: c.phone.clone(),
        whatsapp: c.whatsapp.clone(),
        push_token: c.push_token.clone(),
        webhook_url: c.webhook_url.clone(),
        time_zone: routing::time_zone(&c.time_zone).map_err(Malformed)?,
        quiet,
        opted_out_channels: c.opted_out_channels.clone(),
        opted_out_categories: c.opted_out_categories.clone(),
        category_caps: c.category_caps.clone(),
        daily_cap: c.daily_cap,
    })
}

pub fn validate_template(c: &CreateTemplate) -> Result<(), Malformed> {
    blank(&[
        ("template_id", &c.template_id),
        ("locale", &c.locale),
        ("body", &c.body),
        ("metadata.organization_id", &c.metadata.organization_id),
    ])?;
    one_of("channel", &c.channel, &CHANNELS)
}

/// An amount in minor units as people read it: `EUR 20.00`, `JPY 500`.
pub fn money(amount_minor: i64, currency: &str) -> String {
    // ISO 4217 currencies without minor units.
    const ZERO_DECIMAL: [&str; 8] = ["JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF"];
    if ZERO_DECIMAL.contains(&currency) {
        return format!("{currency} {amount_minor}");
    }
    let sign = if amount_minor < 0 { "-" } else { "" };
    let abs = amount_minor.unsigned_abs();
    format!("{currency} {sign}{}.{:02}", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests {
    use studyspot_schemas::EventMetadata;

    use super::*;

    fn command() -> SendNotification {
        SendNotification {
            metadata: EventMetadata::example(),
            notification_id: "ntf_1".into(),
            recipient_id: "mem_1".into(),
            channel: "email".into(),
            category: "transactional".into(),
            subject: Some("Receipt".into()),
            body: "Thanks".into(),
            template_id: None,
            variables: Default::default(),
            locale: None,
            critical: false,
            transaction_id: None,
            send_at: None,
            campaign_id: None,
            digest_key: None,
            digest_window_secs: None,
            digest_at_local: None,
        }
    }

    #[test]
    fn unknown_channels_categories_and_empty_bodies_are_malformed() {
        assert_eq!(validate_send(&command()), Ok(()));
        let mut pigeon = command();
        pigeon.channel = "pigeon".into();
        assert!(validate_send(&pigeon).is_err());
        let mut gossip = command();
        gossip.category = "gossip".into();
        assert!(validate_send(&gossip).is_err());
        let mut empty = command();
        empty.body = String::new();
        assert!(validate_send(&empty).is_err());
        empty.template_id = Some("tpl_receipt".into());
        assert_eq!(validate_send(&empty), Ok(()), "a template renders the body");
    }

    #[test]
    fn preferences_parse_zones_and_quiet_hours_or_say_what_is_wrong() {
        let mut c = SetPreferences {
            metadata: EventMetadata::example(),
            recipient_id: "mem_1".into(),
            email: Some("ada@example.org".into()),
            phone: None,
            whatsapp: None,
            push_token: None,
            webhook_url: None,
            webhook_secret: None,
            time_zone: "America/New_York".into(),
            quiet_start: Some("21:30".into()),
            quiet_end: Some("08:00".into()),
            opted_out_channels: vec!["sms".into()],
            opted_out_categories: vec!["marketing".into()],
            category_caps: [("marketing".to_owned(), 3)].into(),
            daily_cap: Some(10),
        };
        let p = preferences(&c).expect("valid");
        assert_eq!(p.time_zone, chrono_tz::America::New_York);
        c.quiet_end = None;
        assert!(preferences(&c).is_err());
        c.quiet_end = Some("25:00".into());
        assert!(preferences(&c).expect_err("bad time").0.contains("quiet_end"));
        c.quiet_end = Some("08:00".into());
        c.time_zone = "Atlantis/Capital".into();
        assert!(preferences(&c).expect_err("bad zone").0.contains("time_zone"));
    }

    #[test]
    fn money_reads_as_people_write_it() {
        assert_eq!(money(2_000, "EUR"), "EUR 20.00");
        assert_eq!(money(5, "USD"), "USD 0.05");
        assert_eq!(money(-1_250, "GBP"), "GBP -12.50");
        assert_eq!(money(500, "JPY"), "JPY 500");
    }
}
