//! The Python reference peers (`course_peer.py`): where the script is, and
//! whether `python3` is there to run it (tests that need it skip, with a
//! note, without it).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The reference peer script.
pub fn course_peer() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/course_peer.py")
}

/// Whether `python3` runs here; says so when it does not.
pub fn have_python() -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("no python3: skipped");
    }
    ok
}
