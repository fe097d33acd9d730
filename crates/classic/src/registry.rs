//! The connected-clients list (spec: classic.md, common part): safe under
//! concurrency, with unique ids. The originals kept a plain list and drew random
//! 5-digit ids that could collide; here ids keep the 5-digit shape (10000..=99999)
//! but come from a counter that skips ids in use, so two live clients never share
//! one and an id is not reused until 90,000 connections later.

use std::collections::HashMap;
use std::sync::Mutex;

/// First and last id.
pub const FIRST_ID: u32 = 10_000;
/// Last id before wrapping.
pub const LAST_ID: u32 = 99_999;

/// Live clients, each with a value (a send queue, or nothing).
#[derive(Debug)]
pub struct Registry<T> {
    inner: Mutex<Inner<T>>,
}

#[derive(Debug)]
struct Inner<T> {
    next: u32,
    live: HashMap<u32, T>,
}

impl<T: Clone> Default for Registry<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone> Registry<T> {
    /// An empty list.
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                next: FIRST_ID,
                live: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a client; returns its id and the new count, or `None` if all 90,000
    /// ids are in use.
    pub fn join(&self, value: T) -> Option<(u32, usize)> {
        let mut inner = self.lock();
        let span = (LAST_ID - FIRST_ID + 1) as usize;
        if inner.live.len() >= span {
            return None;
        }
        loop {
            let id = inner.next;
            inner.next = if id == LAST_ID { FIRST_ID } else { id + 1 };
            if let std::collections::hash_map::Entry::Vacant(slot) = inner.live.entry(id) {
                slot.insert(value);
                return Some((id, inner.live.len()));
            }
        }
    }

    /// Removes a client; returns the count left, or `None` if it was not there
    /// (already removed by someone else).
    pub fn leave(&self, id: u32) -> Option<usize> {
        let mut inner = self.lock();
        inner.live.remove(&id).map(|_| inner.live.len())
    }

    /// Clients connected now.
    pub fn count(&self) -> usize {
        self.lock().live.len()
    }

    /// Calls `f` with every live client, under the lock: `f` must be short
    /// and must not call back into the registry. Copying nothing, it is the
    /// way to reach every client many times a second (a broadcast).
    pub fn each(&self, mut f: impl FnMut(u32, &T)) {
        for (id, v) in &self.lock().live {
            f(*id, v);
        }
    }

    /// A copy of every live client's value, to send to without holding the lock.
    pub fn snapshot(&self) -> Vec<(u32, T)> {
        self.lock()
            .live
            .iter()
            .map(|(id, v)| (*id, v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    #[test]
    fn each_visits_every_live_client_once() {
        let reg = Registry::new();
        let (a, _) = reg.join("a").unwrap();
        let (b, _) = reg.join("b").unwrap();
        let (c, _) = reg.join("c").unwrap();
        reg.leave(b);
        let mut seen = Vec::new();
        reg.each(|id, v| seen.push((id, *v)));
        seen.sort_unstable();
        assert_eq!(seen, vec![(a, "a"), (c, "c")]);
    }

    #[test]
    fn ids_are_unique_over_10000_connections() {
        let r = Registry::<()>::new();
        let mut seen = HashSet::new();
        for i in 0..10_000 {
            let (id, n) = r.join(()).unwrap();
            assert!((FIRST_ID..=LAST_ID).contains(&id));
            assert!(seen.insert(id), "id {id} reused");
            assert_eq!(n, 1);
            assert_eq!(r.leave(id), Some(0), "connection {i}");
        }
    }

    #[test]
    fn wrapping_skips_live_ids() {
        let r = Registry::<()>::new();
        let (keep, _) = r.join(()).unwrap();
        for _ in 0..(LAST_ID - FIRST_ID) {
            let (id, _) = r.join(()).unwrap();
            r.leave(id);
        }
        // The counter has wrapped to FIRST_ID, which is still live: skipped.
        let (id, n) = r.join(()).unwrap();
        assert_ne!(id, keep);
        assert_eq!(n, 2);
        assert_eq!(r.leave(keep), Some(1));
        assert_eq!(r.leave(keep), None, "removing twice is harmless");
    }

    #[test]
    fn concurrent_joins_and_leaves_keep_an_exact_count() {
        let r = Arc::new(Registry::<()>::new());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let r = r.clone();
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    for _ in 0..500 {
                        mine.push(r.join(()).unwrap().0);
                    }
                    for id in mine.iter().step_by(2) {
                        r.leave(*id).unwrap();
                    }
                    mine
                })
            })
            .collect();
        let all: Vec<u32> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        assert_eq!(
            all.iter().collect::<HashSet<_>>().len(),
            4000,
            "no id handed out twice"
        );
        assert_eq!(r.count(), 2000);
    }
}
