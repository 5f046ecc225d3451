//! HTTP CONNECT proxies between agentk and kas, configured from `HTTPS_PROXY`, `HTTP_PROXY` and
//! `NO_PROXY` the way GitLab documents it for the Helm chart's `extraEnv` (either case accepted).
//!
//! Upstream agentk relies on grpc-go for `grpc://`/`grpcs://`, which asks Go's
//! `golang.org/x/net/http/httpproxy` which proxy to use and then speaks HTTP CONNECT to it. kasim
//! copies those rules, so this module is the single place that decides:
//! - **Which variable**: the kas connection is treated like a request to `https://kas` for `grpcs://`
//!   (so `HTTPS_PROXY` applies) and to `http://kas` for `grpc://` (so `HTTP_PROXY` applies).
//! - **Case**: for each variable the upper-case name wins when it is set and non-empty; an empty
//!   upper-case value falls back to the lower-case one (Go's `getEnvAny`).
//! - **Proxy URL**: `http://[user:pass@]host[:port]`, or a bare `host:port` read as `http://`
//!   (Go retries the parse with `http://` prepended). Default port 80. Credentials become
//!   `Proxy-Authorization: Basic`, as grpc-go sends them. `https://` (TLS to the proxy) and `socks5://`
//!   are refused with an error that says so, rather than silently speaking plain text to them.
//! - **NO_PROXY**: see [`NoProxy`]; `localhost` and loopback IPs are never proxied (Go's rule).
//!
//! The proxy sits *under* TLS: [`ProxyConnector`] hands the tunnelled stream up, and a
//! [`super::tls::TlsConnector`] on top verifies kas (custom CA, server name) end to end through it.

use std::io;
use std::net::IpAddr;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{BoxFuture, BoxIo, Connect, Dialer};

/// Longest CONNECT response head read from a proxy.
const MAX_RESPONSE_HEAD: usize = 8 * 1024;

/// Why the proxy configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("{var}={value:?}: invalid proxy URL: {reason}")]
    InvalidUrl { var: String, value: String, reason: String },
    #[error(
        "{var}={value:?}: proxy scheme {scheme}:// is not supported (kasim speaks plain HTTP CONNECT to the proxy); use http://"
    )]
    UnsupportedScheme { var: String, value: String, scheme: String },
}

/// The proxy variables as read from the environment, after the upper/lower case rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    /// `(variable name, value)` of the winning `HTTP_PROXY`/`http_proxy`.
    pub http_proxy: Option<(String, String)>,
    /// `(variable name, value)` of the winning `HTTPS_PROXY`/`https_proxy`.
    pub https_proxy: Option<(String, String)>,
    pub no_proxy: String,
}

fn env_any(get: &impl Fn(&str) -> Option<String>, upper: &str) -> Option<(String, String)> {
    let lower = upper.to_ascii_lowercase();
    [upper.to_owned(), lower].into_iter().find_map(|name| get(&name).filter(|v| !v.is_empty()).map(|v| (name, v)))
}

impl ProxyEnv {
    /// Reads the variables through `get` (the process environment in binaries, a table in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            http_proxy: env_any(&get, "HTTP_PROXY"),
            https_proxy: env_any(&get, "HTTPS_PROXY"),
            no_proxy: env_any(&get, "NO_PROXY").map(|(_, v)| v).unwrap_or_default(),
        }
    }

    /// The proxy for the kas connection: `HTTPS_PROXY` for `grpcs://`, `HTTP_PROXY` for `grpc://`.
    pub fn proxy_for_kas(&self, tls: bool) -> Result<Option<ProxyUrl>, ProxyError> {
        let var = if tls { &self.https_proxy } else { &self.http_proxy };
        var.as_ref().map(|(name, value)| ProxyUrl::parse(name, value)).transpose()
    }

    /// Wraps `inner` so that kas connections go through the configured proxy, unless `NO_PROXY`
    /// exempts them. Without a proxy variable for this scheme, `inner` is returned unchanged.
    pub fn wrap(&self, inner: Dialer, tls: bool) -> Result<Dialer, ProxyError> {
        Ok(match self.proxy_for_kas(tls)? {
            None => inner,
            Some(proxy) => std::sync::Arc::new(ProxyConnector::new(inner, proxy, NoProxy::parse(&self.no_proxy))),
        })
    }
}

