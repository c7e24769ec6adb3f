//! The outbound policy: which addresses a URL that a tenant names (a webhook endpoint, a health
//! check's target) may reach.
//!
//! Loopback, private (RFC 1918, `fc00::/7`), link-local (`169.254.0.0/16` with the cloud metadata
//! address `169.254.169.254`, `fe80::/10`), shared (CGNAT `100.64.0.0/10`), unspecified,
//! multicast, broadcast, documentation, benchmarking and reserved addresses — and IPv6 forms
//! embedding such an IPv4 address (mapped, NAT64, 6to4) — are refused unless `outbound.allow`
//! lists them (CIDR ranges; by default nothing).
//!
//! The check is on the address actually connected to: [`Policy::client_builder`] gives reqwest a
//! resolver ([`Guarded`]) that drops refused addresses from every answer (a name that resolves
//! to a public address when validated and to a private one when connecting gets no further),
//! [`Policy::check_url`] checks IP-literal hosts (reqwest connects to those without resolving),
//! redirects are not followed and no proxy is used. [`Policy::connect_tcp`] does the same for a
//! plain TCP connection. A refusal connects to nothing; its message starts with
//! [`TARGET_NOT_ALLOWED`].

use std::{
    error::Error as StdError,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    str::FromStr,
    sync::Arc,
};

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The code of a refusal, and the start of its message.
pub const TARGET_NOT_ALLOWED: &str = "target_not_allowed";

type BoxError = Box<dyn StdError + Send + Sync>;

/// Which special addresses may be reached anyway. Cheap to clone. The default allows none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    allow: Arc<[IpNet]>,
}

/// An `outbound.allow` entry that is neither an address nor a CIDR range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("outbound.allow: {0:?} is neither an IP address nor a CIDR range")]
pub struct InvalidAllow(pub String);

/// A target the policy refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
/// The message names the host and the kind of address, not the address: a name resolved inside
/// our network is not for the tenant who named it to learn.
#[error("{TARGET_NOT_ALLOWED}: {host} is a {range} address, which outbound.allow does not list")]
pub struct Refused {
    /// The host as named (a name or an address).
    pub host: String,
    /// The address refused (the first, when a name resolved to several).
    pub address: IpAddr,
    /// What kind of address it is: `loopback`, `private`, `link_local`, …
    pub range: &'static str,
}

/// Why a TCP connection was not made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("connect to {address}: {source}")]
    Io { address: String, source: std::io::Error },
}

impl Policy {
    /// A policy allowing these ranges besides public addresses.
    pub fn new(allow: impl IntoIterator<Item = IpNet>) -> Self {
        Policy { allow: allow.into_iter().collect() }
    }

    /// `outbound.allow` as configured: addresses (`127.0.0.1`) or CIDR ranges (`10.0.0.0/8`).
    pub fn from_config<S: AsRef<str>>(allow: &[S]) -> Result<Self, InvalidAllow> {
        let nets = allow
            .iter()
            .map(|entry| {
                let entry = entry.as_ref().trim();
                IpNet::from_str(entry)
                    .map(|net| net.trunc())
                    .or_else(|_| IpAddr::from_str(entry).map(IpNet::from))
                    .map_err(|_| InvalidAllow(entry.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Policy::new(nets))
    }

    /// Loopback allowed (`127.0.0.0/8`, `::1`): the local stack and tests, whose receivers listen
    /// there.
    pub fn loopback() -> Self {
        Policy::from_config(&["127.0.0.0/8", "::1/128"]).unwrap_or_default()
    }

    /// Whether `address` may be connected to: public, or special and listed.
    pub fn check(&self, host: &str, address: IpAddr) -> Result<(), Refused> {
        let Some(range) = special_range(address) else { return Ok(()) };
        let canonical = address.to_canonical();
        if self.allow.iter().any(|net| net.contains(&address) || net.contains(&canonical)) {
            return Ok(());
        }
        Err(Refused { host: host.to_owned(), address, range })
    }

    /// Checks a URL whose host is an IP literal (`http://10.0.0.1/`, `http://[::1]/`, and the
    /// other spellings the URL parser normalizes to one, like `http://2130706433/`); a name is
    /// checked when it is resolved.
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), Refused> {
        let Some(host) = url.host_str() else { return Ok(()) };
        let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        match IpAddr::from_str(literal) {
            Ok(address) => self.check(host, address),
            Err(_) => Ok(()),
        }
    }

    /// The addresses of `answer` this policy allows, in order; refused when none is left.
    pub fn filter(&self, host: &str, answer: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, FilterError> {
        let mut first_refusal = None;
        let mut allowed = Vec::with_capacity(answer.len());
        for address in answer {
            match self.check(host, address.ip()) {
                Ok(()) => allowed.push(address),
                Err(refused) => {
                    first_refusal.get_or_insert(refused);
                }
            }
        }
        match (allowed.is_empty(), first_refusal) {
            (false, _) => Ok(allowed),
            (true, Some(refused)) => Err(FilterError::Refused(refused)),
            (true, None) => Err(FilterError::NoAddress(host.to_owned())),
        }
    }

    /// A resolver answering only with addresses this policy allows.
    pub fn resolver(&self) -> Guarded<SystemResolver> {
        Guarded::new(SystemResolver, self.clone())
    }

    /// A reqwest client builder that connects only where this policy allows: its resolver drops
    /// refused addresses, redirects are not followed and no proxy is used. Requests to IP-literal
    /// hosts must still go through [`Policy::check_url`] first.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .dns_resolver(self.resolver())
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
    }

    /// A TCP connection to `address` (`host:port`), to the first allowed address that answers.
    pub async fn connect_tcp(&self, address: &str) -> Result<tokio::net::TcpStream, ConnectError> {
        let io = |source| ConnectError::Io { address: address.to_owned(), source };
        let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
        let answer: Vec<SocketAddr> = tokio::net::lookup_host(address).await.map_err(io)?.collect();
        let allowed = match self.filter(host, answer) {
            Ok(allowed) => allowed,
            Err(FilterError::Refused(refused)) => return Err(refused.into()),
            Err(e @ FilterError::NoAddress(_)) => {
                return Err(io(std::io::Error::new(std::io::ErrorKind::NotFound, e)));
            }
        };
        let mut last = None;
        for a in allowed {
            match tokio::net::TcpStream::connect(a).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(io(last.unwrap_or_else(|| std::io::Error::other("no address"))))
    }
}

/// Why [`Policy::filter`] left nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("{0} resolves to no address")]
    NoAddress(String),
}

/// The refusal somewhere in `err`'s chain of sources (a reqwest error whose resolver refused).
pub fn refusal<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a Refused> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Some(refused);
        }
        if let Some(FilterError::Refused(refused)) = e.downcast_ref::<FilterError>() {
            return Some(refused);
        }
        next = e.source();
    }
    None
}

