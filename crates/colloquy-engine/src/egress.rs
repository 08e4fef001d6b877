//! The egress guard (DESIGN.md §2): outbound calls an API user can aim (webhook tools, MCP
//! server URLs, an agent's `custom_llm`) may not reach loopback, private, link-local,
//! multicast or otherwise internal addresses unless the operator allows them with
//! `COLLOQUY_WEBHOOK_ALLOW`; cloud metadata endpoints are never reachable.
//!
//! The check applies to the addresses a name resolves to at connect time (a DNS resolver
//! wrapper), not to the URL's text, so a public name that resolves to a private address, or
//! a redirect to one, is refused too. IP-literal URLs bypass DNS, so they (and each redirect
//! target) are checked by [`EgressGuard::check_url`] as well.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// A refusal, carried inside reqwest's error so callers can tell it from a network failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error("egress refused: {0}")]
pub struct Refused(pub String);

/// One `COLLOQUY_WEBHOOK_ALLOW` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Allow {
    /// An address range.
    Cidr(IpAddr, u8),
    /// A host name (exact, case-insensitive) or `*.suffix`.
    Host(String),
}

/// What outbound calls may reach.
/// An entry of `COLLOQUY_WEBHOOK_ALLOW` that is not a CIDR, an address or a host name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} in {item:?}")]
pub struct AllowListError {
    /// The entry.
    pub item: String,
    /// What is wrong with it.
    pub what: &'static str,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressGuard {
    allow: Vec<Allow>,
}

/// Cloud metadata endpoints: never reachable, whatever is allowed.
const METADATA: [IpAddr; 3] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)),
];

impl EgressGuard {
    /// Parses `COLLOQUY_WEBHOOK_ALLOW`: comma-separated CIDRs (`10.0.0.0/8`), addresses
    /// (`127.0.0.1`), host names (`hooks.internal`) or wildcards (`*.internal`).
    pub fn parse(list: &str) -> Result<EgressGuard, AllowListError> {
        let mut allow = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let bad = |what| AllowListError { item: item.to_owned(), what };
            let entry = match item.split_once('/') {
                Some((ip, bits)) => {
                    let ip: IpAddr = ip.parse().map_err(|_| bad("bad address"))?;
                    let bits: u8 = bits.parse().map_err(|_| bad("bad prefix length"))?;
                    let max = if ip.is_ipv4() { 32 } else { 128 };
                    if bits > max {
                        return Err(bad("prefix length too long"));
                    }
                    Allow::Cidr(ip, bits)
                }
                None => match item.trim_matches(['[', ']']).parse::<IpAddr>() {
                    Ok(ip) => Allow::Cidr(ip, if ip.is_ipv4() { 32 } else { 128 }),
                    Err(_) => Allow::Host(item.to_ascii_lowercase()),
                },
            };
            allow.push(entry);
        }
        Ok(EgressGuard { allow })
    }

    /// Whether a host name is allowed as a whole.
    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allow.iter().any(|a| match a {
            Allow::Host(h) => match h.strip_prefix("*.") {
                Some(suffix) => host.ends_with(&format!(".{suffix}")),
                None => *h == host,
            },
            Allow::Cidr(..) => false,
        })
    }

    fn ip_allowed(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|a| matches!(a, Allow::Cidr(net, bits) if contains(*net, *bits, ip)))
    }

    /// Whether the operator allowed `host` (a name or an address) itself, not merely the
    /// addresses it resolves to: the test for MCP servers reached over plain http.
    pub fn allows_host(&self, host: &str) -> bool {
        let bare = host.trim_matches(['[', ']']);
        match bare.parse::<IpAddr>() {
            Ok(ip) => self.ip_allowed(canonical(ip)),
            Err(_) => self.host_allowed(bare),
        }
    }

    /// Whether `host` may be reached at `ip`.
    pub fn permits(&self, host: &str, ip: IpAddr) -> Result<(), Refused> {
        let ip = canonical(ip);
        if METADATA.contains(&ip) {
            return Err(Refused(format!("{host} resolves to the cloud metadata address {ip}")));
        }
        if is_internal(ip) && !self.host_allowed(host) && !self.ip_allowed(ip) {
            return Err(Refused(format!(
                "{host} resolves to the internal address {ip}; allow it with COLLOQUY_WEBHOOK_ALLOW"
            )));
        }
        Ok(())
    }

    /// Checks a URL whose host is an IP literal (names are checked when resolved).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), Refused> {
        let host = url.host_str().unwrap_or_default();
        match host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => self.permits(host, ip),
            Err(_) => Ok(()),
        }
    }

    /// Whether a URL a user gives for the server to call (a webhook, an initiation webhook) may
    /// be kept: http(s) only, plain http only to hosts the operator allowed, and never an
    /// address this guard refuses. Names are checked again when they resolve, at each call.
    pub fn check_callable(&self, url: &str) -> Result<(), String> {
        let Some((host, https)) = colloquy_core::mcp_servers::http_host(url) else {
            return Err("The URL must be an http(s) URL".into());
        };
        if !https && !self.allows_host(host) {
            return Err(format!(
                "The URL must use https; plain http is allowed only for hosts in COLLOQUY_WEBHOOK_ALLOW ({host} is not)"
            ));
        }
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("The URL is not valid: {e}"))?;
        self.check_url(&parsed).map_err(|refused| refused.to_string())
    }

    /// An HTTP client whose every connection (and redirect) passes this guard.
    pub fn client(self: &Arc<Self>, timeout: Duration) -> reqwest::Client {
        self.client_resolving(timeout, system_lookup())
    }

    fn client_resolving(self: &Arc<Self>, timeout: Duration, lookup: Lookup) -> reqwest::Client {
        let guard = self.clone();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 {
                return attempt.error(Refused("too many redirects".into()));
            }
            match guard.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refused) => attempt.error(refused),
            }
        });
        reqwest::Client::builder()
            .tls_backend_preconfigured(crate::tls::client_config())
            .dns_resolver(Arc::new(GuardedResolver { guard: self.clone(), lookup }))
            .redirect(redirects)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .no_proxy()
            .build()
            // Building fails only without a TLS provider, which start-up installs.
            .expect("HTTP client builds")
    }
}

