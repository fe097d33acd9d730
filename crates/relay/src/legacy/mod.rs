//! The original chat of seed 002 (issue #17): its clients join our server's
//! one total order, and our client joins its server.
//!
//! - [`frame`]: its frames, and reading them whole from any split (pure);
//! - [`text`]: our events as its payloads and its lines as our events (pure);
//! - [`client`]: our client against the original server: each line sent
//!   once the previous came back through its log;
//! - [`server`]: the second listener, one task pair per original client: one
//!   frame at a time, the next after its ACK, sent again on a timeout, the
//!   client cut when it stops acknowledging.

pub mod client;
pub mod frame;
pub mod server;
pub mod text;
