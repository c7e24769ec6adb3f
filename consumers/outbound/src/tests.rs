use std::{
    net::{IpAddr, SocketAddr},
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

/// A resolver answering every name with fixed addresses, never touching the network.
struct Stub(Vec<IpAddr>);

impl Resolve for Stub {
    fn resolve(&self, _name: Name) -> Resolving {
        let answer: Vec<SocketAddr> = self.0.iter().map(|ip| SocketAddr::new(*ip, 0)).collect();
        Box::pin(async move { Ok(Box::new(answer.into_iter()) as Addrs) })
    }
}

async fn resolve(policy: &Policy, answer: &[&str]) -> Result<Vec<IpAddr>, String> {
    let guarded = Guarded::new(Stub(answer.iter().map(|a| ip(a)).collect()), policy.clone());
    let name = Name::from_str("hooks.tenant.example").expect("a name");
    match guarded.resolve(name).await {
        Ok(addrs) => Ok(addrs.map(|a| a.ip()).collect()),
        Err(e) => {
            assert!(refusal(&*e).is_some(), "a refusal: {e}");
            Err(e.to_string())
        }
    }
}

#[test]
fn special_ranges_are_refused_and_public_addresses_are_not() {
    let refused = [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link_local"),
        ("100.64.0.1", "shared (CGNAT)"),
        ("100.127.255.254", "shared (CGNAT)"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("192.0.0.170", "reserved"),
        ("192.0.2.1", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link_local"),
        ("::127.0.0.1", "reserved"),
        ("64:ff9b::10.0.0.1", "private"),
        ("2002:a9fe:a9fe::1", "link_local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fe80::1", "link_local"),
        ("fec0::1", "site_local"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "documentation"),
        ("2001::1", "reserved"),
    ];
    let policy = Policy::default();
    for (address, range) in refused {
        assert_eq!(special_range(ip(address)), Some(range), "{address}");
        let err = policy.check(address, ip(address)).expect_err(address);
        assert!(err.to_string().starts_with(TARGET_NOT_ALLOWED), "{err}");
    }
    for public in
        ["93.184.216.34", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "64:ff9b::808:808"]
    {
        assert_eq!(special_range(ip(public)), None, "{public}");
        policy.check(public, ip(public)).expect(public);
    }
}

#[test]
fn the_allowlist_lets_listed_ranges_through_and_nothing_else() {
    let policy = Policy::from_config(&["127.0.0.1/8", "::1", " 10.1.0.0/16 "]).expect("valid");
    for allowed in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1", "10.1.2.3"] {
        policy.check(allowed, ip(allowed)).expect(allowed);
    }
    for refused in ["10.2.0.1", "169.254.169.254", "192.168.0.1", "fe80::1"] {
        policy.check(refused, ip(refused)).expect_err(refused);
    }
    assert_eq!(Policy::from_config(&["localhost"]), Err(InvalidAllow("localhost".into())));
    assert_eq!(Policy::from_config::<&str>(&[]).expect("empty"), Policy::default());
    Policy::loopback().check("::1", ip("::1")).expect("loopback");
}

#[test]
fn ip_literal_urls_are_checked_in_every_spelling() {
    let policy = Policy::default();
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://[::1]/hook",
        "http://[::ffff:7f00:1]/hook",
        "http://2130706433/hook",
        "http://0x7f.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "http://0/",
    ] {
        let parsed = reqwest::Url::parse(url).expect(url);
        let err = policy.check_url(&parsed).expect_err(url);
        assert!(err.to_string().starts_with(TARGET_NOT_ALLOWED), "{url}: {err}");
    }
    policy.check_url(&reqwest::Url::parse("https://hooks.example.org/x").expect("url")).expect("a name");
    policy.check_url(&reqwest::Url::parse("https://93.184.216.34/x").expect("url")).expect("public");
    let loopback = Policy::loopback();
    loopback.check_url(&reqwest::Url::parse("http://127.0.0.1:9/x").expect("url")).expect("allowed");
}

#[tokio::test]
async fn a_name_resolving_to_private_or_metadata_addresses_is_refused() {
    let policy = Policy::default();
    for answer in [&["10.0.0.1"][..], &["169.254.169.254"], &["127.0.0.1", "::1"], &["fd00::1"]] {
        let err = resolve(&policy, answer).await.expect_err("refused");
        assert!(err.starts_with(TARGET_NOT_ALLOWED) && err.contains("hooks.tenant.example"), "{err}");
    }
    // Mixed answers keep only the public addresses: the connection cannot land on the private one.
    assert_eq!(resolve(&policy, &["10.0.0.1", "93.184.216.34"]).await, Ok(vec![ip("93.184.216.34")]));
    assert_eq!(
        resolve(&Policy::from_config(&["10.0.0.0/8"]).expect("valid"), &["10.0.0.1"]).await,
        Ok(vec![ip("10.0.0.1")])
    );
}

/// A client of the policy sends nothing to a name the resolver maps to a refused address: the
/// stub answers with the loopback addresses of a quiet listener (refused by default, like every
/// special range: the ranges themselves are proven by parsing above), the filter refuses, and
/// nothing connects. Were the filter broken, the test would reach only its own listener.
#[tokio::test]
async fn a_client_with_the_guarded_resolver_does_not_connect_to_a_refused_answer() {
    let calls = Arc::new(AtomicUsize::new(0));
    struct Counting(Arc<AtomicUsize>, Vec<IpAddr>);
    impl Resolve for Counting {
        fn resolve(&self, name: Name) -> Resolving {
            self.0.fetch_add(1, Ordering::SeqCst);
            Stub(self.1.clone()).resolve(name)
        }
    }
    let listener = crate::testing::quiet_listener();
    let port = listener.local_addr().expect("addr").port();
    for answer in ["127.0.0.1", "::1"] {
        let client = reqwest::Client::builder()
            .dns_resolver(Guarded::new(Counting(calls.clone(), vec![ip(answer)]), Policy::default()))
            .no_proxy()
            .build()
            .expect("a client");
        let err = client.get(format!("http://rebinding.example:{port}/")).send().await.expect_err("refused");
        let refused = refusal(&err).expect("the refusal is in the chain");
        assert_eq!(refused.address, ip(answer));
        assert_eq!(refused.range, "loopback");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(crate::testing::nothing_connected(&listener), "the refused answer was dialled");
}

#[tokio::test]
async fn tcp_connections_follow_the_policy() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    for target in [addr.to_string(), format!("localhost:{}", addr.port())] {
        match Policy::default().connect_tcp(&target).await {
            Err(ConnectError::Refused(r)) => assert_eq!(r.range, "loopback", "{target}"),
            other => panic!("{target}: {other:?}"),
        }
    }
    Policy::loopback().connect_tcp(&addr.to_string()).await.expect("allowed");
    let (_accepted, _) = listener.accept().await.expect("the allowed connection arrived");
}
