//! Connection settings (spec "Socket API", "Loss handling"): MSS, the fixed
//! retransmission timeout, and the bound of every retry loop.

use std::time::Duration;

use crate::dialect::DialectChoice;
use crate::error::Error;
use crate::wire::Format;

/// Settings shared by both ends' cores and the sockets over them.
#[derive(Debug, Clone)]
pub struct Config {
    pub format: Format,
    /// Largest data field of a segment. The seed tests with 16.
    pub mss: usize,
    /// Fixed retransmission timeout.
    pub timeout: Duration,
    /// Timeouts a data segment (or the SYN-ACK) may take before the connection fails.
    pub max_retries: u32,
    /// Timeouts the SYN may take before `connect` fails.
    pub syn_retries: u32,
    /// Timeouts `close()` waits for FIN-ACK, and `recv_close()` for the last ACK
    /// (the seed: 3), and how many times the final ACK is sent (the seed: 3).
    pub close_timeouts: u32,
    /// A connection that hears nothing for this long fails (`PeerSilent`), so
    /// a `recv` on a vanished peer ends.
    pub idle_limit: Duration,
    /// Received data held for the application before new segments go unacknowledged.
    pub recv_buffer: usize,
    /// Course format: learn the peer's reading of the header (`Auto`) or speak
    /// one (`Forced`). The binary format has one reading.
    pub dialect: DialectChoice,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            format: Format::Course,
            mss: 16,
            timeout: Duration::from_millis(200),
            max_retries: 50,
            syn_retries: 15,
            close_timeouts: 3,
            idle_limit: Duration::from_secs(30),
            recv_buffer: 16 << 20,
            dialect: DialectChoice::Auto,
        }
    }
}

impl Config {
    /// The default settings in `format`.
    pub fn new(format: Format) -> Config {
        Config {
            format,
            ..Config::default()
        }
    }

    /// Checks the settings a user can get wrong; the error says which and why.
    pub fn validate(&self) -> Result<(), Error> {
        let max = self.format.max_mss();
        if self.mss == 0 || self.mss > max {
            return Err(Error::Mss {
                mss: self.mss,
                max,
                format: self.format.name(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mss_is_bounded_by_the_datagram() {
        assert!(Config::default().validate().is_ok());
        let mut c = Config::new(Format::Binary);
        c.mss = 65_487;
        assert!(c.validate().is_ok());
        c.mss = 65_488;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("out of range 1..=65487")
        );
        c.mss = 0;
        assert!(c.validate().is_err());
    }
}
