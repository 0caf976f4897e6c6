//! The client's address: the socket peer, or behind trusted proxies the
//! right-most address in `X-Forwarded-For` that is not one of them.

use std::net::IpAddr;

use poem::Request;

/// An address range (`10.0.0.0/8`, `::1/128`, or a single address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(ipnet::IpNet);

impl Cidr {
    /// Parses `addr/prefix`, or a bare `addr` (one address).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        text.parse::<ipnet::IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(ipnet::IpNet::from))
            .map(Self)
            .map_err(|_| format!("{text:?} is not an address or CIDR"))
    }

    /// Whether `ip` is in the range (an IPv4-mapped IPv6 address is its
    /// IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<Cidr>);

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|cidr| cidr.contains(ip))
    }

    /// The client address of `req`.
    pub fn client_address(&self, req: &Request) -> Option<IpAddr> {
        let peer = req
            .remote_addr()
            .as_socket_addr()
            .map(|addr| addr.ip().to_canonical())?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        let forwarded = req.headers().get_all("x-forwarded-for");
        let values = forwarded.iter().filter_map(|value| value.to_str().ok());
        Some(self.forwarded_client(peer, values))
    }

    /// The client behind the trusted `peer`, from its `X-Forwarded-For`
    /// `values`: right to left, the first hop no trusted proxy vouches for.
    /// An entry that is not an address (`unknown`, `ip:port`, junk) ends
    /// the search at `peer`: what lies left of it was not written by a
    /// proxy we trust to write addresses, so it may be the client's own.
    fn forwarded_client<'a>(&self, peer: IpAddr, values: impl Iterator<Item = &'a str>) -> IpAddr {
        let hops: Vec<&str> = values.flat_map(|value| value.split(',')).collect();
        for hop in hops.into_iter().rev() {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                return peer;
            };
            let ip = ip.to_canonical();
            if !self.trusts(ip) {
                return ip;
            }
        }
        peer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_entry_that_is_not_an_address_ends_the_search_for_the_client() {
        let proxies = TrustedProxies(vec![Cidr::parse("10.0.0.0/8").unwrap()]);
        let peer = ip("10.1.2.3");
        let client = |values: &[&str]| proxies.forwarded_client(peer, values.iter().copied());
        assert_eq!(client(&["198.51.100.7, 10.0.0.5"]), ip("198.51.100.7"));
        assert_eq!(client(&["198.51.100.7", "10.0.0.5"]), ip("198.51.100.7"));
        // The client wrote the left-most entry; the proxy an unusable one.
        for unusable in ["unknown", "203.0.113.50:4711", "", "[::1]:80"] {
            let header = format!("198.51.100.7, {unusable}, 10.0.0.5");
            assert_eq!(client(&[&header]), peer, "{header}");
        }
        assert_eq!(client(&["10.0.0.9, 10.0.0.5"]), peer);
        assert_eq!(client(&[]), peer);
    }

    #[test]
    fn ranges_contain_their_addresses_only() {
        let private = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(private.contains(ip("10.200.3.4")));
        assert!(!private.contains(ip("11.0.0.1")));
        assert!(
            private.contains(ip("::ffff:10.1.2.3")),
            "IPv4-mapped IPv6 is the same address"
        );
        assert!(!private.contains(ip("::1")));
        assert!(Cidr::parse("::1").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("203.0.113.9"))
        );
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("not-an-ip").is_err());
    }
}
