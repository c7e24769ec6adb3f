//! Issue 21, items 3 and 9, in the notifications consumer (a real process, the real broker and
//! PostgreSQL). Templates come from tenants: one that loops for ever or writes too much is refused
//! when it is created, and one stored before the limits existed fails its message with the limit's
//! code — neither holds the consumer, whose next command is applied as usual. A command holding a
//! NUL character (PostgreSQL stores none) from another producer is dead-lettered, naming the
//! field, instead of being retried for ever.

use std::time::Duration;

use studyspot_schemas::notifications::{self, CreateTemplate, SendNotification, SetPreferences};
use studyspot_test_world::{World, eventually};

const NESTED: &str = "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}";

fn template(world: &World, name: &str, body: &str) -> CreateTemplate {
    CreateTemplate {
        metadata: world.named_metadata(name),
        template_id: format!("tpl_{name}"),
        channel: "in_app".into(),
        locale: "en".into(),
        subject: None,
        body: body.into(),
        html: None,
        sample_variables: Default::default(),
    }
}

fn message(world: &World, name: &str, template_id: Option<&str>) -> SendNotification {
    SendNotification {
        metadata: world.named_metadata(name),
        notification_id: format!("ntf_{name}"),
        recipient_id: "mem_1".into(),
        channel: "in_app".into(),
        category: "transactional".into(),
        subject: None,
        body: if template_id.is_some() { String::new() } else { format!("Hello from {name}") },
        template_id: template_id.map(str::to_owned),
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

/// The outcome and code the consumer recorded for `command_id`, once it has.
async fn outcome(world: &World, command_id: &str) -> (String, Option<String>, Option<String>) {
    let pool = world.pool().await;
    eventually(&format!("an outcome of {command_id}"), Duration::from_secs(60), || async {
        sqlx::query_as(
            "SELECT outcome, code, reason FROM notifications.command_outcomes WHERE command_id = $1",
        )
        .bind(command_id)
        .fetch_optional(&pool)
        .await
        .ok()
        .flatten()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_past_a_limit_are_refused_and_never_hold_the_consumer() {
    let world = World::new("notifications", env!("CARGO_BIN_EXE_studyspot-notifications")).await;
    let consumer = world.spawn_consumer(None);

    // Created: refused with the limit's code, quickly.
    let costly = template(&world, "costly", NESTED);
    world.send(&costly).await;
    let wordy = template(&world, "wordy", "{% for i in range(2000) %}{{ 'y' * 200 }}{% endfor %}");
    world.send(&wordy).await;
    let fine = template(&world, "fine", "Hello");
    world.send(&fine).await;
    let (state, code, reason) = outcome(&world, &costly.metadata.event_id).await;
    assert_eq!(
        (state.as_str(), code.as_deref()),
        ("rejected", Some("template_too_costly")),
        "{}",
        consumer.log()
    );
    assert!(reason.is_some_and(|r| r.starts_with("body ")), "the reason names the part");
    let (state, code, _) = outcome(&world, &wordy.metadata.event_id).await;
    assert_eq!((state.as_str(), code.as_deref()), ("rejected", Some("template_output_too_large")));
    assert_eq!(outcome(&world, &fine.metadata.event_id).await.0, "applied");

    // Stored before the limits existed: the message due fails, the next one goes through.
    let pool = world.pool().await;
    sqlx::query(
        "INSERT INTO notifications.templates (organization_id, template_id, channel, locale, version, subject, body, html, created_at) \
         VALUES ($1, 'tpl_old', 'in_app', 'en', 1, NULL, $2, NULL, now())",
    )
    .bind(world.organization_id())
    .bind(NESTED)
    .execute(&pool)
    .await
    .expect("an old template");
    let due = message(&world, "due", Some("tpl_old"));
    world.send(&due).await;
    let next = message(&world, "next", None);
    world.send(&next).await;
    let (state, code, _) = outcome(&world, &due.metadata.event_id).await;
    assert_eq!(
        (state.as_str(), code.as_deref()),
        ("rejected", Some("template_too_costly")),
        "{}",
        consumer.log()
    );
    assert_eq!(outcome(&world, &next.metadata.event_id).await.0, "applied");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_holding_a_nul_character_is_dead_lettered_naming_the_field() {
    let world = World::new("notifications", env!("CARGO_BIN_EXE_studyspot-notifications")).await;
    let consumer = world.spawn_consumer(None);

    // In the body, and in the metadata the runtime itself records the outcome under.
    let in_body = SendNotification { body: "Hello\u{0}".into(), ..message(&world, "in-body", None) };
    world.send(&in_body).await;
    let mut in_metadata = message(&world, "in-metadata", None);
    in_metadata.metadata.organization_id = format!("{}\u{0}", world.organization_id());
    world.send(&in_metadata).await;
    let mut prefs = SetPreferences {
        metadata: world.named_metadata("prefs"),
        recipient_id: "mem_1".into(),
        email: Some("ada@example.org".into()),
        phone: None,
        whatsapp: None,
        push_token: None,
        webhook_url: None,
        webhook_secret: None,
        time_zone: "UTC".into(),
        quiet_start: None,
        quiet_end: None,
        opted_out_channels: Vec::new(),
        opted_out_categories: Vec::new(),
        category_caps: Default::default(),
        daily_cap: None,
    };
    prefs.category_caps.insert("market\u{0}ing".into(), 1);
    world.send(&prefs).await;
    let next = message(&world, "next", None);
    world.send(&next).await;

    assert_eq!(outcome(&world, &next.metadata.event_id).await.0, "applied", "{}", consumer.log());
    let (state, _, reason) = outcome(&world, &in_body.metadata.event_id).await;
    assert_eq!(state, "dead_lettered");
    assert!(reason.as_deref().is_some_and(|r| r.contains("body") && r.contains("NUL")), "{reason:?}");
    let (state, _, reason) = outcome(&world, &prefs.metadata.event_id).await;
    assert_eq!(state, "dead_lettered");
    assert!(reason.as_deref().is_some_and(|r| r.contains("category_caps")), "{reason:?}");
    // The outcomes commit with the dead letters' outbox rows; the publisher sends them after.
    let dead = eventually("the three dead letters", Duration::from_secs(30), || async {
        let dead = world.read_all(notifications::COMMANDS.dead_letter);
        (dead.len() >= 3).then_some(dead)
    })
    .await;
    let reasons: Vec<&str> =
        dead.iter().filter_map(|m| m.headers.get(studyspot_bus::headers::DLQ_REASON)).collect();
    assert_eq!(dead.len(), 3, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("metadata.organization_id")), "{reasons:?}");
}