/// A parsed proxy URL.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    /// `host:port` of the proxy.
    pub authority: String,
    /// `Proxy-Authorization` value when the URL carries credentials.
    proxy_authorization: Option<String>,
}

impl std::fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print credentials.
        f.debug_struct("ProxyUrl")
            .field("authority", &self.authority)
            .field("credentials", &self.proxy_authorization.is_some())
            .finish()
    }
}

impl ProxyUrl {
    /// Parses the value of `var`.
    pub fn parse(var: &str, value: &str) -> Result<Self, ProxyError> {
        let invalid = |reason: &str| ProxyError::InvalidUrl {
            var: var.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = value.trim();
        let (scheme, rest) = match trimmed.split_once("://") {
            Some((s, r)) => (s.to_ascii_lowercase(), r),
            None => ("http".to_owned(), trimmed),
        };
        if scheme != "http" {
            if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
                return Err(invalid("malformed scheme"));
            }
            return Err(ProxyError::UnsupportedScheme { var: var.to_owned(), value: value.to_owned(), scheme });
        }
        // Everything after the authority (a path such as `/proxy`) is irrelevant to CONNECT.
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport).ok_or_else(|| invalid("malformed host:port"))?;
        if host.is_empty() {
            return Err(invalid("missing host"));
        }
        if host.contains(|c: char| c.is_whitespace() || c == '%') {
            return Err(invalid("invalid character in host"));
        }
        let port = match port {
            None => 80,
            Some(p) => p.parse::<u16>().map_err(|_| invalid(&format!("invalid port {p:?}")))?,
        };
        let host = if host.contains(':') { format!("[{host}]") } else { host.to_owned() };
        let proxy_authorization = userinfo.map(|u| {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            let creds = format!("{}:{}", percent_decode(user), percent_decode(pass));
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(creds))
        });
        Ok(Self { authority: format!("{host}:{port}"), proxy_authorization })
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits `host[:port]` / `[v6][:port]`; `None` when brackets do not match. A bare IPv6 address
/// without brackets is taken as a host without port.
fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            a => Some((host, Some(a.strip_prefix(':')?))),
        };
    }
    match s.matches(':').count() {
        0 => Some((s, None)),
        1 => s.split_once(':').map(|(h, p)| (h, Some(p))),
        _ => Some((s, None)),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    fn parse(s: &str) -> Option<Self> {
        let (ip, bits) = s.split_once('/')?;
        let net: IpAddr = ip.parse().ok()?;
        let bits: u8 = bits.parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        (bits <= max).then_some(Self { net, bits })
    }

    fn contains(&self, ip: &IpAddr) -> bool {
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => prefix_eq(&n.octets(), &i.octets(), self.bits),
            (IpAddr::V6(n), IpAddr::V6(i)) => prefix_eq(&n.octets(), &i.octets(), self.bits),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let bits = usize::from(bits);
    let (full, rest) = (bits / 8, bits % 8);
    if a[..full] != b[..full] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[full] & mask == b[full] & mask
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct DomainMatch {
    /// Always starts with `.`.
    suffix: String,
    /// The entry had no leading dot, so the bare domain matches too.
    match_host: bool,
    port: Option<String>,
}

/// `NO_PROXY`, parsed as Go's `httpproxy` parses it:
/// - comma-separated entries, trimmed and lower-cased; empty ones ignored;
/// - `*` alone exempts everything;
/// - `a.b.c.d/n` or `v6/n`: a CIDR block (matches IP hosts, any port);
/// - an IP, optionally `ip:port` / `[v6]:port`: that address (and port, if given);
/// - a domain, optionally `:port`: `example.com` matches `example.com` and every subdomain;
///   `.example.com` and `*.example.com` match subdomains only. Domain entries never match IP hosts.
///
/// Independently of the list, `localhost` and loopback IPs are never proxied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    all: bool,
    cidrs: Vec<Cidr>,
    ips: Vec<(IpAddr, Option<String>)>,
    domains: Vec<DomainMatch>,
}

impl NoProxy {
    pub fn parse(list: &str) -> Self {
        let mut out = Self::default();
        for entry in list.split(',') {
            let p = entry.trim().to_ascii_lowercase();
            if p.is_empty() {
                continue;
            }
            if p == "*" {
                return Self { all: true, ..Self::default() };
            }
            if let Some(c) = Cidr::parse(&p) {
                out.cidrs.push(c);
                continue;
            }
            let (host, port) = match split_host_port(&p) {
                Some((h, Some(port))) => {
                    if h.is_empty() {
                        continue; // `:80` has no host part: malformed, ignored as Go does.
                    }
                    (h.to_owned(), Some(port.to_owned()))
                }
                _ => (p.clone(), None),
            };
            let host_unbracketed = host.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = host_unbracketed.parse::<IpAddr>() {
                out.ips.push((ip, port));
                continue;
            }
            // `*.example.com` means the same as `.example.com`.
            let h = host.strip_prefix('*').filter(|h| h.starts_with('.')).unwrap_or(&host);
            let (suffix, match_host) = if h.starts_with('.') { (h.to_owned(), false) } else { (format!(".{h}"), true) };
            out.domains.push(DomainMatch { suffix, match_host, port });
        }
        out
    }

    /// Whether a connection to `authority` (`host:port`) goes direct.
    pub fn bypasses(&self, authority: &str) -> bool {
        let Some((host, port)) = split_host_port(authority) else {
            return true; // Go: unparsable address → no proxy.
        };
        let host = host.trim().to_ascii_lowercase();
        if host == "localhost" {
            return true;
        }
        let ip = host.parse::<IpAddr>().ok();
        if ip.is_some_and(|ip| ip.is_loopback()) {
            return true;
        }
        if self.all {
            return true;
        }
        let port_ok = |want: &Option<String>| want.as_deref().is_none_or(|w| Some(w) == port);
        if let Some(ip) = ip {
            if self.cidrs.iter().any(|c| c.contains(&ip)) {
                return true;
            }
            if self.ips.iter().any(|(i, p)| *i == ip && port_ok(p)) {
                return true;
            }
            return false;
        }
        self.domains
            .iter()
            .any(|d| (host.ends_with(&d.suffix) || (d.match_host && host == d.suffix[1..])) && port_ok(&d.port))
    }
}

/// Dials through an HTTP CONNECT proxy (or directly, for `NO_PROXY` matches).
pub struct ProxyConnector {
    inner: Dialer,
    proxy: ProxyUrl,
    no_proxy: NoProxy,
}

impl std::fmt::Debug for ProxyConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConnector").field("inner", &self.inner).field("proxy", &self.proxy).finish()
    }
}

