//! The vocabulary of the tables: who asks, what they must get, and the runner that asks and
//! checks — for HTTP and gRPC alike.

use futures::future::BoxFuture;
use reqwest::Method;
use serde_json::Value;
use studyspot_grpc_api::{GetCommandRequest, gateway_client::GatewayClient};
use studyspot_tenancy_suite::{
    reply::{GrpcReply, HttpReply, grpc_code},
    stack::Stack,
};
use studyspot_tokens::Role;
use tonic::{Code, transport::Channel};

use crate::seed::{A_MARK, MEMBER_1_MARK, MEMBER_1_SECRET, ORG_SECRET};

/// Who asks. The attackers are staff of organization B, a member of B whose member id is that of
/// A's member (`mem_1`: ids are only unique within an organization), and A's other member
/// (`mem_2`), who may see A's shared records but none of `mem_1`'s. The public routes are asked
/// with no token at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    BStaff,
    BMember,
    AMember2,
    Anonymous,
}

/// Who, in A, sees the records a list case looks for (the positive control: the same request
/// does find A's records for someone entitled to them, so their absence means something).
#[derive(Debug, Clone, Copy)]
pub enum Control {
    /// A's owner finds A's records (`alpha`) in the same answer.
    OwnerSees,
    /// A's `mem_1` finds their own records (`alpha1`) in the same answer.
    Member1Sees,
    /// A's owner gets a different answer than the owner of an empty organization (figures).
    OwnerDiffers,
    /// Nothing of A is in this answer even for A (the reason says why); absence is all we check.
    Unseeded(&'static str),
}

#[derive(Debug, Clone)]
pub enum Expect {
    /// The gateway refuses: this HTTP status (its gRPC twin) and error code.
    Refused(u16, &'static str),
    /// Accepted (202), then the consumer rejects the command with this code
    /// (`…CommandRejected`, seen through the command's status).
    Rejected(&'static str),
    /// An answer about the caller's own organization that holds none of A's records: for B, the
    /// very answer an empty organization gets; for A's `mem_2`, nothing of `mem_1`'s.
    NothingOfA,
    /// Accepted and applied in the caller's own organization, where the ids it names are its own
    /// (the same id in A is another record, left as it was).
    AppliedOwn,
    /// Read after B's own commands: B's own record under the id A's has too — 200, and nothing of
    /// A's in it.
    ReadsOwn,
    /// Answered for the caller's own organization with this status, from what the request itself
    /// carries (a token signed for the caller's organization, a preview of the text sent).
    AnsweredOwn(u16, &'static str),
    /// A public route (no bearer token): the outsider gets this status and code (none: a body
    /// that is not an error) — the route is authenticated by a signature, or carries no tenant
    /// data; the reason says which.
    Public(u16, Option<&'static str>, &'static str),
}

impl Expect {
    /// Why an answer that is not a refusal is right: the table says it, the run's log shows it.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Expect::AnsweredOwn(_, reason) | Expect::Public(_, _, reason) => Some(reason),
            _ => None,
        }
    }
}

impl Control {
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Control::Unseeded(reason) => Some(reason),
            _ => None,
        }
    }
}

pub struct Tokens {
    pub a_owner: String,
    pub a_member_1: String,
    pub a_member_2: String,
    pub b_staff: String,
    pub b_member: String,
    /// An organization with nothing in it: what an empty answer looks like.
    pub c_owner: String,
    pub c_staff: String,
    pub c_member: String,
    pub org_b: String,
    pub org_c: String,
}

impl Tokens {
    pub fn new(stack: &Stack) -> Self {
        let org_c = stack.org_b.replace("beta", "gamma");
        Self {
            a_owner: stack.token(&stack.org_a, Role::Owner, None),
            a_member_1: stack.token(&stack.org_a, Role::Member, Some("mem_1")),
            a_member_2: stack.token(&stack.org_a, Role::Member, Some("mem_2")),
            b_staff: stack.token(&stack.org_b, Role::Staff, None),
            b_member: stack.token(&stack.org_b, Role::Member, Some("mem_1")),
            c_owner: stack.token(&org_c, Role::Owner, None),
            c_staff: stack.token(&org_c, Role::Staff, None),
            c_member: stack.token(&org_c, Role::Member, Some("mem_1")),
            org_b: stack.org_b.clone(),
            org_c,
        }
    }

    pub fn of(&self, who: Who) -> Option<&str> {
        match who {
            Who::BStaff => Some(&self.b_staff),
            Who::BMember => Some(&self.b_member),
            Who::AMember2 => Some(&self.a_member_2),
            Who::Anonymous => None,
        }
    }

    /// The same role in the empty organization C (for B's callers).
    fn empty_twin(&self, who: Who) -> Option<&str> {
        match who {
            Who::BStaff => Some(&self.c_staff),
            Who::BMember => Some(&self.c_member),
            Who::AMember2 | Who::Anonymous => None,
        }
    }

