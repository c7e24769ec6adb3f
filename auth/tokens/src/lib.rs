//! Bearer tokens: what a token says (its claims: who, for which organization, with which roles
//! and scopes), signing one with the configured HS256 secret, and checking one (HS256 with that
//! secret, or RS256 by a key of the configured JWKS file). The gateway verifies every request's
//! token with [`Verifier`]; the CLI, the load generator, the benchmarks and the tests mint theirs
//! with [`mint`].

use std::{collections::HashMap, sync::Arc};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind, jwk::JwkSet};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use studyspot_config::Auth;

/// A token that does not verify: a stable code (`invalid_token`, `token_expired`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    pub code: &'static str,
    pub message: String,
}

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

    /// Whether the role runs the organization or acts for it as a system: it acts for any member
    /// of the organization and sees every member's records.
    pub fn operates(self) -> bool {
        matches!(self, Role::PlatformAdmin | Role::Owner | Role::Staff | Role::Service)
    }

    /// Whether the role is a person's that may move money (a refund, confirming a payment as
    /// received) with no scope granted: an integration (`service`) needs the scope.
    pub fn moves_money(self) -> bool {
        matches!(self, Role::PlatformAdmin | Role::Owner | Role::Staff)
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

impl Claims {
    /// The scopes the token grants, one by one.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.iter().flat_map(|s| s.split_whitespace())
    }
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

    pub fn verify(&self, token: &str) -> Result<Claims, Refused> {
        let invalid = |why: String| Refused { code: "invalid_token", message: why };
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
            ErrorKind::ExpiredSignature => {
                Refused { code: "token_expired", message: "the token has expired".into() }
            }
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

    fn code(e: Refused) -> &'static str {
        e.code
    }

    #[test]
    fn operators_act_for_any_member_and_only_people_move_money_without_a_scope() {
        let operate: Vec<Role> = Role::ALL.into_iter().filter(|r| r.operates()).collect();
        assert_eq!(operate, [Role::PlatformAdmin, Role::Owner, Role::Staff, Role::Service]);
        let move_money: Vec<Role> = Role::ALL.into_iter().filter(|r| r.moves_money()).collect();
        assert_eq!(move_money, [Role::PlatformAdmin, Role::Owner, Role::Staff]);
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
        assert_eq!(long.code, "invalid_token");
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
}