/// The kind of special address `ip` is, or `None` for a public one.
pub fn special_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_range(v4),
        IpAddr::V6(v6) => v6_range(v6),
    }
}

fn v4_range(ip: Ipv4Addr) -> Option<&'static str> {
    Some(match ip.octets() {
        [0, ..] => "unspecified",
        [10, ..] | [192, 168, ..] => "private",
        [172, b, ..] if (16..32).contains(&b) => "private",
        [100, b, ..] if (64..128).contains(&b) => "shared (CGNAT)",
        [127, ..] => "loopback",
        [169, 254, ..] => "link_local",
        [192, 0, 0, _] | [192, 88, 99, _] => "reserved",
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => "documentation",
        [198, 18 | 19, ..] => "benchmarking",
        [255, 255, 255, 255] => "broadcast",
        [a, ..] if (224..240).contains(&a) => "multicast",
        [a, ..] if a >= 240 => "reserved",
        _ => return None,
    })
}

fn v6_range(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_range(v4);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    Some(match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => "unspecified",
        [0, 0, 0, 0, 0, 0, 0, 1] => "loopback",
        // IPv4-compatible (deprecated).
        [0, 0, 0, 0, 0, 0, _, _] => "reserved",
        // NAT64 (RFC 6052): reaches the IPv4 address it embeds.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => return v4_range(embedded(hi, lo)),
        [0x64, 0xff9b, 1, ..] => "private",
        [0x100, 0, 0, 0, ..] => "reserved",
        [0x2001, 0xdb8, ..] | [0x3fff, 0..=0x0fff, ..] => "documentation",
        // Teredo: tunnels to an address we cannot check.
        [0x2001, 0, ..] => "reserved",
        // 6to4: reaches the IPv4 address it embeds.
        [0x2002, hi, lo, ..] => return v4_range(embedded(hi, lo)),
        [a, ..] if a & 0xfe00 == 0xfc00 => "private",
        [a, ..] if a & 0xffc0 == 0xfe80 => "link_local",
        [a, ..] if a & 0xffc0 == 0xfec0 => "site_local",
        [a, ..] if a & 0xff00 == 0xff00 => "multicast",
        _ => return None,
    })
}

/// Resolves names with the system's resolver (`getaddrinfo` on tokio's blocking pool).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let answer: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            Ok(Box::new(answer.into_iter()) as Addrs)
        })
    }
}

/// A resolver answering with what `R` answers, less the addresses the policy refuses; refused
/// (a [`FilterError`]) when nothing is left.
#[derive(Debug, Clone)]
pub struct Guarded<R> {
    inner: R,
    policy: Policy,
}

impl<R> Guarded<R> {
    pub fn new(inner: R, policy: Policy) -> Self {
        Guarded { inner, policy }
    }
}

impl<R: Resolve + 'static> Resolve for Guarded<R> {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let answer = self.inner.resolve(name);
        let policy = self.policy.clone();
        Box::pin(async move {
            let answer: Vec<SocketAddr> = answer.await?.collect();
            let allowed = policy.filter(&host, answer).map_err(|e| Box::new(e) as BoxError)?;
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

pub mod http;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;
