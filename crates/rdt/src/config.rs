//! Connection settings (spec "Socket API", "Loss handling", "Modes"): MSS,
//! the retransmission timeout, the bound of every retry loop, the mode, its
//! window and congestion controller.

use std::time::Duration;

use crate::dialect::{DialectChoice, Unit};
use crate::error::Error;
use crate::mode::{CcKind, Mode, RtoChoice};
use crate::wire::Format;

/// Settings shared by both ends' cores and the sockets over them.
#[derive(Debug, Clone)]
pub struct Config {
    pub format: Format,
    /// Largest data field of a segment. The seed tests with 16.
    pub mss: usize,
    /// The retransmission timeout: fixed, or the adaptive one's initial value.
    pub timeout: Duration,
    /// Fixed, or RFC 6298's estimator (windowed modes).
    pub rto: RtoChoice,
    /// Bounds of the adaptive timeout.
    pub min_rto: Duration,
    pub max_rto: Duration,
    pub mode: Mode,
    /// Segments in flight at most (windowed modes).
    pub window: usize,
    pub cc: CcKind,
    /// Duplicate ACKs (go-back-n) or later segments acknowledged selectively
    /// (selective repeat) that mark a segment lost before its timer (RFC 5681: 3).
    pub dup_thresh: u32,
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
            rto: RtoChoice::Fixed,
            // Far above a LAN's round trip, far below RFC 6298's 1 s: a
            // window's burst queues for milliseconds; losses are mostly
            // repaired by duplicate ACKs and SACKs, not the timer.
            min_rto: Duration::from_millis(10),
            max_rto: Duration::from_secs(2),
            mode: Mode::StopAndWait,
            window: 64,
            cc: CcKind::None,
            dup_thresh: 3,
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
        self.validate_mode()
    }

    /// The windowed modes' limits: a window that cannot alias in the 32-bit
    /// sequence space, and the course readings they can be spoken in.
    fn validate_mode(&self) -> Result<(), Error> {
        let bad = |why: String| Err(Error::Mode(why));
        if !self.mode.windowed() {
            return Ok(());
        }
        if self.window == 0 || self.window.saturating_mul(self.mss) >= 1 << 30 {
            return bad(format!(
                "window of {} segments of {} bytes: it must be at least 1 and under 1 GiB in all (so an old and a new window never share a number)",
                self.window, self.mss
            ));
        }
        if self.recv_buffer >= 1 << 30 {
            return bad("receive buffer must be under 1 GiB".into());
        }
        if self.format == Format::Course {
            if self.mode == Mode::SelectiveRepeat {
                return bad(
                    "selective-repeat needs per-segment acknowledgments, which the course header's one number cannot carry: use --format binary (or go-back-n)"
                        .into(),
                );
            }
            match self.dialect {
                DialectChoice::Forced(r) if r.unit == Unit::Bytes => {}
                DialectChoice::Forced(_) => {
                    return bad(
                        "go-back-n in the course format needs a reading whose numbers count bytes (seed, ack-free, own-isn, listen-ack, filler, four-way)"
                            .into(),
                    );
                }
                DialectChoice::Auto => {
                    return bad(
                        "go-back-n in the course format needs the peer's reading named (--dialect seed, say): with several segments in flight an ACK number cannot teach it"
                            .into(),
                    );
                }
            }
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

    #[test]
    fn windowed_modes_say_where_they_cannot_go() {
        use crate::dialect::Reading;
        let mut c = Config::new(Format::Course);
        c.mode = Mode::SelectiveRepeat;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("--format binary")
        );
        c.mode = Mode::GoBackN;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("--dialect seed")
        );
        c.dialect = DialectChoice::Forced(Reading::SEED);
        assert!(c.validate().is_ok());
        c.dialect = DialectChoice::Forced(Reading::parse("segments").unwrap());
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("count bytes")
        );
        let mut b = Config::new(Format::Binary);
        b.mode = Mode::SelectiveRepeat;
        b.mss = 65_000;
        b.window = 20_000;
        assert!(
            b.validate()
                .unwrap_err()
                .to_string()
                .contains("under 1 GiB")
        );
        b.window = 1_000;
        assert!(b.validate().is_ok());
    }
}
