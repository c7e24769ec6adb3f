//! `studyspot secrets init` makes an installation's secrets once (mode 0600, kept on every later
//! run, as `./deploy/local/up` calls it each time), and `studyspot token` signs with the local
//! stack's file when no other is named: what it mints verifies with that secret and no other.

use std::{os::unix::fs::PermissionsExt as _, path::Path, process::Command};

use studyspot_config::Settings;
use studyspot_tokens::Verifier;

const BIN: &str = env!("CARGO_BIN_EXE_studyspot");

fn studyspot(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env("STUDYSPOT_HOME", home)
        .env_remove("STUDYSPOT_SECRETS_FILE")
        .env_remove("STUDYSPOT_AUTH__HS256_SECRET")
        .output()
        .expect("run studyspot")
}

#[test]
fn secrets_are_made_once_privately_and_tokens_are_signed_with_them() {
    let home = std::env::temp_dir().join(format!("studyspot-secrets-{}", uuid::Uuid::now_v7().simple()));
    let file = home.join("secrets.toml");
    let file_arg = file.to_str().expect("utf-8 path");

    // Before any secret exists there is nothing to sign with.
    let refused = studyspot(&home, &["token", "--organization", "org_1", "--role", "staff"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("HS256 is off"), "{refused:?}");

    let first = studyspot(&home, &["secrets", "init", file_arg]);
    assert!(first.status.success(), "{first:?}");
    let made = std::fs::read_to_string(&file).expect("the secrets file");
    let mode = std::fs::metadata(&file).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "only its owner reads it");
    // As `up` runs it on a first run: the file it is to make already named as the secrets file.
    let second_home = home.join("second");
    let named = second_home.join("secrets.toml");
    let made_named = Command::new(BIN)
        .args(["secrets", "init", named.to_str().expect("utf-8 path")])
        .env("STUDYSPOT_HOME", &second_home)
        .env("STUDYSPOT_SECRETS_FILE", &named)
        .output()
        .expect("run studyspot");
    assert!(made_named.status.success(), "{made_named:?}");
    assert!(named.is_file());
    let again = studyspot(&home, &["secrets", "init", file_arg]);
    assert!(String::from_utf8_lossy(&again.stdout).starts_with("kept"), "{again:?}");
    assert_eq!(std::fs::read_to_string(&file).expect("still there"), made, "kept as it was");

    let minted = studyspot(&home, &["token", "--organization", "org_1", "--role", "staff"]);
    assert!(minted.status.success(), "{minted:?}");
    let token = String::from_utf8(minted.stdout).expect("utf-8").trim().to_owned();

    // A gateway with that file's HS256 secret accepts it; one with other secrets does not.
    let secret = made
        .lines()
        .find_map(|l| l.strip_prefix("hs256_secret = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("an HS256 secret in the file");
    assert_eq!(secret.len(), 64, "32 random bytes, hex");
    let mut ours = Settings::load(None).expect("defaults");
    ours.auth.hs256_secret = secret.to_owned().into();
    let claims = Verifier::new(&ours.auth).expect("verifier").verify(&token).expect("verifies");
    assert_eq!(claims.org.as_deref(), Some("org_1"));
    let mut other = ours.clone();
    studyspot_config::secrets::Secrets::random().apply(&mut other);
    assert!(Verifier::new(&other.auth).expect("verifier").verify(&token).is_err());

    // A token the gateway would refuse for living too long is not minted.
    let long = studyspot(
        &home,
        &["token", "--organization", "org_1", "--role", "staff", "--ttl-seconds", "2592000"],
    );
    assert!(!long.status.success());
    assert!(String::from_utf8_lossy(&long.stderr).contains("max_token_lifetime_secs"), "{long:?}");
    let _ = std::fs::remove_dir_all(&home);
}