/// The guard's refusal, if that is what made a request fail.
pub fn refusal(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return Some(r.to_string());
        }
        source = s.source();
    }
    None
}

/// A failed request explained: the guard's refusal when it refused, else the error and its
/// causes (reqwest's own message names only the outermost one).
pub fn explain(e: &(dyn std::error::Error + 'static)) -> String {
    if let Some(refused) = refusal(e) {
        return refused;
    }
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// IPv4-mapped IPv6 addresses are checked as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn contains(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    match (net, canonical(ip)) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - u32::from(bits)) };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - u32::from(bits)) };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// Loopback, private, link-local, shared, multicast, broadcast, unspecified, documentation,
/// benchmarking and reserved ranges, and their IPv6 counterparts.
fn is_internal(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_unspecified()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
        }
    }
}

/// Resolves names with the system resolver and drops every address the guard refuses; a name
/// left with none fails to connect with the refusal as the cause.
struct GuardedResolver {
    guard: Arc<EgressGuard>,
    lookup: Lookup,
}

/// How names become addresses: the system resolver, or a scripted one in tests.
type Lookup = Arc<
    dyn Fn(String) -> futures_util::future::BoxFuture<'static, std::io::Result<Vec<SocketAddr>>>
        + Send
        + Sync,
>;

fn system_lookup() -> Lookup {
    Arc::new(|host: String| {
        Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), 0)).await?.collect()) })
    })
}

