//! Fetching `payload.url`, for operators who enable it: http and https only, hosts on an
//! allow-list, loopback/private/link-local addresses refused unless allowed, size and time
//! capped. Off by default, so that the server is never a proxy into the user's network.
//!
//! Addresses are checked where connections are made (a DNS resolver that refuses forbidden
//! answers), so a host that resolves to a private address, or a redirect to one, is refused
//! too; every redirect must also pass the scheme and allow-list checks.

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{redirect, Url};
use thiserror::Error;

/// Redirects followed before a fetch fails.
const MAX_REDIRECTS: usize = 5;

/// What the operator allows the server to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchConfig {
    /// Hosts that may be fetched from, as written in URLs (`example.com`, `10.0.0.5`);
    /// `*.example.com` allows every subdomain of `example.com`.
    pub allowed_hosts: Vec<String>,
    /// Whether hosts may resolve to loopback, private, link-local or other non-public
    /// addresses.
    pub allow_private: bool,
    /// Largest download, in bytes.
    pub max_bytes: usize,
    /// Longest a download may take, from connecting to the last byte.
    pub timeout: Duration,
}

/// Why a URL was not fetched.
#[derive(Debug, Error)]
pub enum FetchError {
    /// The text is not a URL.
    #[error("url `{0}` is not a valid URL")]
    InvalidUrl(String),
    /// Only http and https are fetched.
    #[error("only http and https URLs are fetched, not `{0}`")]
    Scheme(String),
    /// The host is not on the operator's allow-list.
    #[error("host `{0}` is not on this server's list of hosts to fetch from")]
    HostNotAllowed(String),
    /// The host is, or resolves to, an address the server does not fetch from.
    #[error("`{host}` is {addr}, a loopback, private or link-local address this server does not fetch from")]
    PrivateAddress {
        /// The host as named.
        host: String,
        /// The refused address.
        addr: IpAddr,
    },
    /// The download exceeds the size cap.
    #[error("the download is larger than {limit} bytes")]
    TooLarge {
        /// The cap.
        limit: usize,
    },
    /// The download exceeds the time cap.
    #[error("the download took longer than {0:?}")]
    Timeout(Duration),
    /// The remote server answered with an error status.
    #[error("the remote server answered HTTP {0}")]
    Status(u16),
    /// Too many redirects.
    #[error("more than {MAX_REDIRECTS} redirects")]
    Redirects,
    /// Connecting or reading failed.
    #[error("cannot download: {0}")]
    Http(String),
    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

/// TLS for downloads: rustls with the *ring* provider (no process-wide default is installed),
/// certificates checked by the system's verifier.
fn tls_config() -> Result<rustls::ClientConfig, FetchError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
        .map_err(|e| FetchError::Client(e.to_string()))?;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| FetchError::Client(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// Downloads URLs within a [`FetchConfig`].
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    rules: Arc<FetchConfig>,
}

impl Fetcher {
    /// Builds the HTTP client: no proxies, the guarded resolver, checked redirects.
    pub fn new(config: FetchConfig) -> Result<Self, FetchError> {
        let rules = Arc::new(config);
        let policy_rules = rules.clone();
        let policy = redirect::Policy::custom(move |attempt| {
            match check_redirect(&policy_rules, attempt.previous().len(), attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(e) => attempt.error(e),
            }
        });
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config()?)
            .no_proxy()
            .redirect(policy)
            .dns_resolver(GuardedResolver {
                allow_private: rules.allow_private,
            })
            .connect_timeout(rules.timeout)
            .timeout(rules.timeout)
            .build()
            .map_err(|e| FetchError::Client(e.to_string()))?;
        Ok(Self { client, rules })
    }

    /// Checks a URL against the rules without connecting: scheme, allow-list, literal address.
    pub fn check(&self, url: &str) -> Result<Url, FetchError> {
        let parsed = Url::parse(url.trim()).map_err(|_| FetchError::InvalidUrl(url.to_owned()))?;
        check_target(&self.rules, &parsed)?;
        Ok(parsed)
    }

