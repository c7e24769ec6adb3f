//! Who is calling, for which organization, allowed to do what: the caller of one request, from
//! its bearer token (checked by `studyspot_tokens`), and the one rule that no request crosses an
//! organization.

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, request::Parts},
};
use studyspot_ids::{MemberId, OrganizationId};
pub(crate) use studyspot_tokens::{Role, Verifier};

use crate::GatewayError;

impl From<studyspot_tokens::Refused> for GatewayError {
    fn from(refused: studyspot_tokens::Refused) -> Self {
        GatewayError::Unauthenticated { code: refused.code, message: refused.message }
    }
}

/// The authenticated caller of one request, scoped to one organization.
#[derive(Debug, Clone)]
pub struct Caller {
    pub organization_id: OrganizationId,
    /// Who acts, as recorded on command events: the token's subject.
    pub actor: String,
    pub roles: Vec<Role>,
    pub member_id: Option<MemberId>,
    pub correlation_id: Option<String>,
    /// The token's scopes (see [`studyspot_tokens::Claims::scope`]).
    pub scopes: Vec<String>,
}

impl Caller {
    fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Anyone who runs the organization or acts for it as a system.
    pub fn require_operator(&self, action: &str) -> Result<(), GatewayError> {
        if self.roles.iter().any(|r| r.operates()) {
            Ok(())
        } else {
            Err(GatewayError::Forbidden(format!("{action} needs the owner, staff or service role")))
        }
    }

    /// Moving money (a refund, confirming a payment as received) needs a person with the owner or
    /// staff role (or a platform admin), or a `service` token granted `scope`: an integration
    /// that posts check-ins should not be able to refund.
    pub fn require_operator_with_scope(&self, action: &str, scope: &str) -> Result<(), GatewayError> {
        if self.roles.iter().any(|r| r.moves_money())
            || (self.has(Role::Service) && self.scopes.iter().any(|s| s == scope))
        {
            Ok(())
        } else {
            Err(GatewayError::Forbidden(format!(
                "{action} needs the owner or staff role, or a service token with the scope {scope}"
            )))
        }
    }

    /// Operators act for any member of their organization; a member only for themselves.
    pub fn require_member_or_operator(&self, member_id: &str, action: &str) -> Result<(), GatewayError> {
        if self.require_operator(action).is_ok() {
            return Ok(());
        }
        if self.has(Role::Member) && self.member_id.as_ref().is_some_and(|own| own == member_id) {
            return Ok(());
        }
        Err(GatewayError::Forbidden(format!(
            "{action} for member {member_id} is not allowed with this token"
        )))
    }

    /// Whether records of `member_id` are visible to this caller.
    pub fn may_see_member(&self, member_id: Option<&str>) -> bool {
        self.require_operator("").is_ok()
            || (member_id.is_some() && self.member_id.as_ref().map(MemberId::as_str) == member_id)
    }

    /// The key rate limits are kept under: one bucket per token subject and organization. A
    /// platform admin names the organization in a header, so theirs is one bucket for every
    /// organization (otherwise each new X-Organization-Id would be a fresh bucket).
    pub fn rate_key(&self) -> String {
        if self.roles.contains(&Role::PlatformAdmin) {
            format!("*/{}", self.actor)
        } else {
            format!("{}/{}", self.organization_id, self.actor)
        }
    }
}

/// What the router's state does for authentication: verify tokens, then admit the caller (rate
/// limits).
pub trait Authenticates {
    fn verifier(&self) -> &Verifier;
    fn admit(&self, caller: &Caller) -> Result<(), GatewayError>;
}

impl<S: Authenticates + Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = GatewayError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let caller = authenticate(&parts.headers, state.verifier())?;
        state.admit(&caller)?;
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, GatewayError> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value.to_str().map(|v| Some(v.trim()).filter(|v| !v.is_empty())).map_err(|_| {
            GatewayError::InvalidHeader { header: name.to_owned(), message: "not visible ASCII".into() }
        }),
    }
}

