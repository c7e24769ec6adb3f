//! Who is calling, for which organization, allowed to do what: JWT bearer tokens (HS256 with the
//! configured secret, or RS256 by a key of the configured JWKS file), roles, and the one rule that
//! no request crosses an organization.

use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, request::Parts},
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind, jwk::JwkSet};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use studyspot_config::Auth;

use crate::GatewayError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs the platform: any organization, named by the `X-Organization-Id` header.
    PlatformAdmin,
    /// Owns an organization: everything within it.
    Owner,
    /// Works at an organization's venues: everything within it.
    Staff,
    /// A member of an organization: only their own records.
    Member,
    /// Another system acting for an organization (sensors, schedulers, integrations).
    Service,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::PlatformAdmin, Role::Owner, Role::Staff, Role::Member, Role::Service];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "platform-admin",
            Role::Owner => "owner",
            Role::Staff => "staff",
            Role::Member => "member",
            Role::Service => "service",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}; one of {}", Role::ALL.map(Role::as_str).join(", ")))
    }
}

/// What a token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Who: `user:…`, `mem_…`, `svc:…`.
    pub sub: String,
    /// The organization the token acts for; absent only for platform admins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    pub roles: Vec<Role>,
    /// For members: the member id whose records they may see and act on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
    /// Not valid before (seconds since the epoch), when the issuer sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// OAuth-style scopes, space-separated: what a `service` token may do beyond reading and
    /// ordinary commands (`billing:refund`, `billing:confirm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// Signs `claims` with the configured HS256 secret (the CLI's `studyspot token`, and tests).
/// Without a secret HS256 is off, and there is nothing to sign with.
pub fn mint(auth: &Auth, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
    if auth.hs256_secret.expose_secret().is_empty() {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(auth.hs256_secret.expose_secret().as_bytes()),
    )
}

/// How far a token's clock may be ahead of ours (iat, nbf) or behind (exp).
const LEEWAY_SECS: u64 = 30;

/// Checks tokens. Cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    /// `None`: HS256 is off (no `auth.hs256_secret`), RS256 tokens only.
    hs256: Option<Arc<DecodingKey>>,
    rs256: Arc<HashMap<String, DecodingKey>>,
    issuer: String,
    audience: String,
    max_lifetime_secs: u64,
}

impl Verifier {
    pub fn new(auth: &Auth) -> Result<Self, String> {
        let mut rs256 = HashMap::new();
        if !auth.jwks_file.trim().is_empty() {
            let text = std::fs::read_to_string(&auth.jwks_file)
                .map_err(|e| format!("auth.jwks_file {}: {e}", auth.jwks_file))?;
            let set: JwkSet =
                serde_json::from_str(&text).map_err(|e| format!("auth.jwks_file {}: {e}", auth.jwks_file))?;
            for jwk in &set.keys {
                let kid = jwk
                    .common
                    .key_id
                    .clone()
                    .ok_or_else(|| format!("auth.jwks_file {}: every key needs a kid", auth.jwks_file))?;
                let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("auth.jwks_file key {kid}: {e}"))?;
                rs256.insert(kid, key);
            }
        }
        let secret = auth.hs256_secret.expose_secret();
        if secret.is_empty() && rs256.is_empty() {
            return Err(
                "neither auth.hs256_secret nor auth.jwks_file is set: no token could be verified".into()
            );
        }
        Ok(Self {
            hs256: (!secret.is_empty()).then(|| Arc::new(DecodingKey::from_secret(secret.as_bytes()))),
            rs256: Arc::new(rs256),
            issuer: auth.issuer.clone(),
            audience: auth.audience.clone(),
            max_lifetime_secs: auth.max_token_lifetime_secs,
        })
    }

    pub fn verify(&self, token: &str) -> Result<Claims, GatewayError> {
        let invalid = |why: String| GatewayError::Unauthenticated { code: "invalid_token", message: why };
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| invalid(format!("malformed token: {e}")))?;
        let (key, algorithm) = match header.alg {
            Algorithm::HS256 => {
                let key = self.hs256.as_deref().ok_or_else(|| {
                    invalid("HS256 tokens are not accepted here (auth.hs256_secret is not set)".into())
                })?;
                (key, Algorithm::HS256)
            }
            Algorithm::RS256 => {
                let kid =
                    header.kid.ok_or_else(|| invalid("an RS256 token must name its key (kid)".into()))?;
                let key =
                    self.rs256.get(&kid).ok_or_else(|| invalid(format!("unknown signing key {kid}")))?;
                (key, Algorithm::RS256)
            }
            other => return Err(invalid(format!("tokens signed with {other:?} are not accepted"))),
        };
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => GatewayError::Unauthenticated {
                code: "token_expired",
                message: "the token has expired".into(),
            },
            ErrorKind::InvalidSignature => invalid("the token's signature does not verify".into()),
            ErrorKind::ImmatureSignature => invalid("the token is not valid yet (nbf)".into()),
            _ => invalid(format!("the token is not valid: {e}")),
        })?;
        let claims = data.claims;
        let now = jsonwebtoken::get_current_timestamp();
        if claims.iat > now + LEEWAY_SECS {
            return Err(invalid("the token was issued in the future (iat)".into()));
        }
        if claims.exp.saturating_sub(claims.iat) > self.max_lifetime_secs {
            return Err(invalid(format!(
                "the token lives longer than {} s (exp - iat): ask for a shorter one",
                self.max_lifetime_secs
            )));
        }
        if claims.roles.is_empty() {
            return Err(invalid("the token grants no role".into()));
        }
        if claims.org.is_none() && !claims.roles.contains(&Role::PlatformAdmin) {
            return Err(invalid("the token names no organization (org)".into()));
        }
        if claims.roles.contains(&Role::Member) && claims.member_id.is_none() {
            return Err(invalid("a member's token must carry member_id".into()));
        }
        Ok(claims)
    }
}

