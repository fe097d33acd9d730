//! The lottery server's request decoder on arbitrary bytes, fed whole and in
//! pieces: never panics, never buffers past one message, and the pieces do not
//! change what is decoded.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use lottery::proto::{MAX_MESSAGE, ServerCodec};
use tokio_util::codec::Decoder;

fn decode(chunks: &[&[u8]]) -> Vec<String> {
    let mut codec = ServerCodec;
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(item)) => out.push(format!("{item:?}")),
                Ok(None) => break,
                Err(e) => {
                    out.push(format!("error: {e}"));
                    return out;
                }
            }
        }
        assert!(buf.len() < MAX_MESSAGE + 4096, "buffered past one message");
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let whole = decode(&[data]);
    let pieces: Vec<&[u8]> = data.chunks(7).collect();
    assert_eq!(whole, decode(&pieces));
});
