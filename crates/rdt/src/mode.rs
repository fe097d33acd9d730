//! The transport's selectable behaviours (spec "Modes", issue #15): how many
//! segments may be in flight and how losses are repaired ([`Mode`]), how the
//! retransmission timeout is chosen ([`RtoChoice`]) and which congestion
//! controller sizes the window ([`CcKind`]). Each parses from the name the
//! command line uses and prints it back.

use std::fmt;
use std::str::FromStr;

/// How many segments may be unacknowledged, and what a loss costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The seed's: one segment in flight, its ACK before the next.
    #[default]
    StopAndWait,
    /// A window of segments, cumulative ACKs, one timer for the oldest; a
    /// timeout resends the whole window; the receiver keeps only in-order data.
    GoBackN,
    /// A window of segments, each with its own timer; the receiver keeps
    /// out-of-order data inside its window and acknowledges each segment
    /// (cumulative ACK plus SACK blocks); only lost segments are resent.
    SelectiveRepeat,
}

impl Mode {
    pub const NAMES: [&'static str; 3] = ["stop-and-wait", "go-back-n", "selective-repeat"];

    pub fn name(self) -> &'static str {
        match self {
            Mode::StopAndWait => "stop-and-wait",
            Mode::GoBackN => "go-back-n",
            Mode::SelectiveRepeat => "selective-repeat",
        }
    }

    /// More than one segment may be in flight.
    pub fn windowed(self) -> bool {
        self != Mode::StopAndWait
    }
}

/// How the retransmission timeout is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RtoChoice {
    /// `timeout`, always (the seed's).
    #[default]
    Fixed,
    /// RFC 6298: SRTT and RTTVAR from round-trip samples (Karn's rule: none
    /// from a retransmitted segment), doubled on each timeout up to a cap.
    Adaptive,
}

impl RtoChoice {
    pub fn name(self) -> &'static str {
        match self {
            RtoChoice::Fixed => "fixed",
            RtoChoice::Adaptive => "adaptive",
        }
    }
}

/// The congestion controller of a windowed mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CcKind {
    /// The window alone limits what is in flight.
    #[default]
    None,
    /// Slow start, congestion avoidance; any loss → cwnd = 1 MSS.
    Tahoe,
    /// Tahoe plus fast recovery (NewReno's partial ACKs).
    Reno,
    /// RFC 9438's cubic window growth, with Reno's recovery.
    Cubic,
}

impl CcKind {
    pub const NAMES: [&'static str; 4] = ["none", "tahoe", "reno", "cubic"];

    pub fn name(self) -> &'static str {
        match self {
            CcKind::None => "none",
            CcKind::Tahoe => "tahoe",
            CcKind::Reno => "reno",
            CcKind::Cubic => "cubic",
        }
    }
}

/// Parses one of `names` into the value at the same place in `values`.
fn parse<T: Copy>(what: &str, s: &str, names: &[&str], values: &[T]) -> Result<T, String> {
    names
        .iter()
        .position(|n| *n == s)
        .map(|i| values[i])
        .ok_or_else(|| format!("unknown {what} {s:?} (expected {})", names.join(", ")))
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = match s {
            "sw" | "stop-wait" => "stop-and-wait",
            "gbn" => "go-back-n",
            "sr" => "selective-repeat",
            other => other,
        };
        parse(
            "mode",
            s,
            &Mode::NAMES,
            &[Mode::StopAndWait, Mode::GoBackN, Mode::SelectiveRepeat],
        )
    }
}

impl FromStr for RtoChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(
            "rto",
            s,
            &["fixed", "adaptive"],
            &[RtoChoice::Fixed, RtoChoice::Adaptive],
        )
    }
}

impl FromStr for CcKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(
            "congestion controller",
            s,
            &CcKind::NAMES,
            &[CcKind::None, CcKind::Tahoe, CcKind::Reno, CcKind::Cubic],
        )
    }
}

macro_rules! display_by_name {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    )*};
}
display_by_name!(Mode, RtoChoice, CcKind);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_short_forms_are_taken() {
        for name in Mode::NAMES {
            assert_eq!(name.parse::<Mode>().unwrap().name(), name);
        }
        for name in CcKind::NAMES {
            assert_eq!(name.parse::<CcKind>().unwrap().to_string(), name);
        }
        assert_eq!("sr".parse::<Mode>(), Ok(Mode::SelectiveRepeat));
        assert_eq!("gbn".parse::<Mode>(), Ok(Mode::GoBackN));
        assert_eq!("adaptive".parse::<RtoChoice>(), Ok(RtoChoice::Adaptive));
        let err = "vegas".parse::<CcKind>().unwrap_err();
        assert!(err.contains("none, tahoe, reno, cubic"), "{err}");
    }
}