/// The caller named by a request's headers (HTTP) or metadata (gRPC).
pub(crate) fn authenticate(parts: &HeaderMap, verifier: &Verifier) -> Result<Caller, GatewayError> {
    let authorization = header(parts, "authorization")?.ok_or(GatewayError::Unauthenticated {
        code: "unauthenticated",
        message: "send a bearer token: Authorization: Bearer <token>".into(),
    })?;
    let token = authorization
        .strip_prefix("Bearer ")
        .or_else(|| authorization.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or(GatewayError::Unauthenticated {
            code: "unauthenticated",
            message: "the Authorization header must be \"Bearer <token>\"".into(),
        })?;
    let claims = verifier.verify(token)?;
    let named = header(parts, "x-organization-id")?;
    let organization_id = match (&claims.org, named) {
        (Some(own), None) => own.clone(),
        (Some(own), Some(named)) if own == named => own.clone(),
        (Some(_), Some(named)) if !claims.roles.contains(&Role::PlatformAdmin) => {
            return Err(GatewayError::OrganizationMismatch(named.to_owned()));
        }
        (_, Some(named)) => named.to_owned(),
        (None, None) => {
            return Err(GatewayError::MissingHeader { header: "X-Organization-Id" });
        }
    };
    let correlation_id = header(parts, "x-correlation-id")?.map(str::to_owned);
    if correlation_id.as_ref().is_some_and(|c| c.len() > 200) {
        return Err(GatewayError::InvalidHeader {
            header: "X-Correlation-Id".into(),
            message: "at most 200 characters".into(),
        });
    }
    let scopes = claims.scopes().map(str::to_owned).collect();
    // The header is never blank (see `header`); a token's claims are parsed like a request's ids.
    let invalid = |claim: &str| GatewayError::Unauthenticated {
        code: "invalid_token",
        message: format!("the token's {claim} claim is blank"),
    };
    let organization_id = OrganizationId::parse(organization_id).map_err(|_| invalid("org"))?;
    let member_id = claims.member_id.map(MemberId::parse).transpose().map_err(|_| invalid("member_id"))?;
    Ok(Caller { organization_id, actor: claims.sub, roles: claims.roles, member_id, correlation_id, scopes })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_platform_admin_has_one_rate_bucket_whichever_organization_it_names() {
        let admin = |org: &str| Caller {
            organization_id: org.parse().unwrap(),
            actor: "user:root".into(),
            roles: vec![Role::PlatformAdmin],
            member_id: None,
            correlation_id: None,
            scopes: Vec::new(),
        };
        assert_eq!(admin("org_1").rate_key(), admin("org_2").rate_key());
        let staff = |org: &str| Caller { roles: vec![Role::Staff], ..admin(org) };
        assert_ne!(staff("org_1").rate_key(), staff("org_2").rate_key());
    }

    #[test]
    fn members_act_only_for_themselves() {
        let caller = Caller {
            organization_id: "org_1".parse().unwrap(),
            actor: "mem_1".into(),
            roles: vec![Role::Member],
            member_id: Some("mem_1".parse().unwrap()),
            correlation_id: None,
            scopes: Vec::new(),
        };
        assert!(caller.require_member_or_operator("mem_1", "checking in").is_ok());
        assert!(caller.require_member_or_operator("mem_2", "checking in").is_err());
        assert!(caller.require_operator("sending a notification").is_err());
        assert!(caller.may_see_member(Some("mem_1")));
        assert!(!caller.may_see_member(Some("mem_2")));
        assert!(!caller.may_see_member(None));
        let staff = Caller { roles: vec![Role::Staff], member_id: None, ..caller.clone() };
        assert!(staff.require_member_or_operator("mem_2", "checking in").is_ok());
        assert!(staff.require_operator_with_scope("refunding", "billing:refund").is_ok());
        let service = Caller { roles: vec![Role::Service], member_id: None, ..caller };
        assert!(service.require_operator("checking in").is_ok());
        assert!(service.require_operator_with_scope("refunding", "billing:refund").is_err());
        let refunder = Caller { scopes: vec!["billing:refund".into()], ..service };
        assert!(refunder.require_operator_with_scope("refunding", "billing:refund").is_ok());
        assert!(refunder.require_operator_with_scope("confirming", "billing:confirm").is_err());
    }
}
