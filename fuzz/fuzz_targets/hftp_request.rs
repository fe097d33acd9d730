//! The HFTP request parser on arbitrary bytes, whole and in pieces: never
//! panics, and the pieces do not change the statuses and commands decided.
//! The pieces path hands every line back to the sink (as the server does), so
//! recycled buffers must not change a decision either.
#![no_main]

use hftp::proto::parse;
use hftp::request::RequestSink;
use libfuzzer_sys::fuzz_target;
use netkit::LineReader;

fn decide(chunks: &[&[u8]], recycle: bool) -> Vec<String> {
    let mut r = LineReader::with_sink(RequestSink::default());
    let mut out = Vec::new();
    for c in chunks {
        r.feed(c);
        while let Some(line) = r.next_line() {
            match line {
                Ok(l) => {
                    out.push(format!("{:?}", parse(&l)));
                    if recycle {
                        r.sink_mut().recycle(l);
                    }
                }
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
    assert_eq!(decide(&[data], false), decide(&pieces, true));
});
