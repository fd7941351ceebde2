//! Which addresses an outbound request may connect to, checked after DNS
//! (so a name resolving to a private address is caught too) and on every
//! new connection: link-local and cloud metadata addresses never; loopback
//! and private ranges only when the operator lists them in
//! `outbound_private_networks`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::allowlist::canonical;

/// The host-wide outbound network rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundNetwork {
    /// Private, loopback or shared ranges the operator allows (`outbound_private_networks`).
    pub private_networks: Vec<IpNet>,
}

impl OutboundNetwork {
    /// `Ok` when a connection to `ip` is allowed, else why not.
    pub(crate) fn check(&self, ip: IpAddr) -> Result<(), String> {
        let ip = canonical(ip);
        if let Some(kind) = never_allowed(ip) {
            return Err(format!("{ip} is {kind}: never allowed"));
        }
        if let Some(kind) = private(ip)
            && !self.private_networks.iter().any(|net| net.contains(&ip))
        {
            return Err(format!(
                "{ip} is {kind}: allowed only when the host's outbound_private_networks lists it"
            ));
        }
        Ok(())
    }
}

/// Addresses no request may reach, whatever the settings.
fn never_allowed(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_link_local() {
                Some("link-local (cloud metadata lives here)")
            } else if v4.is_unspecified() || v4.octets()[0] == 0 {
                Some("an unspecified address")
            } else if v4.is_multicast() || v4.is_broadcast() {
                Some("multicast or broadcast")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("a cloud metadata address")
            } else if (v6.segments()[0] & 0xffc0) == 0xfe80 {
                Some("link-local")
            } else if v6.is_unspecified() {
                Some("an unspecified address")
            } else if v6.is_multicast() {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

/// Addresses allowed only when listed: loopback, private and shared ranges.
fn private(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if in_v4(v4, [100, 64, 0, 0], 10) {
                Some("shared (carrier-grade NAT)")
            } else if in_v4(v4, [198, 18, 0, 0], 15) || in_v4(v4, [192, 0, 0, 0], 24) {
                Some("reserved")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6.is_loopback() {
                Some("loopback")
            } else if (v6.segments()[0] & 0xfe00) == 0xfc00 {
                Some("private (unique local)")
            } else {
                None
            }
        }
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX << (32 - prefix);
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn metadata_and_link_local_are_never_allowed() {
        let all = OutboundNetwork {
            private_networks: vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
        };
        for never in [
            "169.254.169.254",
            "169.254.0.1",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
            "fe80::1",
            "0.0.0.0",
            "::",
            "224.0.0.1",
        ] {
            assert!(all.check(ip(never)).is_err(), "{never}");
        }
    }

    #[test]
    fn private_ranges_need_listing() {
        let none = OutboundNetwork::default();
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "::1",
            "fd12::1",
            "::ffff:127.0.0.1",
        ] {
            let err = none.check(ip(private)).unwrap_err();
            assert!(err.contains("outbound_private_networks"), "{err}");
        }
        assert_eq!(none.check(ip("93.184.216.34")), Ok(()));
        assert_eq!(none.check(ip("2606:2800:220:1::1")), Ok(()));
        let loopback = OutboundNetwork {
            private_networks: vec!["127.0.0.0/8".parse().unwrap()],
        };
        assert_eq!(loopback.check(ip("127.0.0.1")), Ok(()));
        assert_eq!(loopback.check(ip("::ffff:127.0.0.1")), Ok(()));
        assert!(loopback.check(ip("10.0.0.1")).is_err());
    }
}
