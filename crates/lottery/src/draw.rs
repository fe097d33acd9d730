//! The draw (spec: lottery.md, "The domain"): it runs once every expected agency
//! has announced its last batch; before that nobody learns anything about
//! winners. Each agency then gets the documentos of its own winning bets only.
//!
//! [`Draw`] holds who is done and publishes the winners through a watch channel,
//! so a winners request that arrives early simply waits for it.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Winners' documentos per agency, in storage order.
pub type Winners = HashMap<u8, Vec<String>>;

/// Who has finished, and the winners once drawn.
#[derive(Debug)]
pub struct Draw {
    expected: usize,
    done: Mutex<BTreeSet<u8>>,
    result: watch::Sender<Option<Arc<Winners>>>,
    /// Winners queries waiting for the draw right now.
    waiting: AtomicUsize,
}

/// Counts one waiting query for as long as it waits (also when it is dropped
/// half-way, by a timeout or a closed connection).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Draw {
    /// A draw that waits for `expected` agencies.
    pub fn new(expected: usize) -> Self {
        Self {
            expected: expected.max(1),
            done: Mutex::new(BTreeSet::new()),
            result: watch::channel(None).0,
            waiting: AtomicUsize::new(0),
        }
    }

    /// Records that `agency` sent its last batch. Returns true when this makes
    /// the draw due (exactly once: for the agency that completes the set).
    pub fn agency_done(&self, agency: u8) -> bool {
        let mut done = self
            .done
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let was_due = done.len() >= self.expected;
        done.insert(agency);
        !was_due && done.len() >= self.expected
    }

    /// Agencies done so far.
    pub fn done_count(&self) -> usize {
        self.done
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Agencies the draw waits for.
    pub fn expected(&self) -> usize {
        self.expected
    }

    /// Publishes the winners: every waiting and future query is answered.
    pub fn publish(&self, winners: Winners) {
        self.result.send_replace(Some(Arc::new(winners)));
    }

    /// The winners, if drawn.
    pub fn winners(&self) -> Option<Arc<Winners>> {
        self.result.borrow().clone()
    }

    /// Winners queries waiting for the draw at this moment.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Waits for the draw and returns `agency`'s winners (none if it had none).
    pub async fn winners_of(&self, agency: u8) -> Vec<String> {
        let mut rx = self.result.subscribe();
        let result = {
            let _counted = Waiting::new(&self.waiting);
            rx.wait_for(Option::is_some).await
        };
        match result {
            Ok(w) => w
                .as_ref()
                .and_then(|w| w.get(&agency).cloned())
                .unwrap_or_default(),
            // The sender lives as long as `self`; this cannot happen while we hold it.
            Err(_) => Vec::new(),
        }
    }
}

/// Groups winning bets `(agency, documento)` by agency, keeping their order.
pub fn group_winners(rows: impl IntoIterator<Item = (u8, String)>) -> Winners {
    let mut w = Winners::new();
    for (agency, documento) in rows {
        w.entry(agency).or_default().push(documento);
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_exactly_once_when_the_last_expected_agency_is_done() {
        let d = Draw::new(3);
        assert!(!d.agency_done(1));
        assert!(!d.agency_done(1), "the same agency twice counts once");
        assert!(!d.agency_done(2));
        assert!(d.agency_done(3));
        assert!(!d.agency_done(4));
        assert!(!d.agency_done(3));
    }

    #[tokio::test]
    async fn winners_wait_for_the_draw_and_are_per_agency() {
        let d = Arc::new(Draw::new(2));
        let waiter = tokio::spawn({
            let d = d.clone();
            async move { d.winners_of(1).await }
        });
        while d.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        assert!(
            !waiter.is_finished(),
            "nobody learns winners before the draw"
        );
        d.publish(group_winners([
            (1, "111".into()),
            (2, "222".into()),
            (1, "111".into()),
        ]));
        assert_eq!(
            waiter.await.unwrap(),
            vec!["111".to_string(), "111".to_string()]
        );
        assert_eq!(d.winners_of(2).await, vec!["222".to_string()]);
        assert!(d.winners_of(5).await.is_empty());
        assert_eq!(d.waiting(), 0, "answered queries no longer count");
    }
}
