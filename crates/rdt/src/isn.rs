//! Initial sequence numbers (spec "Socket API"): random between 0 and 100 in
//! the course format, as the seed asks, and a full random 32-bit value in
//! binary. The caller owns the random source, so the core stays deterministic.
//!
//! Course numbers start at 10, not 0: with every number at least two digits,
//! a data header (`0|||0|||0|||N|||`) is at least 17 bytes, so the ACK a
//! whole-encoded-segment reading sends for one segment (seq + header + len)
//! can never equal the byte-counting ACK of the next 16-byte segment. Such a
//! number is doubted until it comes twice (`conn/send.rs`), which costs a
//! timeout, and never clears with a peer that ignores a copy it already has.

use rand::Rng;

use crate::seq::Seq;
use crate::wire::Format;

pub fn initial(format: Format, rng: &mut impl Rng) -> Seq {
    match format {
        Format::Course => Seq(rng.random_range(10..=100)),
        Format::Binary => Seq(rng.random()),
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn course_numbers_stay_within_the_seeds_range() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let all: Vec<u32> = (0..2_000)
            .map(|_| initial(Format::Course, &mut rng).0)
            .collect();
        assert!(all.iter().all(|&n| (10..=100).contains(&n)));
        assert!(
            all.contains(&10) && all.contains(&100),
            "both ends of 10..=100 occur"
        );
        assert!((0..200).any(|_| initial(Format::Binary, &mut rng).0 > 100));
    }
}
