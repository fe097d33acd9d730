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

/// The random stream of one direction of one flow: the run's seed picks the
/// generator, the flow and direction pick one of its independent streams
/// (ChaCha's stream number), so flows and directions never share draws and a
/// run with the same seed and traffic makes the same decisions.
pub fn stream_rng(seed: u64, flow: u64, dir: Direction) -> rand_chacha::ChaCha8Rng {
    use rand::SeedableRng as _;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let dir_bit = match dir {
        Direction::Up => 0,
        Direction::Down => 1,
    };
    rng.set_stream((flow << 1) | dir_bit);
    rng
}
