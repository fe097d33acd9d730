//! What a batch holds, in 64 bits (spec: lottery.md, "Durability and
//! exactly-once"; hostile input: a resent batch is the same batch only if it
//! holds the same bets at the same places of the agency's list).
//!
//! A bet's digest is XXH3-64 of its place in the agency's list (u64 LE) and
//! its five fields, each followed by a NUL (no field holds one), the number
//! as u16 LE. A range's digest is the wrapping sum of its bets' digests, so
//! it does not depend on how the range was cut into batches: the digest of
//! bets 0..100 is the same whether they came as one batch of 100 or two of
//! 50. That is what lets a client that restarts with another batch size check
//! the server's prefix against its own data (see `RESUME` in
//! docs/protocols/lottery.md). XXH3 is not a cryptographic hash: it tells
//! mistakes apart (another data set, another agency's bets), not forgeries.

use xxhash_rust::xxh3::Xxh3;

use crate::bet::Bet;

/// The digest of `bet` at place `index` of its agency's list.
pub fn bet_digest(index: u64, bet: &Bet) -> u64 {
    let mut h = Xxh3::new();
    h.update(&index.to_le_bytes());
    for field in [&bet.nombre, &bet.apellido, &bet.documento, &bet.nacimiento] {
        h.update(field.as_bytes());
        h.update(&[0]);
    }
    h.update(&bet.numero.to_le_bytes());
    h.digest()
}

/// The digest of `bets`, the first of which is at place `first`.
pub fn range_digest(first: u64, bets: &[Bet]) -> u64 {
    bets.iter()
        .zip(first..)
        .fold(0u64, |acc, (b, i)| acc.wrapping_add(bet_digest(i, b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bets(n: usize) -> Vec<Bet> {
        (0..n)
            .map(|i| Bet {
                nombre: "Ana".into(),
                apellido: "Pérez".into(),
                documento: format!("{i:08}"),
                nacimiento: "1990-01-01".into(),
                numero: (i % 10_000) as u16,
            })
            .collect()
    }

    #[test]
    fn a_range_digest_does_not_depend_on_how_it_was_cut() {
        let b = bets(200);
        let whole = range_digest(0, &b);
        let halves = range_digest(0, &b[..50]).wrapping_add(range_digest(50, &b[50..]));
        let odd = range_digest(0, &b[..7])
            .wrapping_add(range_digest(7, &b[7..133]))
            .wrapping_add(range_digest(133, &b[133..]));
        assert_eq!(whole, halves);
        assert_eq!(whole, odd);
        assert_eq!(range_digest(9, &[]), 0);
    }

    #[test]
    fn place_order_and_every_field_count() {
        let b = bets(3);
        let d = range_digest(0, &b);
        assert_ne!(d, range_digest(1, &b), "the same bets at other places");
        let swapped = vec![b[1].clone(), b[0].clone(), b[2].clone()];
        assert_ne!(
            d,
            range_digest(0, &swapped),
            "the same bets in another order"
        );
        for change in 0..5 {
            let mut c = b.clone();
            match change {
                0 => c[1].nombre.push('x'),
                1 => c[1].apellido.push('x'),
                2 => c[1].documento.push('1'),
                3 => c[1].nacimiento = "1990-01-02".into(),
                _ => c[1].numero += 1,
            }
            assert_ne!(d, range_digest(0, &c), "field {change}");
        }
        // Field boundaries are part of the digest: "ab"+"c" is not "a"+"bc".
        let mut x = b[0].clone();
        x.nombre = "ab".into();
        x.apellido = "c".into();
        let mut y = b[0].clone();
        y.nombre = "a".into();
        y.apellido = "bc".into();
        assert_ne!(bet_digest(0, &x), bet_digest(0, &y));
    }
}
