//! The CR LF line reader on arbitrary bytes fed in arbitrary pieces: it never
//! panics, memory stays within the limit, and the pieces do not change the lines.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netkit::{LineReader, Overflow};

fn lines(input: &[u8], cuts: &[usize], limit: usize, overflow: Overflow) -> Vec<Result<(Vec<u8>, usize), String>> {
    let mut r = LineReader::new(limit, overflow);
    let mut out = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        let cut = cut.clamp(start, input.len());
        r.feed(&input[start..cut]);
        start = cut;
        while let Some(l) = r.next_line() {
            let l = l.map(|l| {
                assert!(l.bytes.len() <= limit);
                (l.bytes.to_vec(), l.total_len)
            });
            out.push(l.map_err(|e| e.to_string()));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let limit = usize::from(data[0] % 32) + 1;
    let overflow = if data[1] & 1 == 0 { Overflow::Error } else { Overflow::Truncate };
    let input = &data[2..];
    let cuts: Vec<usize> = input.iter().enumerate().filter(|(_, b)| **b == b'|').map(|(i, _)| i).collect();
    assert_eq!(lines(input, &[], limit, overflow), lines(input, &cuts, limit, overflow));
});
