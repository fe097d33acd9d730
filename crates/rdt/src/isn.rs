//! Initial sequence numbers (spec "Socket API"): random in 0..=100 in the
//! course format, as the seed asks, and a full random 32-bit value in binary.
//! The caller owns the random source, so the core stays deterministic.

use rand::Rng;

use crate::seq::Seq;
use crate::wire::Format;

pub fn initial(format: Format, rng: &mut impl Rng) -> Seq {
    match format {
        Format::Course => Seq(rng.random_range(0..=100)),
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
        assert!(all.iter().all(|&n| n <= 100));
        assert!(
            all.contains(&0) && all.contains(&100),
            "both ends of 0..=100 occur"
        );
        assert!((0..200).any(|_| initial(Format::Binary, &mut rng).0 > 100));
    }
}