    /// An answer with the organization's own id taken out, to compare B's with C's.
    fn neutral(&self, text: &str) -> String {
        text.replace(&self.org_b, "<org>").replace(&self.org_c, "<org>")
    }
}

/// What must never reach `who`, anywhere in any answer; and in a list, no record id either.
fn forbidden(who: Who, org_a: &str, expect: &Expect) -> Vec<String> {
    let mut words = vec![MEMBER_1_SECRET.to_owned()];
    if who != Who::AMember2 {
        words.push(ORG_SECRET.to_owned());
        // This refusal names the organization the caller asked for, in its header: their words.
        if !matches!(expect, Expect::Refused(403, "organization_mismatch")) {
            words.push(org_a.to_owned());
        }
    }
    let list = matches!(expect, Expect::NothingOfA);
    if list {
        words.push((if who == Who::AMember2 { MEMBER_1_MARK } else { A_MARK }).to_owned());
    }
    words
}

fn leaked(text: &str, words: &[String]) -> Option<String> {
    words.iter().find(|w| text.contains(w.as_str())).map(|w| format!("the answer holds {w:?}: {text}"))
}

/// One HTTP request of a case, the outcome each caller must get, and (for lists) its control.
pub struct HttpProbe {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Value>,
    pub checks: Vec<(Who, Expect)>,
    pub control: Option<Control>,
}

pub struct HttpCase {
    /// `"METHOD /path/{param}"`, as in the OpenAPI document.
    pub op: &'static str,
    pub probes: Vec<HttpProbe>,
}

/// A gRPC call with a token, the request built afresh each time.
pub type GrpcCall =
    Box<dyn Fn(GatewayClient<Channel>, Option<String>) -> BoxFuture<'static, GrpcReply> + Send + Sync>;

pub struct GrpcProbe {
    pub call: GrpcCall,
    pub checks: Vec<(Who, Expect)>,
    pub control: Option<Control>,
}

pub struct GrpcCase {
    /// `"Service/Method"`, as in the descriptor set.
    pub rpc: &'static str,
    pub probes: Vec<GrpcProbe>,
}

/// A request with the bearer token in the metadata, as HTTP's Authorization header.
pub fn authorized<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("metadata"));
    }
    request
}

pub async fn check_http(
    stack: &Stack,
    tokens: &Tokens,
    op: &str,
    probe: &HttpProbe,
    who: Who,
    expect: &Expect,
) -> Result<(), String> {
    let what = format!("{op} ({} {}) as {who:?}", probe.method, probe.path);
    let reply = send(stack, probe, tokens.of(who)).await;
    if let Some(leak) = leaked(&reply.text, &forbidden(who, &stack.org_a, expect)) {
        return Err(format!("{what}: LEAK: {leak}"));
    }
    let wrong =
        |reply: &HttpReply| format!("{what}: expected {expect:?}, got {} {}", reply.status, reply.text);
    match expect {
        Expect::Refused(status, code) | Expect::Public(status, Some(code), _) => {
            if reply.status != *status || reply.code() != Some(*code) {
                return Err(wrong(&reply));
            }
        }
        Expect::Public(status, None, _) | Expect::AnsweredOwn(status, _) => {
            if reply.status != *status || reply.code().is_some() {
                return Err(wrong(&reply));
            }
        }
        Expect::Rejected(_) | Expect::AppliedOwn => {
            let Some(command) = reply.command_id().filter(|_| reply.status == 202) else {
                return Err(wrong(&reply));
            };
            let token = tokens.of(who).expect("commands are sent with a token");
            let decision = stack.decision(command, token).await;
            let decided = (decision["status"].as_str(), decision["rejection"]["code"].as_str());
            let wanted = match expect {
                Expect::Rejected(code) => ("rejected", Some(*code)),
                _ => ("applied", None),
            };
            if (decided.0, decided.1) != (Some(wanted.0), wanted.1) {
                return Err(format!("{what}: expected {expect:?}, the consumer decided {decision}"));
            }
        }
        Expect::ReadsOwn => {
            if reply.status != 200 {
                return Err(wrong(&reply));
            }
        }
        Expect::NothingOfA => {
            if reply.status != 200 {
                return Err(wrong(&reply));
            }
            if let Some(twin) = tokens.empty_twin(who) {
                let empty = send(stack, probe, Some(twin)).await;
                if tokens.neutral(&reply.text) != tokens.neutral(&empty.text) {
                    return Err(format!(
                        "{what}: B's answer differs from an empty organization's: {} vs {}",
                        reply.text, empty.text
                    ));
                }
            }
        }
    }
    Ok(())
}

async fn send(stack: &Stack, probe: &HttpProbe, token: Option<&str>) -> HttpReply {
    let headers: Vec<(&str, &str)> = probe.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    stack.http_with(probe.method.clone(), &probe.path, token, &headers, probe.body.as_ref()).await
}