impl ProxyConnector {
    /// `inner` dials both the proxy and, for `NO_PROXY` matches, the target itself.
    pub fn new(inner: Dialer, proxy: ProxyUrl, no_proxy: NoProxy) -> Self {
        Self { inner, proxy, no_proxy }
    }
}

impl Connect for ProxyConnector {
    fn connect(&self, authority: &str) -> BoxFuture<'static, io::Result<BoxIo>> {
        if self.no_proxy.bypasses(authority) {
            return self.inner.connect(authority);
        }
        let target = authority.to_owned();
        let proxy = self.proxy.clone();
        let io = self.inner.connect(&proxy.authority);
        Box::pin(async move {
            let mut io = io.await.map_err(|e| {
                io::Error::new(e.kind(), format!("dialing proxy {} for {target}: {e}", proxy.authority))
            })?;
            http_connect(&mut io, &target, proxy.proxy_authorization.as_deref())
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("proxy {}: {e}", proxy.authority)))?;
            Ok(io)
        })
    }
}

/// Sends `CONNECT target HTTP/1.1` on `io` and reads the proxy's answer; anything but a 2xx status
/// is an error naming the status line. Reads byte by byte so no tunnelled byte is swallowed.
pub async fn http_connect(io: &mut BoxIo, target: &str, proxy_authorization: Option<&str>) -> io::Result<()> {
    let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(a) = proxy_authorization {
        req.push_str(&format!("Proxy-Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    io.write_all(req.as_bytes()).await?;
    io.flush().await?;
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_RESPONSE_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("CONNECT {target}: response head longer than {MAX_RESPONSE_HEAD} bytes"),
            ));
        }
        let mut b = [0u8; 1];
        if io.read(&mut b).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("CONNECT {target}: connection closed before a response"),
            ));
        }
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let status_line = head.lines().next().unwrap_or_default().trim();
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") || code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("CONNECT {target}: malformed response {status_line:?}"),
        ));
    }
    if !code.starts_with('2') {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("CONNECT {target} refused: {status_line}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> ProxyEnv {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        ProxyEnv::from_lookup(move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn upper_case_wins_and_empty_upper_falls_back() {
        let e = env(&[("HTTPS_PROXY", "http://upper:1"), ("https_proxy", "http://lower:2")]);
        assert_eq!(e.proxy_for_kas(true).unwrap().unwrap().authority, "upper:1");
        let e = env(&[("HTTPS_PROXY", ""), ("https_proxy", "http://lower:2")]);
        assert_eq!(e.proxy_for_kas(true).unwrap().unwrap().authority, "lower:2");
        let e = env(&[("https_proxy", "http://lower:2")]);
        assert_eq!(e.https_proxy.as_ref().unwrap().0, "https_proxy");
        let e = env(&[("NO_PROXY", "a"), ("no_proxy", "b")]);
        assert_eq!(e.no_proxy, "a");
        let e = env(&[("no_proxy", "b")]);
        assert_eq!(e.no_proxy, "b");
    }

    #[test]
    fn scheme_picks_the_variable() {
        let e = env(&[("HTTP_PROXY", "http://plain:3128"), ("HTTPS_PROXY", "http://secure:3129")]);
        assert_eq!(e.proxy_for_kas(false).unwrap().unwrap().authority, "plain:3128");
        assert_eq!(e.proxy_for_kas(true).unwrap().unwrap().authority, "secure:3129");
        let only_http = env(&[("HTTP_PROXY", "http://plain:3128")]);
        assert_eq!(only_http.proxy_for_kas(true).unwrap(), None, "grpcs ignores HTTP_PROXY");
    }

    #[test]
    fn proxy_urls() {
        let p = |v: &str| ProxyUrl::parse("HTTPS_PROXY", v);
        assert_eq!(p("http://proxy.corp:3128").unwrap().authority, "proxy.corp:3128");
        assert_eq!(p("proxy.corp:3128").unwrap().authority, "proxy.corp:3128");
        assert_eq!(p("http://proxy.corp").unwrap().authority, "proxy.corp:80");
        assert_eq!(p("http://proxy.corp:8080/some/path").unwrap().authority, "proxy.corp:8080");
        assert_eq!(p("http://[::1]:3128").unwrap().authority, "[::1]:3128");
        let a = p("http://us%40er:p%3Ass@proxy:1").unwrap();
        assert_eq!(a.authority, "proxy:1");
        let want = base64::engine::general_purpose::STANDARD.encode("us@er:p:ss");
        assert_eq!(a.proxy_authorization.as_deref(), Some(format!("Basic {want}").as_str()));
        assert!(!format!("{a:?}").contains(&want), "credentials never printed");
        assert_eq!(
            p("https://example.com/proxy").unwrap_err().to_string(),
            "HTTPS_PROXY=\"https://example.com/proxy\": proxy scheme https:// is not supported (kasim speaks plain HTTP CONNECT to the proxy); use http://"
        );
        assert!(matches!(p("socks5://h:1"), Err(ProxyError::UnsupportedScheme { .. })));
        assert_eq!(
            p("http://proxy:99999").unwrap_err().to_string(),
            "HTTPS_PROXY=\"http://proxy:99999\": invalid proxy URL: invalid port \"99999\""
        );
        assert_eq!(
            p("http://:3128").unwrap_err(),
            ProxyError::InvalidUrl {
                var: "HTTPS_PROXY".into(),
                value: "http://:3128".into(),
                reason: "missing host".into()
            }
        );
        assert!(matches!(p("http://[::1:3128"), Err(ProxyError::InvalidUrl { .. })));
        assert!(matches!(p("ht tp://x"), Err(ProxyError::InvalidUrl { .. })));
    }

    #[test]
    fn no_proxy_table() {
        // (NO_PROXY, target, bypass?)
        let table: &[(&str, &str, bool)] = &[
            ("", "kas.example.com:443", false),
            ("*", "kas.example.com:443", true),
            ("*", "10.0.0.1:443", true),
            // loopback and localhost are never proxied
            ("", "localhost:8150", true),
            ("", "127.0.0.1:8150", true),
            ("", "127.9.9.9:8150", true),
            ("", "[::1]:8150", true),
            // exact host and domain suffix without a leading dot: host and subdomains
            ("example.com", "example.com:443", true),
            ("example.com", "kas.example.com:443", true),
            ("example.com", "notexample.com:443", false),
            ("example.com", "example.com.evil:443", false),
            // leading dot or `*.`: subdomains only
            (".example.com", "kas.example.com:443", true),
            (".example.com", "example.com:443", false),
            ("*.example.com", "kas.example.com:443", true),
            ("*.example.com", "example.com:443", false),
            // case and spaces
            (" Kas.Example.COM ,other", "KAS.example.com:443", true),
            // ports
            ("example.com:443", "kas.example.com:443", true),
            ("example.com:443", "kas.example.com:8150", false),
            ("10.1.2.3:8150", "10.1.2.3:8150", true),
            ("10.1.2.3:8150", "10.1.2.3:443", false),
            ("[fd00::1]:443", "[fd00::1]:443", true),
            // IPs and CIDRs
            ("10.1.2.3", "10.1.2.3:443", true),
            ("10.1.2.3", "10.1.2.4:443", false),
            ("fd00::1", "[fd00::1]:443", true),
            ("10.0.0.0/8", "10.200.3.4:443", true),
            ("10.0.0.0/8", "11.0.0.1:443", false),
            ("192.168.16.0/20", "192.168.31.255:1", true),
            ("192.168.16.0/20", "192.168.32.0:1", false),
            ("fd00::/8", "[fd12::5]:443", true),
            ("fd00::/8", "10.0.0.1:443", false),
            // a CIDR never matches names, a domain never matches IPs
            ("10.0.0.0/8", "kas.internal:443", false),
            ("internal", "10.0.0.1:443", false),
            // malformed entries are skipped, the rest still applies
            (":443,,kas.internal", "kas.internal:8150", true),
            ("other.com,kas.internal", "kas.internal:8150", true),
        ];
        for (list, target, want) in table {
            assert_eq!(NoProxy::parse(list).bypasses(target), *want, "NO_PROXY={list:?} target={target}");
        }
    }

    #[test]
    fn cidr_prefixes() {
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("10.0.0.0/x").is_none());
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(&"1.2.3.4".parse().unwrap()));
    }
}
