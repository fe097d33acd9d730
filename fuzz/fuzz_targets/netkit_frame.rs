//! The length-prefixed frame check on arbitrary buffers: never panics, never
//! claims more bytes than the buffer holds, never accepts a length over the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netkit::frame::{be_u32_at, check_frame};
use netkit::{Error, Limit};

const LIMIT: Limit = Limit::new("fuzz frame", 8 * 1024);

fuzz_target!(|data: &[u8]| {
    match check_frame::<6>(data, LIMIT, |h| be_u32_at(h, 2)) {
        Ok(Some(span)) => {
            assert!(span.total_len() <= data.len());
            assert!(span.body_len <= LIMIT.max);
        }
        Ok(None) => {}
        Err(Error::TooLong { announced, .. }) => assert!(announced > LIMIT.max as u64),
        Err(e) => panic!("unexpected error {e}"),
    }
});
