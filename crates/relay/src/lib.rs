//! Relay: ordered group chat through a central dispatcher (seed 002, spec:
//! `relay.md`).
//!
//! - [`proto`]: the versioned, length-prefixed protocol (pure);
//! - [`sequencer`]: total order, effectively-once, history and resume (sans-IO);
//! - [`server`]: the sequencer behind a lock, one bounded outbox per client,
//!   heartbeats;
//! - [`client`]: prints each event once, acknowledges, reconnects and resumes;
//! - [`legacy`]: the seed's original chat clients on a second listener;
//! - [`log`]: the durable event log (`--log-dir`);
//! - [`web`]: the chat page and its WebSocket (`--web`);
//! - [`pressure`]: senders slowed while any client lags;
//! - [`bench`]: `protolab relay bench` against a plain fan-out and Redis.

pub mod bench;
pub mod client;
mod cut;
pub mod error;
pub mod legacy;
pub mod log;
pub mod pressure;
pub mod proto;
pub mod sequencer;
pub mod server;
mod session;
pub mod web;

pub use error::Error;