/// The authenticated caller of one request, scoped to one organization.
#[derive(Debug, Clone)]
pub struct Caller {
    pub organization_id: String,
    /// Who acts, as recorded on command events: the token's subject.
    pub actor: String,
    pub roles: Vec<Role>,
    pub member_id: Option<String>,
    pub correlation_id: Option<String>,
    /// The token's scopes (see [`Claims::scope`]).
    pub scopes: Vec<String>,
}

impl Caller {
    fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Anyone who runs the organization or acts for it as a system.
    pub fn require_operator(&self, action: &str) -> Result<(), GatewayError> {
        if [Role::PlatformAdmin, Role::Owner, Role::Staff, Role::Service].iter().any(|r| self.has(*r)) {
            Ok(())
        } else {
            Err(GatewayError::Forbidden(format!("{action} needs the owner, staff or service role")))
        }
    }

    /// Moving money (a refund, confirming a payment as received) needs a person with the owner or
    /// staff role (or a platform admin), or a `service` token granted `scope`: an integration
    /// that posts check-ins should not be able to refund.
    pub fn require_operator_with_scope(&self, action: &str, scope: &str) -> Result<(), GatewayError> {
        if [Role::PlatformAdmin, Role::Owner, Role::Staff].iter().any(|r| self.has(*r))
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
        if self.has(Role::Member) && self.member_id.as_deref() == Some(member_id) {
            return Ok(());
        }
        Err(GatewayError::Forbidden(format!(
            "{action} for member {member_id} is not allowed with this token"
        )))
    }

