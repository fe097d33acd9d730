//! Relay: ordered group chat through a central dispatcher (seed 002, spec:
//! `relay.md`). In progress: the wire protocol ([`proto`]) and the sequencer
//! ([`sequencer`]) are done and tested; the server, the client and the
//! benchmark are not written yet, so nothing here is wired into `protolab`.

pub mod error;
pub mod proto;
pub mod sequencer;

pub use error::Error;
