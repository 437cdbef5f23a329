//! The free-run summary of a seated section, kept up to date by every decision that
//! changes a seat, so best available looks only at rows that can fit: a bitmap of free
//! seats (1 bit a seat), each row's free count and longest free run, and a max-tree over
//! the rows' longest runs that finds the first row with a run of at least `qty` in
//! O(log rows). Derived state: rebuilt from the seats on restore, never serialized.

use crate::picker;
use crate::state::Row;

/// The summary of one seated section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeatSummary {
    /// Bit `i` set: seat `i` is free.
    free: Vec<u64>,
    /// Each row's first seat index and seat count.
    rows: Vec<(u32, u32)>,
    /// Free seats per row.
    row_free: Vec<u32>,
    /// Longest free run per row.
    max_run: Vec<u32>,
    /// Max-tree over `max_run`: leaves from `leaves`, node `i` has children `2i`, `2i+1`.
    tree: Vec<u32>,
    leaves: usize,
}

impl SeatSummary {
    /// The summary of rows whose seats are free where `is_free` says so.
    pub fn new(rows: &[Row], is_free: impl Fn(u32) -> bool) -> Self {
        let seats: u32 = rows.iter().map(|r| r.count).sum();
        let leaves = rows.len().next_power_of_two();
        let mut summary = SeatSummary {
            free: vec![0; seats.div_ceil(64) as usize],
            rows: rows.iter().map(|r| (r.start, r.count)).collect(),
            row_free: vec![0; rows.len()],
            max_run: vec![0; rows.len()],
            tree: vec![0; 2 * leaves],
            leaves,
        };
        for (r, row) in rows.iter().enumerate() {
            for seat in row.start..row.start + row.count {
                if is_free(seat) {
                    summary.free[(seat / 64) as usize] |= 1 << (seat % 64);
                    summary.row_free[r] += 1;
                }
            }
            summary.refresh(r);
        }
        summary
    }

    /// The row of a seat index.
    pub fn row_of(&self, seat: u32) -> usize {
        self.rows.partition_point(|&(start, _)| start <= seat) - 1
    }

    /// Marks seats free or taken and refreshes their rows.
    pub fn set(&mut self, seats: impl IntoIterator<Item = u32>, free: bool) {
        let mut touched: smallvec::SmallVec<[usize; 4]> = smallvec::SmallVec::new();
        for seat in seats {
            let (word, bit) = ((seat / 64) as usize, 1u64 << (seat % 64));
            let was = self.free[word] & bit != 0;
            if was == free {
                continue;
            }
            self.free[word] ^= bit;
            let r = self.row_of(seat);
            if free {
                self.row_free[r] += 1;
            } else {
                self.row_free[r] -= 1;
            }
            if !touched.contains(&r) {
                touched.push(r);
            }
        }
        for r in touched {
            self.refresh(r);
        }
    }

    fn refresh(&mut self, r: usize) {
        let longest = self.runs(r).iter().map(|&(_, len)| len).max().unwrap_or(0);
        self.max_run[r] = longest;
        let mut node = self.leaves + r;
        self.tree[node] = longest;
        while node > 1 {
            node /= 2;
            self.tree[node] = self.tree[2 * node].max(self.tree[2 * node + 1]);
        }
    }

    /// Index of the first bit at or after `from`, before `end`, that is `set`; else `end`.
    fn next_bit(&self, from: u32, end: u32, set: bool) -> u32 {
        let mut i = from;
        while i < end {
            let w = i / 64;
            let mut word = self.free[w as usize];
            if !set {
                word = !word;
            }
            word &= !0u64 << (i % 64);
            if word != 0 {
                return (w * 64 + word.trailing_zeros()).min(end);
            }
            i = (w + 1) * 64;
        }
        end
    }

    /// The free runs of row `r`, `(first seat number from 1, length)`, in order.
    pub fn runs(&self, r: usize) -> Vec<(u32, u32)> {
        let (start, count) = self.rows[r];
        let end = start + count;
        let mut out = Vec::new();
        let mut i = start;
        while i < end {
            let a = self.next_bit(i, end, true);
            if a >= end {
                break;
            }
            let b = self.next_bit(a, end, false);
            out.push((a - start + 1, b - a));
            i = b;
        }
        out
    }

