//! Impair: a user-space network impairment proxy (spec: `impair.md`).
//!
//! It sits between a client and a server on one machine and makes the network
//! between them bad on purpose, reproducibly:
//! - [`udp::UdpProxy`]: datagrams relayed both ways, per client address, with loss,
//!   duplication, delay and jitter, reordering, corruption, a rate limit, and
//!   dropping exactly the Nth datagram or the ones matching a pattern
//!   ([`datagram`] holds the decisions, sans-IO);
//! - [`tcp::TcpProxy`]: a stream relayed both ways, chopped into small writes,
//!   delayed, rate-limited, coalesced, stalled, closed or reset after N bytes or
//!   T seconds ([`shaping`] holds the byte arithmetic, sans-IO);
//! - [`link::Link`]: two network namespaces joined through TUN devices, every
//!   IP packet between them through the datagram engine (kernel TCP included).
//!
//! Every rule is set per direction ([`PerDir`]); every random choice comes from a
//! generator seeded by the configuration, so a run can be repeated. Both proxies
//! start in-process on port 0 for tests of the other systems, and give a summary
//! ([`stats`]) when they stop.

pub mod bench;
pub mod datagram;
pub mod direction;
pub mod error;
pub mod link;
pub mod shaping;
pub mod stats;
pub mod tcp;
pub mod udp;
pub mod units;

pub use datagram::UdpRules;
pub use direction::{DirValue, Direction, PerDir};
pub use error::Error;
pub use shaping::TcpRules;
pub use stats::{TcpSummary, UdpSummary};
pub use tcp::{TcpProxy, TcpProxyConfig};
pub use udp::{UdpProxy, UdpProxyConfig};

/// A seed for one direction of one flow, derived from the run's seed so flows
/// and directions get independent but reproducible streams (splitmix64).
pub fn derive_seed(seed: u64, flow: u64, dir: Direction) -> u64 {
    let mut z = seed
        ^ flow.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ match dir {
            Direction::Up => 0x5555_5555,
            Direction::Down => 0xAAAA_AAAA,
        };
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
