//! The original chat's frame reader on arbitrary bytes, whole and in pieces:
//! never panics, and (the stream read to its end with a final quiet) the same
//! frames or the same error either way; frames without a NUL in their payload
//! encode back to the bytes they came from.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use relay::legacy::frame::{Frame, Reader, encode};

fn read(chunks: &[&[u8]]) -> Vec<String> {
    let mut r = Reader::new();
    let mut out = Vec::new();
    for c in chunks {
        r.feed(c);
        loop {
            match r.next(false) {
                Ok(Some(f)) => {
                    let mut again = BytesMut::new();
                    match &f {
                        Frame::Ack(n) => encode(*n, true, "", &mut again),
                        Frame::Data { number, payload } => encode(*number, false, payload, &mut again),
                    }
                    let mut back = Reader::new();
                    back.feed(&again);
                    assert_eq!(back.next(true).expect("own frame reads"), Some(f.clone()));
                    out.push(format!("{f:?}"));
                }
                Ok(None) => break,
                Err(e) => {
                    out.push(e.to_string());
                    return out;
                }
            }
        }
    }
    loop {
        match r.next(true) {
            Ok(Some(f)) => out.push(format!("{f:?}")),
            Ok(None) => break,
            Err(e) => {
                out.push(e.to_string());
                break;
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let pieces: Vec<&[u8]> = data.chunks(5).collect();
    assert_eq!(read(&[data]), read(&pieces));
});
