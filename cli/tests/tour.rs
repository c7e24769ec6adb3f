//! The README's tour, run command by command on a fresh stack, gives what the README says.
//!
//! The commands are read from README.md itself (every `sh` block from "A five-minute tour" to the
//! next top-level section), so the tour and this test cannot drift apart: each command must have
//! its check below, and each check its command. They run in one bash session (variables such as
//! `TOKEN` and `H` carry over, as in a terminal) against a stack of this test's own — its own
//! database, topics and loopback ports — with the tour's fixed local addresses replaced by the
//! stack's. Like a person reading each answer before typing the next command, the test waits
//! until a command the gateway accepted is decided before running the next, and reads a
//! document the tour says becomes something (a numbered invoice) again until it does.

mod support;

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use serde_json::Value;
use support::{BIN, LocalStack};
use tokio::io::AsyncWriteExt as _;

const README: &str = include_str!("../../README.md");

/// One command of the tour and the comments after it (what it says the command gives).
#[derive(Debug, Clone)]
struct TourCommand {
    text: String,
    note: String,
}

/// The tour's commands: every `sh` block between the tour's heading and the next `## ` heading.
fn tour_commands(readme: &str) -> Vec<TourCommand> {
    let start = readme.find("## A five-minute tour").expect("the README has a tour");
    let rest = &readme[start + 3..];
    let tour = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    let mut commands = Vec::new();
    let mut lines = tour.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```sh" {
            continue;
        }
        let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        commands.extend(split_commands(&block));
    }
    commands
}

/// Splits a block into commands: a command goes on while a quote is open or a line ends in `\`;
/// a `#` outside quotes starts a comment, and comment-only lines belong to the command before.
fn split_commands(block: &[&str]) -> Vec<TourCommand> {
    let mut commands: Vec<TourCommand> = Vec::new();
    let mut text = String::new();
    let mut note = String::new();
    let (mut single, mut double) = (false, false);
    for line in block {
        if text.is_empty() && line.trim_start().starts_with('#') {
            if let Some(last) = commands.last_mut() {
                last.note.push(' ');
                last.note.push_str(line.trim().trim_start_matches('#').trim());
            }
            continue;
        }
        if text.is_empty() && line.trim().is_empty() {
            continue;
        }
        let mut code = String::new();
        let mut escaped = false;
        for (i, c) in line.char_indices() {
            if escaped {
                escaped = false;
            } else if c == '\\' && !single {
                escaped = true;
            } else if c == '\'' && !double {
                single = !single;
            } else if c == '"' && !single {
                double = !double;
            } else if c == '#' && !single && !double && (i == 0 || line[..i].ends_with(char::is_whitespace)) {
                note.push_str(line[i + 1..].trim());
                break;
            }
            code.push(c);
        }
        let code = code.trim_end();
        let continued = code.ends_with('\\') && !single && !double;
        // A continued line goes on after a space, a line inside quotes after its newline.
        text.push_str(code.strip_suffix('\\').unwrap_or(code));
        text.push(if continued { ' ' } else { '\n' });
        if !single && !double && !continued {
            commands.push(TourCommand { text: text.trim().to_owned(), note: std::mem::take(&mut note) });
            text.clear();
        }
    }
    assert!(text.trim().is_empty(), "a command of the tour never ends: {text}");
    commands
}

/// What a command gave.
struct Ran {
    out: String,
    err: String,
    rc: i32,
}

impl Ran {
    fn json(&self) -> Result<Value, String> {
        serde_json::from_str(self.out.trim()).map_err(|e| format!("not JSON ({e}): {}", self.out))
    }
}

/// What the test learned along the way.
#[derive(Default)]
struct Context {
    /// The check-in's command id, for the tour's `<command_id>`.
    command_id: Option<String>,
    /// The outcome (`GET /api/commands/{id}`) of the last command the gateway accepted.
    outcome: Option<Value>,
}

/// A check of what one command gave (the run so far in `Context`).
type Check = fn(&Ran, &Context, &Path) -> Result<(), String>;

fn ok(ran: &Ran) -> Result<(), String> {
    if ran.rc == 0 { Ok(()) } else { Err(format!("exit {}: {}{}", ran.rc, ran.out, ran.err)) }
}

fn applied(ran: &Ran, context: &Context) -> Result<(), String> {
    ok(ran)?;
    let answer = ran.json()?;
    if answer["command_id"].as_str().is_none() || answer["status_url"].as_str().is_none() {
        return Err(format!("not a 202 answer: {answer}"));
    }
    let outcome = context.outcome.as_ref().ok_or("no outcome read")?;
    if outcome["status"] == "applied" { Ok(()) } else { Err(format!("not applied: {outcome}")) }
}

fn json_has(ran: &Ran, what: &str, test: impl Fn(&Value) -> bool) -> Result<(), String> {
    ok(ran)?;
    let json = ran.json()?;
    if test(&json) { Ok(()) } else { Err(format!("{what}: {json}")) }
}

/// Each command's check, by a piece of the command that names it, in the order of the commands
/// it names (two equal commands, two checks). Every command of the tour has one.
fn checks() -> Vec<(&'static str, Vec<Check>)> {
    vec![
        (
            "$BIN/studyspot topics list",
            vec![|r, _, _| {
                ok(r)?;
                let lists = r.out.contains("studyspot.billing.events.v1  key=")
                    && r.out.contains("studyspot.billing.PaymentCreated");
                if lists { Ok(()) } else { Err(format!("not the catalogue: {}", r.out)) }
            }],
        ),
        (
            "/subjects",
            vec![|r, _, _| {
                json_has(r, "the registered subjects", |j| {
                    j.as_array().is_some_and(|s| {
                        s.iter().any(|s| s == "studyspot.billing.events.v1-studyspot.billing.PaymentCreated")
                    })
                })
            }],
        ),
        (
            "/config/studyspot.billing.events.v1-studyspot.billing.PaymentCreated",
            vec![|r, _, _| json_has(r, "its compatibility rule", |j| j["compatibilityLevel"].is_string())],
        ),
        (
            "$BIN/studyspot demo",
            vec![|r, _, _| {
                ok(r)?;
                if r.out.contains("Every flow succeeded") { Ok(()) } else { Err(r.out.clone()) }
            }],
        ),
        ("BIN=", vec![|r, _, _| ok(r)]),
        ("TOKEN=$(", vec![|r, _, _| ok(r)]),
        ("H=(", vec![|r, _, _| ok(r)]),
        ("/api/attendance/venues", vec![|r, c, _| applied(r, c)]),
        ("/api/attendance/passes", vec![|r, c, _| applied(r, c)]),
        (
            "/api/attendance/check-ins",
            vec![|r, c, _| {
                applied(r, c)?;
                json_has(r, "the session named", |j| j["session_id"].is_string())
            }],
        ),
        (
            "/api/commands/<command_id>",
            vec![|r, _, _| {
                json_has(r, "applied, with its follow-on events", |j| {
                    j["status"] == "applied" && j["events"].as_array().is_some_and(|e| !e.is_empty())
                })
            }],
        ),
        (
            "\"amount_minor\": 0",
            vec![|r, _, _| {
                json_has(r, "a validation error naming amount_minor", |j| {
                    j["error"]["code"] == "validation_failed" && j["error"]["field"] == "amount_minor"
                })
            }],
        ),
        (
            "/metrics | grep studyspot_consumer",
            vec![|r, _, _| {
                ok(r)?;
                let lines: Vec<&str> = r.out.lines().collect();
                let batches = lines.iter().any(|l| l.starts_with("studyspot_consumer_batch"));
                if batches && lines.iter().all(|l| l.contains("studyspot_consumer")) {
                    Ok(())
                } else {
                    Err(format!("no consumer metrics: {}", r.out))
                }
            }],
        ),
        ("/ready", vec![|r, _, _| json_has(r, "ready", |j| j["ready"] == true)]),
        (
            "psql",
            vec![|r, _, _| {
                ok(r)?;
                let occupied = r.out.lines().any(|l| {
                    let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                    cells == ["ven_main", "1"]
                });
                if occupied { Ok(()) } else { Err(format!("ven_main with its one member: {}", r.out)) }
            }],
        ),
        ("/api/subscriptions/plans", vec![|r, c, _| applied(r, c)]),
        ("\"subscription_id\": \"sub_ada\"", vec![|r, c, _| applied(r, c)]),
        ("/api/subscriptions/billing", vec![|r, c, _| applied(r, c)]),
        (
            "/api/subscriptions/sub_ada/invoices",
            vec![|r, _, _| {
                // In its trial: nothing to invoice yet.
                json_has(r, "no invoice in the trial", |j| j["items"].as_array().is_some_and(Vec::is_empty))
            }],
        ),
        (
            "/api/subscriptions/analytics/dashboard",
            vec![|r, _, _| {
                // sub_ada, in its trial, counted as it reads.
                json_has(r, "one trialing subscription in EUR", |j| {
                    j["currencies"].as_array().is_some_and(|c| {
                        c.iter().any(|c| c["currency"] == "EUR" && c["trialing"] == 1 && c["active"] == 0)
                    })
                })
            }],
        ),
        ("-XPOST localhost:8080/api/payments/invoices \"", vec![|r, c, _| applied(r, c)]),
        (
            "localhost:8080/api/payments/invoices/inv_ada_locker -H",
            vec![
                |r, _, _| {
                    json_has(r, "open and numbered", |j| j["status"] == "open" && j["number"] == "INV-000001")
                },
                |r, _, _| json_has(r, "paid", |j| j["status"] == "paid" && j["amount_paid_minor"] == 500),
            ],
        ),
        ("/api/payments/invoices/inv_ada_locker/payments", vec![|r, c, _| applied(r, c)]),
        ("/api/notifications/subscriptions", vec![|r, c, _| applied(r, c)]),
        ("/api/notifications/templates", vec![|r, c, _| applied(r, c)]),
        (
            "/api/notifications?recipient_id=mem_ada",
            vec![|r, _, _| {
                json_has(r, "mem_ada's messages, each in a documented status", |j| {
                    j["items"].as_array().is_some_and(|items| {
                        !items.is_empty()
                            && items.iter().all(|n| {
                                ["queued", "deferred", "sent", "failed", "suppressed"]
                                    .contains(&n["status"].as_str().unwrap_or_default())
                            })
                    })
                })
            }],
        ),
        ("/api/notifications/campaigns -H", vec![|r, c, _| applied(r, c)]),
        // mem_ada checked in above, so the campaign reaches someone.
        ("/api/notifications/campaigns/cmp_exams/launch", vec![|r, c, _| applied(r, c)]),
        (
            "-o checkins.ndjson",
            vec![|r, _, dir| {
                ok(r)?;
                let text = std::fs::read_to_string(dir.join("checkins.ndjson")).map_err(|e| e.to_string())?;
                let lines: Vec<&str> = text.lines().collect();
                // One check-in: the same idempotency key again produced nothing.
                if lines.len() == 1 && lines[0].contains("CheckIn") && lines[0].contains("org_tour") {
                    Ok(())
                } else {
                    Err(format!("one CheckIn of org_tour: {text}"))
                }
            }],
        ),
        (
            "--format parquet -o history/",
            vec![|r, _, dir| {
                ok(r)?;
                let files = std::fs::read_dir(dir.join("history")).map_err(|e| e.to_string())?;
                let parquet = files
                    .filter_map(Result::ok)
                    .filter(|f| f.path().extension().is_some_and(|x| x == "parquet"));
                if parquet.count() > 3 { Ok(()) } else { Err("one Parquet file per record type".into()) }
            }],
        ),
        ("--republish-to", vec![|r, _, _| ok(r)]),
        (
            "projection checksum attendance",
            vec![|r, _, _| {
                ok(r)?;
                if r.out.contains("venues") {
                    Ok(())
                } else {
                    Err(format!("row counts and a digest: {}", r.out))
                }
            }],
        ),
        (
            "$BIN/studyspot rebuild attendance",
            vec![|r, _, _| {
                ok(r)?;
                if r.out.contains("rebuilt attendance") { Ok(()) } else { Err(r.out.clone()) }
            }],
        ),
        ("projection drop-old attendance", vec![|r, _, _| ok(r)]),
    ]
}

/// Commands of the tour this test does not run, and why.
const NOT_RUN: [(&str, &str); 1] = [(
    "./deploy/local/status",
    "it reads the stack `up` started (its pid files and fixed ports); deploy/local/test-scripts checks it",
)];

/// A bash session the commands run in, one after the other, each output to files of its own.
struct Shell {
    stdin: tokio::process::ChildStdin,
    child: tokio::process::Child,
    dir: PathBuf,
    n: usize,
}

impl Shell {
    async fn run(&mut self, command: &str, within: Duration) -> Ran {
        self.n += 1;
        let n = self.n;
        let files = self.dir.join(".tour");
        let script = format!(
            "{{ {command}\n}} >'{f}/out.{n}' 2>'{f}/err.{n}' </dev/null; echo $? >'{f}/rc.{n}.tmp'; mv '{f}/rc.{n}.tmp' '{f}/rc.{n}'\n",
            f = files.display()
        );
        self.stdin.write_all(script.as_bytes()).await.expect("to bash");
        self.stdin.flush().await.expect("to bash");
        let deadline = Instant::now() + within;
        let rc_file = files.join(format!("rc.{n}"));
        // The poll's cadence; the deadline bounds the wait.
        let mut cadence = tokio::time::interval(Duration::from_millis(100));
        loop {
            cadence.tick().await;
            if let Ok(rc) = std::fs::read_to_string(&rc_file) {
                return Ran {
                    out: std::fs::read_to_string(files.join(format!("out.{n}"))).unwrap_or_default(),
                    err: std::fs::read_to_string(files.join(format!("err.{n}"))).unwrap_or_default(),
                    rc: rc.trim().parse().unwrap_or(-1),
                };
            }
            assert!(self.child.try_wait().expect("bash").is_none(), "the tour's shell exited at {command}");
            assert!(Instant::now() < deadline, "{command}\n: still running after {within:?}");
        }
    }
}

#[test]
fn the_tour_is_read_from_the_readme_command_by_command() {
    let commands = tour_commands(README);
    let texts: Vec<&str> = commands.iter().map(|c| c.text.as_str()).collect();
    assert!(texts.contains(&"./deploy/local/status"), "{texts:#?}");
    let check_in =
        commands.iter().find(|c| c.text.contains("/api/attendance/check-ins")).expect("a check-in");
    assert!(
        check_in.text.contains("-H 'idempotency-key: tour-1'") && check_in.note.contains("202"),
        "{check_in:?}"
    );
    let venue = commands.iter().find(|c| c.text.contains("/api/attendance/venues")).expect("a venue");
    assert!(venue.text.ends_with("\"closes\":\"24:00\"}]}'"), "a multi-line command is whole: {venue:?}");
    assert!(venue.note.contains("opening_hours is required"), "{venue:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_tour_gives_what_it_says() {
    let commands = tour_commands(README);
    let checks = checks();
    // Every command is checked (or named as not run), and every check names commands of the tour.
    for command in &commands {
        let named = checks.iter().filter(|(key, _)| command.text.contains(key)).count()
            + NOT_RUN.iter().filter(|(key, _)| command.text == *key).count();
        assert_eq!(named, 1, "the tour's command has {named} checks (want one):\n{}", command.text);
    }
    for (key, list) in &checks {
        let matching = commands.iter().filter(|c| c.text.contains(key)).count();
        assert_eq!(
            matching,
            list.len(),
            "{key:?} names {matching} commands of the tour, with {} checks",
            list.len()
        );
    }

    let local = LocalStack::start("tour").await;
    // As `up` does before its services start.
    let registered = std::process::Command::new(BIN)
        .args(["schemas", "register"])
        .envs(local.cli_env())
        .output()
        .expect("studyspot schemas register");
    assert!(registered.status.success(), "{}", String::from_utf8_lossy(&registered.stderr));

    let dir = local.home.join("tour");
    std::fs::create_dir_all(dir.join(".tour")).expect("the tour's directory");
    let bin_dir = Path::new(BIN).parent().expect("bin dir").display().to_string();
    let registry = local.stack.registry_url.trim_start_matches("http://").to_owned();
    let prefixed_target = format!("{}staging.billing.events.v1", local.stack.prefix);
    let psql = format!("psql '{}'", local.stack.database_url);
    // The local stack's fixed addresses → this stack's; each must be used by the tour.
    let substitutions: Vec<(&str, String)> = vec![
        ("BIN=${CARGO_TARGET_DIR:-$HOME/.cache/studyspot-target}/release", format!("BIN='{bin_dir}'")),
        ("localhost:8080", local.gateway_listen().to_owned()),
        ("localhost:8081", registry),
        ("localhost:9103", local.ops("attendance").to_owned()),
        ("PGPASSWORD=studyspot psql -h 127.0.0.1 -U studyspot studyspot", psql),
        ("staging.billing.events.v1", prefixed_target),
    ];
    for (from, _) in &substitutions {
        assert!(commands.iter().any(|c| c.text.contains(from)), "the tour no longer says {from}");
    }

    let mut child = tokio::process::Command::new("bash")
        .args(["--noprofile", "--norc"])
        .current_dir(&dir)
        .envs(local.cli_env())
        .env("HOME", &local.home)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("bash");
    let stdin = child.stdin.take().expect("stdin");
    let mut shell = Shell { stdin, child, dir: dir.clone(), n: 0 };
    let token = String::from_utf8(
        std::process::Command::new(BIN)
            .args(["token", "--organization", "org_tour", "--role", "staff"])
            .envs(local.cli_env())
            .output()
            .expect("a token")
            .stdout,
    )
    .expect("utf-8");
    let http = reqwest::Client::new();

    let mut context = Context::default();
    let mut seen: Vec<(&str, usize)> = Vec::new();
    for command in &commands {
        if NOT_RUN.iter().any(|(key, _)| command.text == *key) {
            continue;
        }
        let mut text = command.text.clone();
        for (from, to) in &substitutions {
            text = text.replace(from, to);
        }
        if let Some(id) = &context.command_id {
            text = text.replace("<command_id>", id);
        }
        assert!(!text.contains('<') || text.contains("<<"), "a placeholder left: {text}");
        let (key, list) = checks.iter().find(|(key, _)| command.text.contains(key)).expect("checked above");
        let index = seen.iter().filter(|(k, _)| k == key).count();
        seen.push((key, index));
        let check = list[index];
        let within = if text.contains(" demo") || text.contains(" rebuild ") {
            Duration::from_secs(300)
        } else {
            Duration::from_secs(60)
        };
        // A read the tour says becomes something is read again until it does (or the deadline).
        let rereads =
            command.text.starts_with("curl -s localhost") || command.text.starts_with("curl -s \"localhost");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut cadence = tokio::time::interval(Duration::from_millis(300));
        let ran = loop {
            cadence.tick().await;
            let ran = shell.run(&text, within).await;
            context.outcome = None;
            if let Ok(answer) = ran.json()
                && let Some(status_url) = answer["status_url"].as_str()
            {
                context.outcome = Some(decided(&http, local.gateway_listen(), status_url, &token).await);
            }
            if !rereads || check(&ran, &context, &dir).is_ok() || Instant::now() > deadline {
                break ran;
            }
        };
        let shown: String = ran.out.chars().take(300).collect();
        eprintln!("$ {}\n{shown}", command.text);
        if let Err(why) = check(&ran, &context, &dir) {
            panic!(
                "the tour's command\n{}\ndoes not give what the README says ({}): {why}\n{}\n{}",
                command.text,
                command.note.trim(),
                ran.err,
                local.logs()
            );
        }
        if command.text.contains("/api/attendance/check-ins") {
            let answer = ran.json().expect("JSON");
            context.command_id = answer["command_id"].as_str().map(str::to_owned);
            // "the same key again: the same answer, nothing new produced"
            let again = shell.run(&text, within).await;
            assert_eq!(again.out, ran.out, "the same idempotency key, the same answer");
        }
    }
}

/// Waits until the command at `status_url` is decided; its status.
async fn decided(http: &reqwest::Client, gateway: &str, status_url: &str, token: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status: Value = http
            .get(format!("http://{gateway}{status_url}?wait=5s"))
            .bearer_auth(token.trim())
            .send()
            .await
            .expect("command status")
            .json()
            .await
            .expect("JSON");
        if status["status"] != "accepted" || Instant::now() > deadline {
            return status;
        }
    }
}