pub async fn control_http(stack: &Stack, tokens: &Tokens, op: &str, probe: &HttpProbe) -> Result<(), String> {
    let what = format!("{op} ({} {}), control", probe.method, probe.path);
    match probe.control {
        None | Some(Control::Unseeded(_)) => Ok(()),
        Some(Control::OwnerSees) => sees(&what, &send(stack, probe, Some(&tokens.a_owner)).await, A_MARK),
        Some(Control::Member1Sees) => {
            sees(&what, &send(stack, probe, Some(&tokens.a_member_1)).await, MEMBER_1_MARK)
        }
        Some(Control::OwnerDiffers) => {
            let a = send(stack, probe, Some(&tokens.a_owner)).await;
            let c = send(stack, probe, Some(&tokens.c_owner)).await;
            if a.status == 200 && a.text != c.text {
                Ok(())
            } else {
                Err(format!(
                    "{what}: A's owner gets what an empty organization gets: {} {}",
                    a.status, a.text
                ))
            }
        }
    }
}

fn sees(what: &str, reply: &HttpReply, mark: &str) -> Result<(), String> {
    if reply.status == 200 && reply.text.contains(mark) {
        Ok(())
    } else {
        Err(format!("{what}: A's own caller does not find {mark:?}: {} {}", reply.status, reply.text))
    }
}

pub async fn check_grpc(
    stack: &Stack,
    client: &GatewayClient<Channel>,
    tokens: &Tokens,
    rpc: &str,
    probe: &GrpcProbe,
    who: Who,
    expect: &Expect,
) -> Result<(), String> {
    let what = format!("{rpc} as {who:?}");
    let ask = |token: Option<&str>| (probe.call)(client.clone(), token.map(str::to_owned));
    let reply = ask(tokens.of(who)).await;
    if let Some(leak) = leaked(&reply.text, &forbidden(who, &stack.org_a, expect)) {
        return Err(format!("{what}: LEAK: {leak}"));
    }
    let wrong = |reply: &GrpcReply| format!("{what}: expected {expect:?}, got {reply:?}");
    match expect {
        Expect::Refused(status, code) | Expect::Public(status, Some(code), _) => {
            if reply.code != grpc_code(*status) || reply.reason.as_deref() != Some(*code) {
                return Err(wrong(&reply));
            }
        }
        Expect::Public(_, None, _) | Expect::AnsweredOwn(..) | Expect::ReadsOwn => {
            if reply.code != Code::Ok {
                return Err(wrong(&reply));
            }
        }
        Expect::Rejected(_) | Expect::AppliedOwn => {
            let Some(command) = reply.command_id.clone() else {
                return Err(wrong(&reply));
            };
            let token = tokens.of(who).expect("commands are sent with a token");
            let status = client
                .clone()
                .get_command(authorized(
                    GetCommandRequest { command_id: command, wait_ms: Some(30_000) },
                    Some(token),
                ))
                .await
                .map_err(|e| format!("{what}: the command's status: {e:?}"))?
                .into_inner();
            let wanted = match expect {
                Expect::Rejected(code) => ("rejected", Some(*code)),
                _ => ("applied", None),
            };
            if (status.status.as_str(), status.rejection_code.as_deref()) != wanted {
                return Err(format!("{what}: expected {expect:?}, the consumer decided {status:?}"));
            }
        }
        Expect::NothingOfA => {
            if reply.code != Code::Ok {
                return Err(wrong(&reply));
            }
            if let Some(twin) = tokens.empty_twin(who) {
                let empty = ask(Some(twin)).await;
                if tokens.neutral(&reply.text) != tokens.neutral(&empty.text) {
                    return Err(format!(
                        "{what}: B's answer differs from an empty organization's: {} vs {}",
                        reply.text, empty.text
                    ));
                }
            }
        }
    }
    Ok(())
}

pub async fn control_grpc(
    client: &GatewayClient<Channel>,
    tokens: &Tokens,
    rpc: &str,
    probe: &GrpcProbe,
) -> Result<(), String> {
    let ask = |token: &str| (probe.call)(client.clone(), Some(token.to_owned()));
    let what = format!("{rpc}, control");
    let sees = |reply: GrpcReply, mark: &str| {
        if reply.code == Code::Ok && reply.text.contains(mark) {
            Ok(())
        } else {
            Err(format!("{what}: A's own caller does not find {mark:?}: {reply:?}"))
        }
    };
    match probe.control {
        None | Some(Control::Unseeded(_)) => Ok(()),
        Some(Control::OwnerSees) => sees(ask(&tokens.a_owner).await, A_MARK),
        Some(Control::Member1Sees) => sees(ask(&tokens.a_member_1).await, MEMBER_1_MARK),
        Some(Control::OwnerDiffers) => {
            let (a, c) = (ask(&tokens.a_owner).await, ask(&tokens.c_owner).await);
            if a.code == Code::Ok && a.text != c.text {
                Ok(())
            } else {
                Err(format!("{what}: A's owner gets what an empty organization gets: {a:?}"))
            }
        }
    }
}