    /// The free seat numbers (from 1) of row `r`, ascending.
    pub fn free_numbers(&self, r: usize) -> Vec<u32> {
        self.runs(r)
            .into_iter()
            .flat_map(|(a, len)| a..a + len)
            .collect()
    }

    /// The first row at or after `from` with a free run of at least `qty`.
    fn first_fit(&self, from: usize, qty: u32) -> Option<usize> {
        self.find(1, 0, self.leaves, from, qty)
    }

    fn find(&self, node: usize, lo: usize, hi: usize, from: usize, qty: u32) -> Option<usize> {
        if hi <= from || self.tree[node] < qty {
            return None;
        }
        if hi - lo == 1 {
            return Some(lo);
        }
        let mid = (lo + hi) / 2;
        self.find(2 * node, lo, mid, from, qty)
            .or_else(|| self.find(2 * node + 1, mid, hi, from, qty))
    }

    /// Best available: `qty` seat indexes by the contract's steps (step 3 only with
    /// `allow_split`), or `None`. Reads only rows that can fit (steps 1 and 2), or the
    /// per-row free counts and then the chosen rows (step 3).
    pub fn pick(&self, qty: u32, allow_split: bool) -> Option<Vec<u32>> {
        for no_orphan in [true, false] {
            let mut from = 0;
            while let Some(r) = self.first_fit(from, qty) {
                let (start, n) = self.rows[r];
                if let Some(x) = picker::best_block(n, &self.runs(r), qty, no_orphan) {
                    return Some((x..x + qty).map(|m| start + m - 1).collect());
                }
                from = r + 1;
            }
        }
        if !allow_split {
            return None;
        }
        let plan = picker::split_rows(&self.row_free, qty)?;
        let mut out = Vec::with_capacity(qty as usize);
        for (r, take) in plan {
            let (start, n) = self.rows[r];
            let numbers = picker::nearest_middle(n, &self.free_numbers(r), take);
            out.extend(numbers.into_iter().map(|m| start + m - 1));
        }
        Some(out)
    }
}

#[cfg(test)]
impl SeatSummary {
    /// Heap bytes it takes.
    pub fn heap_bytes(&self) -> usize {
        self.free.capacity() * 8
            + self.rows.capacity() * 8
            + (self.row_free.capacity() + self.max_run.capacity() + self.tree.capacity()) * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: u32, per_row: u32) -> Vec<Row> {
        (0..n)
            .map(|r| Row {
                label: format!("R{r}"),
                count: per_row,
                start: r * per_row,
            })
            .collect()
    }

    #[test]
    fn the_summary_of_100000_seats_takes_under_2_bytes_a_seat() {
        for (n, per_row) in [(1_000, 100), (200, 500), (2_000, 50)] {
            let summary = SeatSummary::new(&rows(n, per_row), |_| true);
            let seats = (n * per_row) as usize;
            assert!(
                summary.heap_bytes() <= 2 * seats,
                "{} bytes for {seats} seats",
                summary.heap_bytes()
            );
        }
    }

    #[test]
    fn picks_follow_the_free_runs_as_seats_change() {
        let mut summary = SeatSummary::new(&rows(2, 6), |_| true);
        // 2-5 would strand seat 1: the block goes to an end (the lower one on a tie).
        assert_eq!(summary.pick(4, false), Some(vec![0, 1, 2, 3]));
        summary.set([1, 4], false);
        // Row 0 has runs of 1, 2, 1: no 3 together there; in row 1 the centred blocks
        // would strand a seat, so the block goes to an end.
        assert_eq!(summary.pick(3, false), Some(vec![6, 7, 8]));
        summary.set([6, 7, 8, 9, 10, 11], false);
        assert_eq!(summary.pick(3, false), None);
        assert_eq!(summary.pick(3, true), Some(vec![0, 2, 3]));
        summary.set([1, 4], true);
        assert_eq!(summary.pick(6, false), Some(vec![0, 1, 2, 3, 4, 5]));
    }
}
