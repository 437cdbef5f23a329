//! The expiry index: a min-heap of `(expires_at_ms, hold counter)` over the live holds.
//!
//! Holds with the same TTL arrive in time order, so a push usually lands at the bottom of
//! the heap and costs O(1). A confirmed or released hold leaves its entry behind (a stale
//! entry, as does an extended one for its old time); [`ExpiryQueue::pop_stale`] drops stale entries from the top after each apply, so
//! the top is always a live hold and [`ExpiryQueue::first`] is the next expiry. Stale
//! entries below the top cost 16 bytes each until their time comes.
//!
//! [`ExpiryQueue::earliest`] lists the `max` earliest live entries in order without
//! changing the heap: a best-first walk of the implicit tree, which visits only entries
//! no later than the ones it returns (plus the stale ones among them).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// One entry: when the hold expires, and its counter.
pub type Entry = (u64, u32);

/// A binary min-heap on a `Vec`, laid out as an implicit tree (children of `i` at
/// `2i + 1` and `2i + 2`), which [`ExpiryQueue::earliest`] relies on.
#[derive(Clone, Debug, Default)]
pub struct ExpiryQueue {
    /// In chunks, so that growing past a power of two moves nothing (see `chunked.rs`).
    heap: crate::chunked::Chunked<Entry>,
}

impl ExpiryQueue {
    /// Adds an entry.
    pub fn push(&mut self, entry: Entry) {
        self.heap.push(entry);
        let mut i = self.heap.len() - 1;
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap[parent] <= entry {
                break;
            }
            self.heap[i] = self.heap[parent];
            i = parent;
        }
        self.heap[i] = entry;
    }

    /// The earliest entry (live, if [`ExpiryQueue::pop_stale`] ran after the last change).
    pub fn first(&self) -> Option<Entry> {
        self.heap.first().copied()
    }

    /// Drops entries from the top while `is_stale` says so.
    pub fn pop_stale(&mut self, mut is_stale: impl FnMut(Entry) -> bool) {
        while let Some(&entry) = self.heap.first() {
            if !is_stale(entry) {
                break;
            }
            self.pop();
        }
    }

    fn pop(&mut self) {
        let last = self.heap.pop().expect("pop of a non-empty heap");
        if self.heap.is_empty() {
            return;
        }
        let len = self.heap.len();
        let mut i = 0;
        loop {
            let left = 2 * i + 1;
            if left >= len {
                break;
            }
            let right = left + 1;
            let child = if right < len && self.heap[right] < self.heap[left] {
                right
            } else {
                left
            };
            if last <= self.heap[child] {
                break;
            }
            self.heap[i] = self.heap[child];
            i = child;
        }
        self.heap[i] = last;
    }

    /// Up to `max` live entries with `expires_at <= now_ms`, earliest first.
    pub fn earliest(
        &self,
        now_ms: u64,
        max: usize,
        is_stale: impl Fn(Entry) -> bool,
    ) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut frontier = BinaryHeap::new();
        if let Some(&root) = self.heap.first() {
            frontier.push(Reverse((root, 0usize)));
        }
        while let Some(Reverse((entry, i))) = frontier.pop() {
            if out.len() >= max || entry.0 > now_ms {
                break;
            }
            // The same entry twice (a hold extended back to an earlier time) counts once.
            if !is_stale(entry) && !out.contains(&entry) {
                out.push(entry);
            }
            for child in [2 * i + 1, 2 * i + 2] {
                if let Some(&e) = self.heap.get(child) {
                    frontier.push(Reverse((e, child)));
                }
            }
        }
        out
    }

    /// Every entry, in no particular order (for invariant checks).
    pub fn entries(&self) -> Vec<Entry> {
        self.heap.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_lists_due_live_entries_in_order() {
        let mut q = ExpiryQueue::default();
        for (i, at) in [50u64, 10, 40, 10, 30, 20, 60, 5].iter().enumerate() {
            q.push((*at, i as u32));
        }
        assert_eq!(q.first(), Some((5, 7)));
        let stale = |(_, c): Entry| c == 1;
        assert_eq!(
            q.earliest(40, 10, stale),
            vec![(5, 7), (10, 3), (20, 5), (30, 4), (40, 2)]
        );
        assert_eq!(q.earliest(40, 2, stale), vec![(5, 7), (10, 3)]);
        q.pop_stale(|(_, c)| c == 7 || c == 3);
        assert_eq!(
            q.first(),
            Some((10, 1)),
            "a stale entry below the top stays"
        );
        q.pop_stale(|(_, c)| c == 1);
        assert_eq!(q.first(), Some((10, 3)));
        let mut order = Vec::new();
        while let Some(e) = q.first() {
            order.push(e);
            q.pop();
        }
        assert_eq!(
            order,
            vec![(10, 3), (20, 5), (30, 4), (40, 2), (50, 0), (60, 6)]
        );
    }
}
