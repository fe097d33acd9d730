//! The national lottery bets system of seed 000 (spec: `lottery.md`).
//!
//! Agencies (clients) send their bets in batches over a binary protocol to a
//! central server, which stores them durably and, once every expected agency has
//! sent its last batch, runs the draw and tells each agency its own winners.
//!
//! - [`bet`]: a bet and its validation;
//! - [`proto`]: the wire protocol (pure);
//! - [`batch`]: packing an agency's bets into messages under 8 KiB;
//! - [`digest`]: what a batch holds, in 64 bits (its identity with its place);
//! - [`agencies`]: one live connection per agency;
//! - [`store`]: the durable store (SQLite, or PostgreSQL shared by several
//!   servers) with group commit and exactly-once batches;
//! - [`pg_sandbox`]: a throwaway PostgreSQL cluster (tests, trying it out);
//! - [`draw`]: who wins, and when the draw may happen;
//! - [`server`] and [`client`]: the two programs' cores;
//! - [`dataset`], [`generate`], [`export`]: reading, making and writing bets;
//! - [`simulate`]: a server and N agencies on loopback (the main scenario).

pub mod agencies;
pub mod batch;
pub mod bench;
pub mod bet;
pub mod client;
pub mod dataset;
pub mod digest;
pub mod draw;
pub mod error;
pub mod export;
pub mod generate;
pub mod multi;
pub mod pg_sandbox;
pub mod proto;
pub mod server;
pub mod simulate;
pub mod store;

pub use bet::Bet;
pub use error::Error;
