//! A list of at most three values kept inline: the candidate numbers of the
//! course readings (one per unit of counting still possible: bytes, segments,
//! encoded length). They are worked out for every segment sent and received,
//! so a heap allocation each time would cost more than the arithmetic.

use std::ops::Deref;

/// Units of counting a reading may use: the most candidates there can be.
const CAPACITY: usize = 3;

/// Up to three distinct values, in the order first pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Few<T> {
    items: [T; CAPACITY],
    len: usize,
}

impl<T: Copy + PartialEq + Default> Few<T> {
    /// One value.
    pub fn one(v: T) -> Few<T> {
        let mut few = Few::default();
        few.push_new(v);
        few
    }

    /// Adds `v` unless it is there already (or the list is full, which the
    /// three units never make happen).
    pub fn push_new(&mut self, v: T) {
        if self.len < CAPACITY && !self.contains(&v) {
            self.items[self.len] = v;
            self.len += 1;
        }
    }

    /// Each value mapped, in order (distinct values may map to one).
    #[must_use]
    pub fn map<U: Copy + PartialEq + Default>(&self, f: impl Fn(T) -> U) -> Few<U> {
        let mut out = Few::default();
        for v in self.iter() {
            out.push_new(f(*v));
        }
        out
    }
}

impl<T> Deref for Few<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.items[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::Few;

    #[test]
    fn keeps_distinct_values_in_order_up_to_three() {
        let mut f = Few::one(4u32);
        f.push_new(1);
        f.push_new(4);
        f.push_new(20);
        f.push_new(9);
        assert_eq!(&f[..], [4, 1, 20]);
        assert_eq!(&f.map(|v| v * 2)[..], [8, 2, 40]);
        assert_eq!(&Few::<u32>::default()[..], [] as [u32; 0]);
    }
}
