//! impair's command-line value parsers on arbitrary text: an error, never a panic.
#![no_main]

use impair::units::{Bytes, Dur, Pattern, Probability, Trigger};
use impair::DirValue;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = s.parse::<DirValue<Dur>>();
    let _ = s.parse::<DirValue<Bytes>>();
    let _ = s.parse::<DirValue<Pattern>>();
    let _ = s.parse::<DirValue<Trigger>>();
    if let Ok(p) = s.parse::<Probability>() {
        assert!((0.0..=1.0).contains(&p.get()));
    }
});