impl EgressGuard {
    /// The addresses `host` resolves to that the guard lets through; a refusal when none.
    async fn allowed_addresses(
        &self, host: &str, lookup: &Lookup,
    ) -> std::io::Result<Result<Vec<SocketAddr>, Refused>> {
        let addrs: Vec<SocketAddr> = lookup(host.to_owned()).await?;
        let mut refusal = None;
        let allowed: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|a| match self.permits(host, a.ip()) {
                Ok(()) => true,
                Err(r) => {
                    refusal.get_or_insert(r);
                    false
                }
            })
            .collect();
        if allowed.is_empty() {
            return Ok(Err(refusal.unwrap_or_else(|| Refused(format!("{host} did not resolve")))));
        }
        Ok(Ok(allowed))
    }

    /// Checks a URL before a client whose errors hide their causes (rmcp's) connects to it,
    /// so a refusal reads as one. The connection itself is still checked by the resolver.
    pub async fn precheck(&self, url: &reqwest::Url) -> Result<(), Refused> {
        self.check_url(url)?;
        let host = url.host_str().unwrap_or_default();
        if host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() {
            return Ok(());
        }
        match self.allowed_addresses(host, &system_lookup()).await {
            Ok(Err(refused)) => Err(refused),
            Ok(Ok(_)) | Err(_) => Ok(()),
        }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.guard.clone();
        let lookup = self.lookup.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            match guard.allowed_addresses(&host, &lookup).await? {
                Ok(allowed) => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
                Err(why) => Err(Box::new(why) as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_need_an_allow_entry() {
        let none = EgressGuard::default();
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(none.permits("h", ip(refused)).is_err(), "{refused}");
        }
        for allowed in ["93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"] {
            assert!(none.permits("h", ip(allowed)).is_ok(), "{allowed}");
        }
        let guard = EgressGuard::parse("127.0.0.0/8, hooks.internal, *.corp, 192.168.1.7").unwrap();
        assert!(guard.permits("localhost", ip("127.0.0.1")).is_ok());
        assert!(guard.permits("hooks.internal", ip("10.0.0.5")).is_ok());
        assert!(guard.permits("api.corp", ip("10.0.0.5")).is_ok());
        assert!(guard.permits("other", ip("10.0.0.5")).is_err());
        assert!(guard.permits("x", ip("192.168.1.7")).is_ok());
        assert!(guard.permits("x", ip("192.168.1.8")).is_err());
    }

    #[test]
    fn metadata_is_never_reachable() {
        let everything = EgressGuard::parse("0.0.0.0/0, ::/0, metadata.google.internal").unwrap();
        assert!(everything.permits("metadata.google.internal", ip("169.254.169.254")).is_err());
        assert!(everything.permits("x", ip("fd00:ec2::254")).is_err());
        assert!(everything.permits("x", ip("10.0.0.1")).is_ok());
    }

    #[test]
    fn bad_allow_lists_are_rejected() {
        assert!(EgressGuard::parse("10.0.0.0/33").is_err());
        assert!(EgressGuard::parse("nonsense/8").is_err());
        assert_eq!(EgressGuard::parse(" , ").unwrap(), EgressGuard::default());
    }

    #[tokio::test]
    async fn names_resolving_inward_are_refused_at_connect() {
        crate::install_crypto_provider();
        let guard = Arc::new(EgressGuard::default());
        let client = guard.client(Duration::from_secs(2));
        let err = client.get("http://localhost:9/").send().await.unwrap_err();
        let mut source: Option<&dyn std::error::Error> = Some(&err);
        let mut refused = false;
        while let Some(s) = source {
            refused |= s.downcast_ref::<Refused>().is_some();
            source = s.source();
        }
        assert!(refused, "{err:?}");
        let literal = reqwest::Url::parse("http://127.0.0.1:9/").unwrap();
        assert!(guard.check_url(&literal).is_err());
    }

    /// A server on loopback that answers `/redirect` with a redirect to `to` and everything
    /// else with 200, closing each connection (so every request resolves its name again).
    async fn local_server(to: &'static str) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    let request = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let answer = if request.starts_with("GET /redirect") {
                        format!(
                            "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        )
                    } else {
                        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                            .to_owned()
                    };
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        port
    }

    /// A resolver answering each lookup with the next of `answers`.
    fn scripted(answers: &[&'static str]) -> Lookup {
        let answers =
            Arc::new(std::sync::Mutex::new(answers.iter().rev().copied().collect::<Vec<_>>()));
        Arc::new(move |_| {
            let next = answers.lock().unwrap().pop().unwrap_or("169.254.169.254");
            Box::pin(async move { Ok(vec![SocketAddr::new(next.parse().unwrap(), 0)]) })
        })
    }

    #[tokio::test]
    async fn every_connection_checks_the_address_its_name_resolved_to() {
        crate::install_crypto_provider();
        let port = local_server("http://10.9.9.9/inside").await;
        let guard = Arc::new(EgressGuard::parse("127.0.0.1").unwrap());
        let client = guard.client_resolving(
            Duration::from_secs(2),
            scripted(&["127.0.0.1", "10.1.2.3", "127.0.0.1", "127.0.0.1"]),
        );
        let url = format!("http://hooks.example:{port}/");
        assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
        // The same name now answers with a private address: refused, the URL being the same.
        let err = client.get(&url).send().await.unwrap_err();
        let why = refusal(&err).unwrap_or_default();
        assert!(why.contains("10.1.2.3"), "{err:?}");
        assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
        // An allowed server redirecting inward is refused at the redirect.
        let err =
            client.get(format!("http://hooks.example:{port}/redirect")).send().await.unwrap_err();
        assert!(refusal(&err).unwrap_or_default().contains("10.9.9.9"), "{err:?}");
        // Once the answers run out the scripted resolver gives the metadata address.
        let err = client.get(&url).send().await.unwrap_err();
        assert!(refusal(&err).unwrap_or_default().contains("metadata"), "{err:?}");
    }
}
