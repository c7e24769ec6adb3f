//! Who the client is, by address: whoever connected, unless that is one of the proxies we were
//! told to trust (`gateway.trusted_proxies`) — then the last `X-Forwarded-For` hop that is not one
//! of them. Anyone can write an `X-Forwarded-For` header; only our own proxies' additions mean
//! anything, and each proxy appends on the right, so the hops are read from the right.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{Extensions, HeaderMap, request::Parts},
};
use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Arc<Vec<IpNet>>);

impl TrustedProxies {
    /// Addresses (`10.0.0.1`, `::1`) or CIDR ranges (`10.0.0.0/8`).
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let nets = entries
            .iter()
            .map(|e| {
                let e = e.trim();
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("gateway.trusted_proxies: {e:?} is not an address or a CIDR range"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self(Arc::new(nets)))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: `peer` unless it is a trusted proxy, then the rightmost untrusted
    /// `X-Forwarded-For` hop (the leftmost when every hop is trusted). `None` when the peer is
    /// unknown, or a trusted proxy forwarded something that is not an address.
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            client = hop.parse().ok()?;
            if !self.trusts(client) {
                break;
            }
        }
        Some(client)
    }
}

/// The connecting peer's address, when the server recorded it (`ConnectInfo`).
pub fn peer(extensions: &Extensions) -> Option<IpAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

/// The connecting peer's address as an extractor (never rejects).
pub struct Peer(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(peer(&parts.extensions)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().expect("header"));
        headers
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }

    #[test]
    fn a_forwarded_address_counts_only_when_our_own_proxy_adds_it() {
        let none = TrustedProxies::parse(&[]).expect("empty");
        // Nobody trusted: a forged header changes nothing.
        assert_eq!(none.client(ip("127.0.0.9"), &forwarded("127.0.0.66")), ip("127.0.0.9"));

        let proxies = TrustedProxies::parse(&["127.0.0.1".into(), "127.0.1.0/24".into()]).expect("list");
        // The client wrote "127.0.0.66" itself; our proxies appended what they saw: 127.0.0.20.
        assert_eq!(
            proxies.client(ip("127.0.0.1"), &forwarded("127.0.0.66, 127.0.0.20, 127.0.1.5")),
            ip("127.0.0.20")
        );
        // A caller that is not our proxy is the client, whatever it forwards.
        assert_eq!(proxies.client(ip("127.0.0.7"), &forwarded("127.0.0.66")), ip("127.0.0.7"));
        // Only proxies all the way: the first hop.
        assert_eq!(proxies.client(ip("127.0.0.1"), &forwarded("127.0.1.9")), ip("127.0.1.9"));
        // No header from our proxy: the proxy itself is all we know.
        assert_eq!(proxies.client(ip("127.0.0.1"), &HeaderMap::new()), ip("127.0.0.1"));
        // Garbage from behind our proxy: unknown rather than a guess.
        assert_eq!(proxies.client(ip("127.0.0.1"), &forwarded("not-an-ip")), None);
        // IPv4 mapped into IPv6 is the same proxy.
        assert_eq!(proxies.client(ip("::ffff:127.0.0.1"), &forwarded("::1")), ip("::1"));
        assert_eq!(none.client(None, &forwarded("127.0.0.66")), None);
        assert!(TrustedProxies::parse(&["a proxy".into()]).is_err());
    }
}
