//! Sequence numbers: a 32-bit newtype that wraps and compares modulo 2^32
//! (RFC 793 §3.3 arithmetic), so a connection whose counter passes `u32::MAX`
//! keeps ordering segments correctly.

use std::fmt;

/// A position in a byte stream's sequence space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seq(pub u32);

impl Seq {
    /// This number advanced by `n` (wrapping).
    #[must_use]
    pub fn plus(self, n: usize) -> Seq {
        Seq(self.0.wrapping_add(n as u32))
    }

    /// This number moved back by `n` (wrapping).
    #[must_use]
    pub fn minus(self, n: usize) -> Seq {
        Seq(self.0.wrapping_sub(n as u32))
    }

    /// Signed distance from `other` to `self`: positive when `self` is ahead.
    pub fn since(self, other: Seq) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// `self` comes strictly before `other` in the wrapping order.
    pub fn before(self, other: Seq) -> bool {
        self.since(other) < 0
    }

    /// `self` comes strictly after `other` in the wrapping order.
    pub fn after(self, other: Seq) -> bool {
        self.since(other) > 0
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::Seq;

    #[test]
    fn ordering_survives_the_wrap() {
        let near_end = Seq(u32::MAX - 2);
        let wrapped = near_end.plus(5);
        assert_eq!(wrapped, Seq(2));
        assert!(near_end.before(wrapped));
        assert!(wrapped.after(near_end));
        assert_eq!(wrapped.since(near_end), 5);
        assert_eq!(near_end.since(wrapped), -5);
        assert_eq!(wrapped.minus(5), near_end);
    }

    #[test]
    fn equal_numbers_are_neither_before_nor_after() {
        assert!(!Seq(7).before(Seq(7)));
        assert!(!Seq(7).after(Seq(7)));
    }
}
