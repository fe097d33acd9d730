//! What a command says besides its output: progress bars on long transfers
//! and one-line summaries on stderr, both silenced by `-q/--quiet` (errors
//! and the command's own output are not).

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressStyle};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Set once from `-q/--quiet`.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether `-q/--quiet` was given.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// A progress bar of `total` bytes on stderr: hidden when quiet, when stderr
/// is not a terminal, or for less than 64 KiB (over before it could be read).
pub fn bar(total: u64) -> ProgressBar {
    if quiet() || !std::io::stderr().is_terminal() || total < 64 * 1024 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

/// `note!(...)`: an informational line on stderr, unless quiet.
macro_rules! note {
    ($($arg:tt)*) => {
        if !$crate::progress::quiet() {
            eprintln!($($arg)*);
        }
    };
}
