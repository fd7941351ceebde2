//! `allowed_outbound_hosts`: which `scheme://host:port` an app may call.
//!
//! An entry is `http` or `https`, a host (a DNS name, `*.` and a name for
//! exactly one more label, or an IP address, IPv6 in brackets) and an
//! optional port (else the scheme's). No path, query or user.

use std::fmt;
use std::net::IpAddr;

/// One parsed entry of `allowed_outbound_hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AllowedHost {
    https: bool,
    host: HostPattern,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// Exactly this name (lowercase, no trailing dot).
    Name(String),
    /// One label, then `.` and this suffix (`*.bank.example` keeps `bank.example`).
    AnySubdomainOf(String),
    /// This address.
    Ip(IpAddr),
}

/// Where a request goes, as the allowlist sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Destination {
    pub(crate) https: bool,
    /// Lowercase, without a trailing dot; an IPv6 address without brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Destination {
    /// The destination of `uri`, or why it has none.
    pub(crate) fn of(uri: &http::Uri) -> Result<Self, String> {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            Some(other) => return Err(format!("scheme {other:?} is not http or https")),
            None => return Err("the request has no scheme".into()),
        };
        let host = uri.host().ok_or("the request has no host")?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        Ok(Self { https, host, port })
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

impl AllowedHost {
    /// Parse one entry; the error says what is wrong with it.
    pub(crate) fn parse(entry: &str) -> Result<Self, String> {
        let (scheme, rest) = entry
            .split_once("://")
            .ok_or("give a scheme: http:// or https://")?;
        let https = match scheme {
            "https" => true,
            "http" => false,
            _ => return Err(format!("scheme {scheme:?} is not http or https")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err("give only scheme://host[:port], without a path, query or user".into());
        }
        let (host, port) = split_host_port(rest)?;
        let port = match port {
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("port {port:?} is not a number from 1 to 65535"))?,
            None => {
                if https {
                    443
                } else {
                    80
                }
            }
        };
        let host = parse_host_pattern(host)?;
        Ok(Self { https, host, port })
    }

    /// True when `to` is allowed by this entry.
    pub(crate) fn allows(&self, to: &Destination) -> bool {
        if self.https != to.https || self.port != to.port {
            return false;
        }
        match &self.host {
            HostPattern::Name(name) => *name == to.host,
            HostPattern::AnySubdomainOf(suffix) => to
                .host
                .strip_suffix(suffix.as_str())
                .and_then(|head| head.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
            HostPattern::Ip(ip) => to
                .host
                .parse::<IpAddr>()
                .is_ok_and(|to| canonical(to) == *ip),
        }
    }
}

/// `host` and the text after its `:`, IPv6 in brackets.
fn split_host_port(text: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address needs its closing ]")?;
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(format!("unexpected {after:?} after the IPv6 address")),
            },
        };
    }
    Ok(match text.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    })
}

fn parse_host_pattern(host: &str) -> Result<HostPattern, String> {
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(HostPattern::Ip(canonical(ip)));
    }
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let (wildcard, name) = match host.strip_prefix("*.") {
        Some(name) => (true, name),
        None => (false, host.as_str()),
    };
    let labels: Vec<&str> = name.split('.').collect();
    let valid = name.len() <= 253
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid {
        return Err(format!(
            "{host:?} is not a host name (letters, digits, - and . only; `*.` only as the first label)"
        ));
    }
    if wildcard && labels.len() < 2 {
        return Err(format!(
            "{host:?} would allow a whole top-level domain; name at least two labels after `*.`"
        ));
    }
    Ok(if wildcard {
        HostPattern::AnySubdomainOf(name.to_owned())
    } else {
        HostPattern::Name(name.to_owned())
    })
}

/// An IPv4 address written as IPv6 (`::ffff:10.0.0.1`) is that IPv4 address.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(url: &str) -> Destination {
        Destination::of(&url.parse().unwrap()).unwrap()
    }

    fn allows(entry: &str, url: &str) -> bool {
        AllowedHost::parse(entry).unwrap().allows(&to(url))
    }

    #[test]
    fn scheme_host_and_port_must_all_match() {
        assert!(allows(
            "https://crm.example.com",
            "https://crm.example.com/x?y=1"
        ));
        assert!(allows(
            "https://crm.example.com",
            "https://CRM.example.com.:443/"
        ));
        assert!(!allows(
            "https://crm.example.com",
            "http://crm.example.com/"
        ));
        assert!(!allows(
            "https://crm.example.com",
            "https://crm.example.com:8443/"
        ));
        assert!(!allows(
            "https://crm.example.com",
            "https://crm.example.com.evil.io/"
        ));
        assert!(!allows(
            "https://crm.example.com",
            "https://evilcrm.example.com/"
        ));
        assert!(allows(
            "http://127.0.0.1:9000",
            "http://127.0.0.1:9000/balance"
        ));
        assert!(!allows(
            "http://127.0.0.1:9000",
            "http://127.0.0.1:9001/balance"
        ));
        assert!(allows("http://[::1]:9000", "http://[::1]:9000/"));
        assert!(allows(
            "http://127.0.0.1:9000/",
            "http://[::ffff:127.0.0.1]:9000/"
        ));
    }

    #[test]
    fn a_wildcard_covers_exactly_one_label() {
        assert!(allows(
            "https://*.bank.example",
            "https://api.bank.example/"
        ));
        assert!(!allows("https://*.bank.example", "https://bank.example/"));
        assert!(!allows(
            "https://*.bank.example",
            "https://a.b.bank.example/"
        ));
        assert!(!allows("https://*.bank.example", "https://xbank.example/"));
    }

    #[test]
    fn bad_entries_are_named() {
        for (entry, words) in [
            ("crm.example.com", "give a scheme"),
            ("ftp://crm.example.com", "is not http or https"),
            ("https://crm.example.com/path", "without a path"),
            (
                "https://user@crm.example.com",
                "without a path, query or user",
            ),
            ("https://crm.example.com:0", "from 1 to 65535"),
            ("https://crm.example.com:99999", "from 1 to 65535"),
            ("https://", "empty"),
            ("https://*.com", "top-level domain"),
            ("https://a.*.example", "not a host name"),
            ("https://*", "not a host name"),
            ("https://exa mple.com", "not a host name"),
            ("http://[::1", "closing ]"),
        ] {
            let err = AllowedHost::parse(entry).unwrap_err();
            assert!(err.contains(words), "{entry}: {err}");
        }
    }
}