    /// Whether records of `member_id` are visible to this caller.
    pub fn may_see_member(&self, member_id: Option<&str>) -> bool {
        self.require_operator("").is_ok() || (member_id.is_some() && self.member_id.as_deref() == member_id)
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
    Ok(Caller {
        organization_id,
        actor: claims.sub,
        roles: claims.roles,
        member_id: claims.member_id,
        correlation_id,
        scopes: claims.scope.iter().flat_map(|s| s.split_whitespace()).map(str::to_owned).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        let mut settings = studyspot_config::Settings::load(None).expect("defaults");
        studyspot_config::secrets::Secrets::random().apply(&mut settings);
        settings.auth
    }

    fn claims(roles: Vec<Role>, org: Option<&str>) -> Claims {
        let now = jsonwebtoken::get_current_timestamp();
        Claims {
            sub: "user:ada".into(),
            org: org.map(str::to_owned),
            roles,
            member_id: None,
            iss: "studyspot".into(),
            aud: "studyspot-api".into(),
            iat: now,
            exp: now + 600,
            nbf: None,
            scope: None,
        }
    }

    fn code(e: GatewayError) -> &'static str {
        e.code()
    }

    #[test]
    fn a_minted_token_verifies_and_tampering_or_expiry_does_not() {
        let auth = auth();
        let verifier = Verifier::new(&auth).expect("verifier");
        let token = mint(&auth, &claims(vec![Role::Owner], Some("org_1"))).expect("mint");
        assert_eq!(verifier.verify(&token).expect("valid").org.as_deref(), Some("org_1"));

        let mut forged = token.clone();
        forged.pop();
        forged.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(code(verifier.verify(&forged).unwrap_err()), "invalid_token");

        let mut other = auth.clone();
        other.hs256_secret = "another secret".to_owned().into();
        let foreign = mint(&other, &claims(vec![Role::Owner], Some("org_1"))).expect("mint");
        assert_eq!(code(verifier.verify(&foreign).unwrap_err()), "invalid_token");

        let mut expired = claims(vec![Role::Owner], Some("org_1"));
        expired.exp = expired.iat - 3600;
        let expired = mint(&auth, &expired).expect("mint");
        assert_eq!(code(verifier.verify(&expired).unwrap_err()), "token_expired");

        let mut wrong_audience = claims(vec![Role::Owner], Some("org_1"));
        wrong_audience.aud = "someone-else".into();
        let wrong_audience = mint(&auth, &wrong_audience).expect("mint");
        assert_eq!(code(verifier.verify(&wrong_audience).unwrap_err()), "invalid_token");

        assert_eq!(code(verifier.verify("not.a.token").unwrap_err()), "invalid_token");
        let no_org = mint(&auth, &claims(vec![Role::Staff], None)).expect("mint");
        assert_eq!(code(verifier.verify(&no_org).unwrap_err()), "invalid_token");
        let member_without_id = mint(&auth, &claims(vec![Role::Member], Some("org_1"))).expect("mint");
        assert_eq!(code(verifier.verify(&member_without_id).unwrap_err()), "invalid_token");
    }

    #[test]
    fn a_token_must_expire_within_the_lifetime_limit_and_be_valid_now() {
        let auth = auth();
        let verifier = Verifier::new(&auth).expect("verifier");
        let now = jsonwebtoken::get_current_timestamp();
        let with = |change: &dyn Fn(&mut Claims)| {
            let mut c = claims(vec![Role::Owner], Some("org_1"));
            change(&mut c);
            verifier.verify(&mint(&auth, &c).expect("mint"))
        };
        assert!(with(&|c| c.exp = c.iat + auth.max_token_lifetime_secs).is_ok(), "at the limit");
        let long = with(&|c| c.exp = c.iat + 30 * 86_400).unwrap_err();
        assert_eq!(long.code(), "invalid_token");
        assert!(long.to_string().contains("exp - iat"), "{long}");
        // Issued "an hour from now" to stretch its life past the limit: refused.
        let future = with(&|c| {
            c.iat = now + 3600;
            c.exp = now + 4200;
        })
        .unwrap_err();
        assert!(future.to_string().contains("iat"), "{future}");
        let immature = with(&|c| c.nbf = Some(now + 3600)).unwrap_err();
        assert!(immature.to_string().contains("nbf"), "{immature}");
        assert!(with(&|c| c.nbf = Some(now - 10)).is_ok(), "nbf in the past");
        // A token without iat cannot prove its lifetime.
        let no_iat = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "user:ada", "org": "org_1", "roles": ["owner"],
                "iss": "studyspot", "aud": "studyspot-api", "exp": now + 600}),
            &EncodingKey::from_secret(auth.hs256_secret.expose_secret().as_bytes()),
        )
        .expect("sign");
        assert_eq!(code(verifier.verify(&no_iat).unwrap_err()), "invalid_token");
    }

    #[test]
    fn rs256_tokens_verify_by_the_kid_of_the_jwks_file() {
        // A key pair made for this test only (tests/fixtures).
        let private = include_bytes!("../tests/fixtures/rs256-test-key.pem");
        let mut auth = auth();
        auth.jwks_file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rs256-test-jwks.json").into();
        let verifier = Verifier::new(&auth).expect("verifier with JWKS");
        let sign = |kid: Option<&str>| {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = kid.map(str::to_owned);
            let key = EncodingKey::from_rsa_pem(private).expect("test key");
            jsonwebtoken::encode(&header, &claims(vec![Role::Service], Some("org_1")), &key).expect("sign")
        };
        let claims = verifier.verify(&sign(Some("test-rs256-1"))).expect("RS256 by a known kid");
        assert_eq!(claims.roles, vec![Role::Service]);
        assert_eq!(code(verifier.verify(&sign(Some("another-key"))).unwrap_err()), "invalid_token");
        assert_eq!(code(verifier.verify(&sign(None)).unwrap_err()), "invalid_token");
        let without_jwks = Verifier::new(&super::tests::auth()).expect("verifier");
        assert_eq!(code(without_jwks.verify(&sign(Some("test-rs256-1"))).unwrap_err()), "invalid_token");
    }

    #[test]
    fn without_an_hs256_secret_hs256_is_off_and_no_hs256_token_verifies() {
        let mut auth = auth();
        auth.jwks_file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rs256-test-jwks.json").into();
        auth.hs256_secret = String::new().into();
        let verifier = Verifier::new(&auth).expect("RS256 only");
        // Signed with the empty key, which an "empty secret" would have verified.
        let empty = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(vec![Role::PlatformAdmin], None),
            &EncodingKey::from_secret(b""),
        )
        .expect("sign");
        let err = verifier.verify(&empty).unwrap_err();
        assert_eq!(code(err), "invalid_token");
        assert!(mint(&auth, &claims(vec![Role::Owner], Some("org_1"))).is_err(), "nothing to mint with");
        // With neither HS256 nor a JWKS file nothing could be verified: refused at start.
        auth.jwks_file = String::new();
        assert!(Verifier::new(&auth).is_err());
    }

    #[test]
    fn a_platform_admin_has_one_rate_bucket_whichever_organization_it_names() {
        let admin = |org: &str| Caller {
            organization_id: org.into(),
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
            organization_id: "org_1".into(),
            actor: "mem_1".into(),
            roles: vec![Role::Member],
            member_id: Some("mem_1".into()),
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
