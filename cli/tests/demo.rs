//! `studyspot demo` against a stack of its own (gateway, the four consumers and the mail sink as
//! processes, a fresh database and topics): every flow succeeds, the intended rejection is the one
//! rejection, and the receipt e-mail it names is the one the sink wrote.

mod support;

use std::process::Command;

use support::{BIN, LocalStack};

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_shows_every_domain_succeeding() {
    let local = LocalStack::start("demo").await;
    let mut demo = Command::new(BIN);
    demo.arg("demo").envs(local.cli_env());
    let output =
        tokio::task::spawn_blocking(move || demo.output()).await.expect("join").expect("run the demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the demo failed\n{stdout}\n{stderr}\n{}", local.logs());

    // Every command applied but the one rejected on purpose, which is labelled.
    let commands: Vec<&str> = stdout.lines().filter(|l| l.starts_with("→ POST")).collect();
    let rejected: Vec<&&str> = commands.iter().filter(|l| !l.contains(" applied")).collect();
    assert_eq!(rejected.len(), 1, "one command rejected:\n{stdout}");
    assert!(
        rejected[0].contains("/api/attendance/check-ins") && rejected[0].contains("rejected: no_entitlement"),
        "{stdout}"
    );
    assert!(stdout.contains("Rejected on purpose"), "{stdout}");
    assert!(commands.len() >= 12, "every step's command printed:\n{stdout}");

    // The follow-on events of each domain.
    for event in [
        "VenueDefined",
        "CheckedIn",
        "SessionCompleted",
        "SubscriptionCreated",
        "InvoiceIssued",
        "PaymentSucceeded",
        "InvoicePaid",
        "PreferencesUpdated",
        "TemplatePublished",
        "NotificationSent",
        "AlertFired",
        "AlertResolved",
    ] {
        assert!(stdout.contains(&format!("← {event} ")), "{event} shown:\n{stdout}");
    }
    assert!(stdout.contains("occupancy of Reading Hall: 1 of 30"), "{stdout}");
    assert!(stdout.contains("occupancy of Reading Hall: 0 of 30"), "{stdout}");

    // The receipt: the file it names is in the sink's directory, addressed to Ada, with the
    // organization's template rendered.
    let path = stdout
        .lines()
        .find_map(|l| l.strip_prefix("  the receipt: "))
        .unwrap_or_else(|| panic!("the receipt's file named:\n{stdout}"));
    let path = std::path::Path::new(path);
    assert_eq!(path.parent(), Some(local.mail_dir.as_path()), "{stdout}");
    let eml = std::fs::read_to_string(path).expect("the receipt file");
    assert!(eml.contains("ada@example.org"), "{eml}");
    assert!(eml.contains("Your receipt: EUR 49.00") || eml.contains("Your receipt: =?"), "{eml}");
    assert!(eml.contains("we received EUR 49.00 (cash"), "{eml}");

    // What to try next.
    for line in ["token --organization org_demo_", "curl -s http://", "curl -sN http://", " replay -t "] {
        assert!(stdout.contains(line), "{line:?} suggested:\n{stdout}");
    }
}
