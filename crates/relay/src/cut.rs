//! How one client's connection is ended, by whichever part ends it first: the
//! hub (the client is too slow), the writer (the client stopped reading), the
//! reader (it left), the original chat's resender (it stopped acknowledging).
//! One token every part of the session waits on, and one reason: the first
//! given is kept, and it is what the client is told and the leave says.

use std::sync::{Arc, Mutex};

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// See the module docs. Clones share the token and the reason.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cut {
    token: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

impl Cut {
    /// Ends the connection without saying why (it left, or another part ended).
    pub(crate) fn end(&self) {
        self.token.cancel();
    }

    /// Ends the connection, saying why unless a reason was given already.
    pub(crate) fn end_because(&self, reason: impl FnOnce() -> String) {
        self.give_reason(reason);
        self.token.cancel();
    }

    /// Records why the connection is ending, unless a reason was given
    /// already; the caller ends it.
    pub(crate) fn give_reason(&self, reason: impl FnOnce() -> String) {
        if let Ok(mut r) = self.reason.lock() {
            r.get_or_insert_with(reason);
        }
    }

    /// Resolves once the connection is ended.
    pub(crate) fn ended(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// The first reason given, if any.
    pub(crate) fn reason(&self) -> Option<String> {
        self.reason.lock().ok().and_then(|r| r.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::Cut;

    #[test]
    fn the_first_reason_wins_and_every_clone_sees_the_end() {
        let cut = Cut::default();
        let other = cut.clone();
        assert_eq!(cut.reason(), None);
        other.give_reason(|| "too slow".into());
        cut.end_because(|| "stalled".into());
        assert_eq!(other.reason().as_deref(), Some("too slow"));
        assert!(other.token.is_cancelled());
    }

    #[test]
    fn ending_without_a_reason_leaves_none() {
        let cut = Cut::default();
        cut.end();
        assert!(cut.token.is_cancelled());
        assert_eq!(cut.reason(), None);
    }
}