    /// Downloads `url` whole, within the size and time caps.
    pub async fn fetch(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let url = self.check(url)?;
        let limit = self.rules.max_bytes;
        let download = async {
            let mut response = self
                .client
                .get(url)
                .send()
                .await
                .map_err(|e| self.classify(e))?;
            if !response.status().is_success() {
                return Err(FetchError::Status(response.status().as_u16()));
            }
            if response.content_length().is_some_and(|n| n > limit as u64) {
                return Err(FetchError::TooLarge { limit });
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| self.classify(e))? {
                if body.len() + chunk.len() > limit {
                    return Err(FetchError::TooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        };
        tokio::time::timeout(self.rules.timeout, download)
            .await
            .map_err(|_| FetchError::Timeout(self.rules.timeout))?
    }

    /// Recovers our own refusal from inside a client error, or names the failure.
    fn classify(&self, error: reqwest::Error) -> FetchError {
        if error.is_timeout() {
            return FetchError::Timeout(self.rules.timeout);
        }
        let mut source: Option<&(dyn StdError + 'static)> = error.source();
        while let Some(cause) = source {
            if let Some(refusal) = cause.downcast_ref::<FetchError>() {
                return match refusal {
                    FetchError::PrivateAddress { host, addr } => FetchError::PrivateAddress {
                        host: host.clone(),
                        addr: *addr,
                    },
                    other => FetchError::Http(other.to_string()),
                };
            }
            source = cause.source();
        }
        FetchError::Http(error_chain(&error))
    }
}

/// Whether a redirect to `url`, after `hops` earlier ones, may be followed: within the hop
/// limit, and to a target the rules allow (as the first URL must be).
fn check_redirect(rules: &FetchConfig, hops: usize, url: &Url) -> Result<(), FetchError> {
    if hops >= MAX_REDIRECTS {
        return Err(FetchError::Redirects);
    }
    check_target(rules, url)
}

/// Scheme, allow-list and (for literal addresses) the private-address rule.
fn check_target(rules: &FetchConfig, url: &Url) -> Result<(), FetchError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::Scheme(url.scheme().to_owned()));
    }
    let raw = url
        .host_str()
        .ok_or_else(|| FetchError::InvalidUrl(url.to_string()))?;
    let bare = raw.trim_start_matches('[').trim_end_matches(']');
    let literal: Option<IpAddr> = bare.parse().ok();
    let name = match literal {
        Some(addr) => addr.to_string(),
        None => bare.trim_end_matches('.').to_ascii_lowercase(),
    };
    if !host_allowed(&rules.allowed_hosts, &name) {
        return Err(FetchError::HostNotAllowed(name));
    }
    match literal {
        Some(addr) if !rules.allow_private && !is_public(addr) => {
            Err(FetchError::PrivateAddress { host: name, addr })
        }
        _ => Ok(()),
    }
}

/// Whether `host` (lower case) matches an allow-list entry, exactly or as `*.` subdomain.
fn host_allowed(allowed: &[String], host: &str) -> bool {
    allowed.iter().any(|entry| {
        let entry = entry.trim().trim_end_matches('.').to_ascii_lowercase();
        let entry = entry.trim_start_matches('[').trim_end_matches(']');
        match entry.strip_prefix("*.") {
            Some(parent) => host
                .strip_suffix(parent)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => host == entry,
        }
    })
}

/// Whether an address is globally routable: not loopback, private, link-local, shared
/// (CGNAT), unspecified, multicast, broadcast, documentation or reserved.
fn is_public(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(ip) => {
            let [a, b, ..] = ip.octets();
            !(ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_multicast()
                || ip.is_documentation()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && ip.octets()[2] == 0)
                || (a == 198 && (18..20).contains(&b)))
        }
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = ip.segments()[0];
            let nat64 = ip.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
            if nat64 {
                let [.., c, d] = ip.segments();
                let embedded = std::net::Ipv4Addr::from((u32::from(c) << 16) | u32::from(d));
                return is_public(IpAddr::V4(embedded));
            }
            !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                || first == 0x2001 && ip.segments()[1] == 0x0db8)
        }
    }
}

/// Resolves with the system resolver and refuses answers that are not public addresses.
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow_private {
                if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
                    return Err(Box::new(FetchError::PrivateAddress {
                        host,
                        addr: bad.ip(),
                    }) as Box<dyn StdError + Send + Sync>);
                }
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// An error and its causes on one line.
fn error_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(hosts: &[&str], allow_private: bool) -> FetchConfig {
        FetchConfig {
            allowed_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            allow_private,
            max_bytes: 1 << 20,
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn non_public_addresses_are_recognised() {
        let refused = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "198.18.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
        ];
        for addr in refused {
            assert!(!is_public(addr.parse().unwrap()), "{addr}");
        }
        for addr in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(is_public(addr.parse().unwrap()), "{addr}");
        }
    }

    #[test]
    fn targets_are_checked_before_connecting() {
        let fetcher =
            Fetcher::new(rules(&["example.com", "*.cdn.example", "127.0.0.1"], false)).unwrap();
        assert!(fetcher.check("https://example.com/a.mp3").is_ok());
        assert!(fetcher.check("http://EXAMPLE.com./a.mp3").is_ok());
        assert!(fetcher.check("https://eu.cdn.example/a.mp3").is_ok());
        let refusals = [
            ("ftp://example.com/a.mp3", "only http and https"),
            ("file:///etc/passwd", "only http and https"),
            ("https://evil.com/a.mp3", "not on this server's list"),
            (
                "https://example.com.evil.com/a",
                "not on this server's list",
            ),
            ("https://cdn.example/a.mp3", "not on this server's list"),
            ("https://xcdn.example/a.mp3", "not on this server's list"),
            ("http://127.0.0.1/a.mp3", "loopback, private or link-local"),
            ("not a url", "not a valid URL"),
        ];
        for (url, reason) in refusals {
            let error = fetcher.check(url).unwrap_err().to_string();
            assert!(error.contains(reason), "{url}: {error}");
        }
        let open = Fetcher::new(rules(&["127.0.0.1"], true)).unwrap();
        assert!(open.check("http://127.0.0.1:8080/a.mp3").is_ok());
    }

    #[test]
    fn redirects_are_held_to_the_same_rules_and_a_hop_limit() {
        let guarded = rules(&["cdn.example", "127.0.0.1", "10.0.0.7"], false);
        let url = |u: &str| Url::parse(u).unwrap();
        assert!(check_redirect(&guarded, 0, &url("https://cdn.example/b.mp3")).is_ok());
        for private in ["http://127.0.0.1/a.mp3", "http://10.0.0.7:8080/a.mp3"] {
            let error = check_redirect(&guarded, 1, &url(private)).unwrap_err();
            assert!(
                error
                    .to_string()
                    .contains("loopback, private or link-local"),
                "{private}: {error}"
            );
        }
        let away = check_redirect(&guarded, 1, &url("https://evil.com/a.mp3")).unwrap_err();
        assert!(
            away.to_string().contains("not on this server's list"),
            "{away}"
        );
        let looping = check_redirect(&guarded, MAX_REDIRECTS, &url("https://cdn.example/"));
        assert!(matches!(looping, Err(FetchError::Redirects)));
    }
}
