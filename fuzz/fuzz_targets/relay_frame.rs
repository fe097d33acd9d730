//! The relay frame decoder on arbitrary bytes, whole and in pieces: never
//! panics, same results; every decoded message encodes back to its frame.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use relay::proto::Codec;
use tokio_util::codec::Decoder;

fn decode(chunks: &[&[u8]]) -> Vec<String> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for c in chunks {
        buf.extend_from_slice(c);
        loop {
            match Codec.decode(&mut buf) {
                Ok(Some(m)) => {
                    let mut again = BytesMut::new();
                    m.encode(&mut again);
                    let back = Codec.decode(&mut again).expect("own frame decodes");
                    assert_eq!(back.as_ref(), Some(&m));
                    out.push(format!("{m:?}"));
                }
                Ok(None) => break,
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
    let pieces: Vec<&[u8]> = data.chunks(3).collect();
    assert_eq!(decode(&[data]), decode(&pieces));
});
