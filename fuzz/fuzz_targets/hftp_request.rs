//! The HFTP request parser on arbitrary bytes, whole and in pieces: never
//! panics, and the pieces do not change the statuses and commands decided.
#![no_main]

use hftp::proto::parse;
use hftp::request::RequestSink;
use libfuzzer_sys::fuzz_target;
use netkit::LineReader;

fn decide(chunks: &[&[u8]]) -> Vec<String> {
    let mut r = LineReader::with_sink(RequestSink::default());
    let mut out = Vec::new();
    for c in chunks {
        r.feed(c);
        while let Some(line) = r.next_line() {
            match line {
                Ok(l) => out.push(format!("{:?}", parse(&l))),
                Err(e) => {
                    out.push(e.to_string());
                    return out;
                }
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let pieces: Vec<&[u8]> = data.chunks(5).collect();
    assert_eq!(decide(&[data]), decide(&pieces));
});
