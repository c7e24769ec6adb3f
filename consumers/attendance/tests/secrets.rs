//! The attendance process verifies QR tokens with `attendance.qr.keys`: it refuses to start with a
//! key that shipped as a default (anyone could forge check-ins with it), and only development
//! mode lets it start without keys of its own.

use std::time::Duration;

use studyspot_schemas::billing;
use studyspot_test_world::{World, eventually, stop};

#[tokio::test(flavor = "multi_thread")]
async fn a_published_qr_key_keeps_the_process_from_starting_unless_in_development_mode() {
    let world = World::new("attendance", env!("CARGO_BIN_EXE_studyspot-attendance")).await;
    world.create_topics(&[&billing::EVENTS]).await;
    let mut weak = world.consumer_command(&world.database_url);
    weak.env("STUDYSPOT_ATTENDANCE__QR__KEYS__K1", "studyspot-development-qr-key-change-me");
    let out = tokio::process::Command::from(weak).output().await.expect("run the consumer");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it started: {said}");
    assert!(said.contains("attendance.qr.keys.k1 is a published development value"), "{said}");

    // Development mode, no key at all: it starts with the development key and says so.
    let mut dev = world.spawn_consumer_with(
        None,
        &world.database_url,
        &[("STUDYSPOT_DEVELOPMENT", "true"), ("STUDYSPOT_ATTENDANCE__QR__KEYS__K1", "")],
    );
    eventually("the consumer to start in development mode", Duration::from_secs(60), || async {
        let log = dev.log();
        (log.contains("attendance consumer started")
            && log.contains("development mode: attendance.qr.keys.k1 is the development value"))
        .then_some(())
    })
    .await;
    assert!(stop(&mut dev).success(), "{}", dev.log());
}
