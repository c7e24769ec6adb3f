//! Tenancy through the whole front door. Organization A holds real records in every domain, made
//! through the gateway and applied by the real consumers; then B's staff, B's member (whose member
//! id is that of A's member) and A's other member walk every HTTP operation of the OpenAPI
//! document and every gRPC method of the proto at A's records: reads of A's ids are refused with a
//! code, lists answer what an empty organization gets, writes on A's ids or naming A's records in
//! their bodies are refused at the door or rejected by the consumer with a code — and A's records
//! read the same before and after. The tables are checked against the contracts first, so a new
//! route or rpc without a case fails here by name.

mod cases;
mod grpc_table;
mod http_table;
mod seed;
mod stream;

use std::time::Instant;

use futures::{StreamExt, future::LocalBoxFuture};
use studyspot_grpc_api::gateway_client::GatewayClient;
use studyspot_tenancy_suite::{
    operations::{coverage_gaps, grpc_methods, http_operations},
    stack::Stack,
};

use crate::cases::{Expect, GrpcCase, HttpCase, Tokens};

/// What organization B holds while a phase runs, and so which checks it runs: the answers compared
/// with an empty organization's need B empty; the refusals need B's own plan and subscription (and
/// no record of B's under A's ids yet); then B makes records of its own under A's ids (changing),
/// and reads them (owning).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Empty,
    Seeded,
    Changing,
    Owning,
}

fn phase_of(expect: &Expect) -> Phase {
    match expect {
        Expect::NothingOfA => Phase::Empty,
        Expect::AppliedOwn => Phase::Changing,
        Expect::ReadsOwn => Phase::Owning,
        Expect::Refused(..) | Expect::Rejected(_) | Expect::AnsweredOwn(..) | Expect::Public(..) => {
            Phase::Seeded
        }
    }
}

/// Runs one phase of both tables, a few checks at a time; returns the failures.
async fn run(
    stack: &Stack,
    tokens: &Tokens,
    client: &GatewayClient<tonic::transport::Channel>,
    http: &[HttpCase],
    grpc: &[GrpcCase],
    phase: Phase,
) -> (usize, Vec<String>) {
    let mut checks: Vec<LocalBoxFuture<'_, Result<(), String>>> = Vec::new();
    for case in http {
        for probe in &case.probes {
            if phase == Phase::Empty {
                checks.push(Box::pin(cases::control_http(stack, tokens, case.op, probe)));
            }
            for (who, expect) in probe.checks.iter().filter(|(_, e)| phase_of(e) == phase) {
                checks.push(Box::pin(cases::check_http(stack, tokens, case.op, probe, *who, expect)));
            }
        }
    }
    for case in grpc {
        for probe in &case.probes {
            if phase == Phase::Empty {
                checks.push(Box::pin(cases::control_grpc(client, tokens, case.rpc, probe)));
            }
            for (who, expect) in probe.checks.iter().filter(|(_, e)| phase_of(e) == phase) {
                checks
                    .push(Box::pin(cases::check_grpc(stack, client, tokens, case.rpc, probe, *who, expect)));
            }
        }
    }
    let count = checks.len();
    let results: Vec<Result<(), String>> = futures::stream::iter(checks).buffer_unordered(8).collect().await;
    (count, results.into_iter().filter_map(Result::err).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_operation_of_the_gateway_crosses_an_organization_or_a_member() {
    let started = Instant::now();
    // The tables against the contracts first: a route or rpc without a case is named before any
    // record is made.
    let mut gaps = coverage_gaps("HTTP", http_table::table("", "").iter().map(|c| c.op), &http_operations());
    gaps.extend(coverage_gaps("gRPC", grpc_table::table("", "").iter().map(|c| c.rpc), &grpc_methods()));
    assert!(gaps.is_empty(), "the tenancy tables do not match what the gateway serves:\n{}", gaps.join("\n"));

    let stack = Stack::start().await;
    let tokens = Tokens::new(&stack);
    let seeded = seed::organization_a(&stack, &tokens.a_owner).await;
    let seeded_at = started.elapsed();
    let before = seed::picture(&stack, &tokens.a_owner, &tokens.a_member_1).await;
    let http = http_table::table(&seeded.a_command, &stack.org_a);
    let grpc = grpc_table::table(&seeded.a_command, &stack.org_a);
    let client = GatewayClient::new(stack.channel().await);

    let mut failures = Vec::new();
    let mut checked = 0;
    for phase in [Phase::Empty, Phase::Seeded, Phase::Changing, Phase::Owning] {
        if phase == Phase::Seeded {
            seed::organization_b(&stack, &tokens.b_staff).await;
        }
        let (count, failed) = run(&stack, &tokens, &client, &http, &grpc, phase).await;
        checked += count;
        failures.extend(failed);
    }

    let after = seed::picture(&stack, &tokens.a_owner, &tokens.a_member_1).await;
    for ((path, status, text), (_, status_after, text_after)) in before.iter().zip(&after) {
        if (status, text) != (status_after, text_after) {
            failures
                .push(format!("A's {path} changed: {status} {text}\n  became {status_after} {text_after}"));
        }
    }
    failures.extend(stream::check(&stack, &tokens, &client).await);

    // What the tables accept other than a refusal, and why: the public routes, answers about the
    // caller's own organization, and lists A has nothing in.
    let http_notes =
        http.iter().flat_map(|c| c.probes.iter().map(move |p| (c.op, p.checks.iter(), p.control)));
    let grpc_notes =
        grpc.iter().flat_map(|c| c.probes.iter().map(move |p| (c.rpc, p.checks.iter(), p.control)));
    for (op, checks, control) in http_notes.chain(grpc_notes) {
        for (who, expect) in checks {
            if let Some(reason) = expect.reason() {
                eprintln!("{op} as {who:?}: {reason}");
            }
        }
        if let Some(reason) = control.as_ref().and_then(|c| c.reason()) {
            eprintln!("{op}: no control: {reason}");
        }
    }
    eprintln!(
        "tenancy: {} HTTP operations and {} gRPC methods, {} checks and the event streams, in {:.0?} (seeding {:.0?})",
        http.len(),
        grpc.len(),
        checked,
        started.elapsed(),
        seeded_at
    );
    assert!(failures.is_empty(), "{} tenancy failures:\n{}", failures.len(), failures.join("\n"));
}
