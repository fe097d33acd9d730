//! What an `impair link` is made of: its name (and so its namespaces'), the
//! addresses on each end, the MTU, and the datagram rules per direction
//! (`a2b` is [`Direction::Up`](crate::Direction::Up), `b2a` is `Down`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::datagram::UdpRules;
use crate::direction::PerDir;
use crate::{Direction, Error};

/// One end of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The first namespace (`NAME-a`); its packets to b go `a2b`.
    A,
    /// The second namespace (`NAME-b`).
    B,
}

impl Side {
    /// Both ends, a first.
    pub const BOTH: [Side; 2] = [Side::A, Side::B];

    /// `a` or `b`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::A => "a",
            Side::B => "b",
        }
    }

    /// The direction of packets this end sends.
    pub fn sending(self) -> Direction {
        match self {
            Side::A => Direction::Up,
            Side::B => Direction::Down,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Side {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim_end_matches(':') {
            "a" | "A" => Ok(Side::A),
            "b" | "B" => Ok(Side::B),
            _ => Err(Error::BadValue {
                what: "side",
                input: s.into(),
                why: "expected a or b".into(),
            }),
        }
    }
}

/// An address with its prefix length, as `ip addr add` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfAddr {
    /// The address.
    pub ip: IpAddr,
    /// The prefix length (the link's subnet).
    pub prefix: u8,
}

impl IfAddr {
    /// `ip/prefix`.
    pub fn new(ip: IpAddr, prefix: u8) -> Self {
        Self { ip, prefix }
    }
}

impl fmt::Display for IfAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix)
    }
}

impl FromStr for IfAddr {
    type Err = Error;
    /// `10.0.0.1/24`, `fd00::1/64`, or an address alone (/24 for IPv4, /64 for
    /// IPv6).
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::BadValue {
            what: "address",
            input: s.into(),
            why: why.into(),
        };
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| bad("expected an IPv4 or IPv6 address, e.g. 10.0.0.1/24"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => {
                if ip.is_ipv4() {
                    24
                } else {
                    64
                }
            }
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| (1..max).contains(p))
                .ok_or_else(|| bad(&format!("the prefix length must be 1 to {}", max - 1)))?,
        };
        if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() {
            return Err(bad("not an address a device can hold"));
        }
        Ok(Self { ip, prefix })
    }
}

/// Everything [`Link::start`](super::Link::start) needs.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// The link's name: its namespaces are `NAME-a` and `NAME-b`.
    pub name: String,
    /// Addresses of a's device.
    pub a: Vec<IfAddr>,
    /// Addresses of b's device.
    pub b: Vec<IfAddr>,
    /// MTU of both devices.
    pub mtu: u32,
    /// Rules per direction: `up` is a → b, `down` is b → a.
    pub rules: PerDir<UdpRules>,
    /// Seed of every random choice.
    pub seed: u64,
    /// Log one line per packet decision.
    pub log_decisions: bool,
}

/// The default MTU, Ethernet's.
pub const DEFAULT_MTU: u32 = 1500;

impl LinkConfig {
    /// A link `name` with the default addresses (10.77.0.1/24 and fd77::1/64 on
    /// a; .2 and ::2 on b), MTU 1500, no rules, seed 0.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            a: default_addrs(Side::A),
            b: default_addrs(Side::B),
            mtu: DEFAULT_MTU,
            rules: PerDir::default(),
            seed: 0,
            log_decisions: false,
        }
    }

    /// Only the IPv4 default addresses: nothing but the traffic a test sends
    /// crosses the link (IPv6 sends its own housekeeping packets).
    pub fn ipv4_only(mut self) -> Self {
        self.a.retain(|a| a.ip.is_ipv4());
        self.b.retain(|a| a.ip.is_ipv4());
        self
    }

    /// The addresses of `side`.
    pub fn addrs(&self, side: Side) -> &[IfAddr] {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    /// The namespace of `side`.
    pub fn namespace(&self, side: Side) -> String {
        namespace(&self.name, side)
    }

    /// Refuses names `ip netns` or a shell would trip on, an MTU the kernel
    /// refuses, and address lists that cannot make a link.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what, input: String, why: &str| Error::BadValue {
            what,
            input,
            why: why.into(),
        };
        let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if self.name.is_empty() || self.name.len() > 32 || !self.name.chars().all(ok_char) {
            return Err(bad(
                "link name",
                self.name.clone(),
                "use 1 to 32 letters, digits, '-' or '_'",
            ));
        }
        if !(MIN_MTU..=MAX_MTU).contains(&self.mtu) {
            return Err(bad(
                "mtu",
                self.mtu.to_string(),
                &format!("must be {MIN_MTU} to {MAX_MTU}"),
            ));
        }
        if self.mtu < 1280 && self.a.iter().chain(&self.b).any(|a| a.ip.is_ipv6()) {
            return Err(bad(
                "mtu",
                self.mtu.to_string(),
                "IPv6 needs at least 1280 (or give IPv4 addresses only)",
            ));
        }
        for side in Side::BOTH {
            if self.addrs(side).is_empty() {
                return Err(bad("address", String::new(), "each side needs an address"));
            }
        }
        for a in &self.a {
            if self.b.iter().any(|b| b.ip == a.ip) {
                return Err(bad("address", a.to_string(), "a and b would share it"));
            }
        }
        Ok(())
    }
}

/// Smallest MTU accepted (IPv4's minimum datagram).
pub const MIN_MTU: u32 = 576;
/// Largest MTU accepted (the largest IP packet).
pub const MAX_MTU: u32 = 65_535;

/// The namespace of `side` of link `name`.
pub fn namespace(name: &str, side: Side) -> String {
    format!("{name}-{side}")
}

fn default_addrs(side: Side) -> Vec<IfAddr> {
    let host = match side {
        Side::A => 1,
        Side::B => 2,
    };
    vec![
        IfAddr::new(IpAddr::V4(Ipv4Addr::new(10, 77, 0, host)), 24),
        IfAddr::new(
            IpAddr::V6(Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, u16::from(host))),
            64,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_and_without_prefix() {
        let a: IfAddr = "10.1.2.3/30".parse().unwrap();
        assert_eq!(a.to_string(), "10.1.2.3/30");
        assert_eq!("10.1.2.3".parse::<IfAddr>().unwrap().prefix, 24);
        assert_eq!(
            "fd00::1".parse::<IfAddr>().unwrap().to_string(),
            "fd00::1/64"
        );
        for bad in [
            "10.1.2.3/33",
            "10.1.2.3/0",
            "nope",
            "127.0.0.1",
            "::/64",
            "fd00::1/x",
        ] {
            assert!(bad.parse::<IfAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_are_valid_and_names_are_checked() {
        LinkConfig::new("lab").validate().unwrap();
        assert!(LinkConfig::new("lab; rm").validate().is_err());
        assert!(LinkConfig::new("").validate().is_err());
        let mut c = LinkConfig::new("lab");
        c.mtu = 1000;
        assert!(c.validate().is_err(), "IPv6 below 1280");
        c = c.ipv4_only();
        c.validate().unwrap();
        c.b = c.a.clone();
        assert!(c.validate().is_err(), "shared address");
        assert_eq!(LinkConfig::new("lab").namespace(Side::B), "lab-b");
    }

    #[test]
    fn sides_parse_with_a_colon() {
        assert_eq!("a:".parse::<Side>().unwrap(), Side::A);
        assert_eq!("b".parse::<Side>().unwrap(), Side::B);
        assert!("c".parse::<Side>().is_err());
    }
}
