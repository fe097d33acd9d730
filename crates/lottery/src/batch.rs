//! Packing an agency's bets into messages (spec: lottery.md, "Size limit"): as many
//! whole bets per message as fit in 8 KiB with the header, at most `maxAmount`;
//! every batch but the last holds exactly `maxAmount` bets when they fit.
//!
//! The plan is computed once, before sending, so batch `seq` always names the
//! same bets: that is what makes a retried batch recognisable to the server.

use std::ops::Range;

use crate::Error;
use crate::bet::Bet;
use crate::proto::{BATCH_PREFIX, REQUEST_LIMIT};

/// Splits `bets` into consecutive ranges, each one message. With `seq_prefix`
/// the `SEND_BATCH` prefix counts against the budget. No bets → one empty batch
/// (so an agency with nothing to bet can still say it is done).
pub fn plan(bets: &[Bet], max_amount: usize, seq_prefix: bool) -> Result<Vec<Range<usize>>, Error> {
    let budget = REQUEST_LIMIT.max - if seq_prefix { BATCH_PREFIX } else { 0 };
    let max_amount = max_amount.max(1);
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut len = 0;
    for (i, bet) in bets.iter().enumerate() {
        let bet_len = bet.encoded_len();
        if bet_len > budget {
            return Err(Error::BetTooLong {
                index: i,
                len: bet_len,
                max: budget,
            });
        }
        let count = i - start;
        let extra = bet_len + usize::from(count > 0);
        if count == max_amount || len + extra > budget {
            ranges.push(start..i);
            start = i;
            len = bet_len;
        } else {
            len += extra;
        }
    }
    ranges.push(start..bets.len());
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{MAX_MESSAGE, REQUEST_HEADER, bets_len};

    fn bets(n: usize, name_len: usize) -> Vec<Bet> {
        (0..n)
            .map(|i| Bet {
                nombre: "N".repeat(name_len),
                apellido: "Ñandú".into(),
                documento: format!("{i:08}"),
                nacimiento: "1990-01-01".into(),
                numero: (i % 10_000) as u16,
            })
            .collect()
    }

    #[test]
    fn full_batches_of_max_amount_then_the_rest() {
        let b = bets(250, 5);
        let p = plan(&b, 100, true).unwrap();
        assert_eq!(p, vec![0..100, 100..200, 200..250]);
    }

    #[test]
    fn messages_never_exceed_8_kib() {
        for (n, name) in [(1000, 5), (500, 120), (3, 4000)] {
            let b = bets(n, name);
            let p = plan(&b, 10_000, true).unwrap();
            assert_eq!(p.iter().map(ExactSizeIterator::len).sum::<usize>(), n);
            for r in &p {
                let total = REQUEST_HEADER + BATCH_PREFIX + bets_len(&b[r.clone()]);
                assert!(total <= MAX_MESSAGE, "{total}");
                assert!(!r.is_empty());
            }
            // Greedy: adding the next bet would have overflowed.
            for w in p.windows(2) {
                let grown = w[0].start..w[1].start + 1;
                assert!(REQUEST_HEADER + BATCH_PREFIX + bets_len(&b[grown]) > MAX_MESSAGE);
            }
        }
    }

    #[test]
    fn no_bets_is_one_empty_batch_and_a_giant_bet_is_an_error() {
        assert_eq!(plan(&[], 10, true).unwrap(), vec![0..0]);
        assert!(matches!(
            plan(&bets(1, 9000), 10, false),
            Err(Error::BetTooLong { index: 0, .. })
        ));
    }
}
