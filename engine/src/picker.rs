//! Best available: the placement rules of docs/api.md ("Best available") over rows
//! described by their free runs, shared by the seat summary (public holds) and the
//! waiting list's set-aside seats.
//!
//! Seat numbers here are 1-based within a row of `n` seats. Steps 1 and 2 pick `qty`
//! adjacent seats in one row: the first row that has a placement wins, then the block
//! whose middle is nearest the row's middle, then the lower seat number; step 1 only
//! accepts blocks that leave no single free seat between the block and a taken seat or
//! the row's end. Step 3 splits over as few rows as possible (see [`split_rows`]).

/// The best block of `qty` adjacent seats among `runs` (`(first number, length)` of each
/// maximal free run, any order) in a row of `n` seats, as its first seat number; with
/// `no_orphan`, only blocks that leave no free seat alone.
pub fn best_block(n: u32, runs: &[(u32, u32)], qty: u32, no_orphan: bool) -> Option<u32> {
    let mut best: Option<(u64, u32)> = None;
    // Twice the distance between the block's middle and the row's middle.
    let score = |x: u32| (i64::from(2 * x + qty) - 1 - i64::from(n) - 1).unsigned_abs();
    for &(a, len) in runs {
        if len < qty {
            continue;
        }
        let b = a + len - 1;
        let (lo, hi) = (a, b + 1 - qty);
        let valid = |x: u32| !no_orphan || (x - a != 1 && b - (x + qty - 1) != 1);
        // The unconstrained optimum, clamped; with at most two excluded positions, the
        // best valid one is within two of it or at an end of the range.
        let ideal = (i64::from(n) + 2 - i64::from(qty)).div_euclid(2);
        let c = ideal.clamp(i64::from(lo), i64::from(hi));
        let candidates = [c - 2, c - 1, c, c + 1, c + 2, i64::from(lo), i64::from(hi)];
        for x in candidates {
            if x < i64::from(lo) || x > i64::from(hi) {
                continue;
            }
            let x = x as u32;
            if !valid(x) {
                continue;
            }
            let key = (score(x), x);
            if best.is_none_or(|b| key < b) {
                best = Some(key);
            }
        }
    }
    best.map(|(_, x)| x)
}

/// Step 3: how many seats to take from which rows, given each row's free count: the
/// fewest rows that together have `qty` free (the smallest k); among those sets of k
/// rows, the earliest in row order (first row as early as possible, then the second, and
/// so on); each row gives all its free seats but the last, which gives the rest.
/// `None` when the rows have fewer than `qty` free seats in all.
pub fn split_rows(free: &[u32], qty: u32) -> Option<Vec<(usize, u32)>> {
    let total: u64 = free.iter().map(|&f| u64::from(f)).sum();
    if total < u64::from(qty) || qty == 0 {
        return None;
    }
    let mut sorted: Vec<u32> = free.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let mut k = 0;
    let mut sum = 0u64;
    while sum < u64::from(qty) {
        sum += u64::from(sorted[k]);
        k += 1;
    }
    let mut chosen: Vec<(usize, u32)> = Vec::with_capacity(k);
    let mut have = 0u64;
    let mut start = 0;
    for j in 0..k {
        let after = k - j - 1;
        // best[r] = sum of the `after` largest counts among rows r.. (suffix).
        let mut best = vec![0u64; free.len() + 1];
        let mut heap = std::collections::BinaryHeap::new();
        let mut heap_sum = 0u64;
        for r in (start..free.len()).rev() {
            best[r + 1] = heap_sum;
            if after > 0 {
                heap.push(std::cmp::Reverse(free[r]));
                heap_sum += u64::from(free[r]);
                if heap.len() > after {
                    let std::cmp::Reverse(small) = heap.pop().expect("non-empty");
                    heap_sum -= u64::from(small);
                }
            }
        }
        let r = (start..free.len())
            .find(|&r| free[r] > 0 && have + u64::from(free[r]) + best[r + 1] >= u64::from(qty))
            .expect("k rows suffice");
        let take = (u64::from(qty) - have).min(u64::from(free[r])) as u32;
        chosen.push((r, take));
        have += u64::from(take);
        start = r + 1;
    }
    Some(chosen)
}

/// `take` of the free seat numbers `free` (ascending) of a row of `n` seats: those
/// nearest the row's middle, the lower number first; returned ascending.
pub fn nearest_middle(n: u32, free: &[u32], take: u32) -> Vec<u32> {
    let mut by_distance: Vec<u32> = free.to_vec();
    by_distance.sort_by_key(|&m| ((i64::from(2 * m) - i64::from(n) - 1).unsigned_abs(), m));
    by_distance.truncate(take as usize);
    by_distance.sort_unstable();
    by_distance
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_center_and_avoid_orphans() {
        // An empty row of 10: 2 seats → 5-6, 3 seats → 4-6 (lower number on a tie).
        assert_eq!(best_block(10, &[(1, 10)], 2, true), Some(5));
        assert_eq!(best_block(10, &[(1, 10)], 3, true), Some(4));
        // A run of exactly qty + 1 has no orphan-free placement.
        assert_eq!(best_block(10, &[(1, 3)], 2, true), None);
        assert_eq!(best_block(10, &[(1, 3)], 2, false), Some(2));
    }

    #[test]
    fn splits_use_the_fewest_earliest_rows() {
        assert_eq!(split_rows(&[1, 3, 3, 2], 5), Some(vec![(1, 3), (2, 2)]));
        assert_eq!(split_rows(&[2, 1, 2], 4), Some(vec![(0, 2), (2, 2)]));
        assert_eq!(split_rows(&[1, 1], 3), None);
        assert_eq!(nearest_middle(9, &[1, 2, 8, 9], 2), vec![2, 8]);
    }
}
