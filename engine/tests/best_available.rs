//! Best available against a brute-force oracle: small seated sections (rows of up to 12
//! seats) with random taken seats, and random requests. The engine's choice must be
//! exactly the oracle's under the steps and tie-breaks of docs/api.md ("Best available"),
//! which the oracle applies by trying every placement.

use std::collections::BTreeSet;

use engine::*;
use proptest::prelude::*;

const T0: u64 = 1_700_000_000_000;

/// A section as the oracle sees it: rows of (label, free flags).
type Rows = Vec<(String, Vec<bool>)>;

fn labels(section: usize, row: usize) -> String {
    format!("{}{}", (b'A' + section as u8) as char, row)
}

/// The oracle's answer for one section: steps 1 and 2 by trying every block of every
/// row, step 3 by trying every set of rows.
fn oracle_section(rows: &Rows, qty: u32, allow_split: bool) -> Option<BTreeSet<String>> {
    let q = qty as usize;
    for no_orphan in [true, false] {
        for (label, free) in rows {
            let n = free.len();
            let mut best: Option<(i64, usize)> = None;
            for x in 1..=n {
                if x + q - 1 > n || !(x..x + q).all(|m| free[m - 1]) {
                    continue;
                }
                if no_orphan {
                    let is_free = |m: usize| m >= 1 && m <= n && free[m - 1];
                    let left_alone = is_free(x - 1) && !is_free(x.wrapping_sub(2));
                    let right_alone = is_free(x + q) && !is_free(x + q + 1);
                    if left_alone || right_alone {
                        continue;
                    }
                }
                let distance = (2 * x as i64 + q as i64 - 1 - (n as i64 + 1)).abs();
                if best.is_none_or(|b| (distance, x) < b) {
                    best = Some((distance, x));
                }
            }
            if let Some((_, x)) = best {
                return Some((x..x + q).map(|m| format!("{label}-{m}")).collect());
            }
        }
    }
    if !allow_split {
        return None;
    }
    let counts: Vec<usize> = rows
        .iter()
        .map(|(_, f)| f.iter().filter(|&&b| b).count())
        .collect();
    for k in 1..=rows.len() {
        if let Some(set) = first_combination(&counts, k, q, 0, &mut Vec::new()) {
            let mut out = BTreeSet::new();
            let mut left = q;
            for r in set {
                let (label, free) = &rows[r];
                let n = free.len() as i64;
                let mut numbers: Vec<usize> = (1..=free.len()).filter(|&m| free[m - 1]).collect();
                numbers.sort_by_key(|&m| ((2 * m as i64 - n - 1).abs(), m));
                let take = left.min(numbers.len());
                for &m in &numbers[..take] {
                    out.insert(format!("{label}-{m}"));
                }
                left -= take;
            }
            return Some(out);
        }
    }
    None
}

/// The lexicographically first set of `k` row indexes (from `from`) whose free counts
/// reach `q`.
fn first_combination(
    counts: &[usize],
    k: usize,
    q: usize,
    from: usize,
    chosen: &mut Vec<usize>,
) -> Option<Vec<usize>> {
    if chosen.len() == k {
        let sum: usize = chosen.iter().map(|&r| counts[r]).sum();
        return (sum >= q).then(|| chosen.clone());
    }
    for r in from..counts.len() {
        chosen.push(r);
        if let Some(found) = first_combination(counts, k, q, r + 1, chosen) {
            return Some(found);
        }
        chosen.pop();
    }
    None
}

/// The oracle over sections in order; the error is the expected rejection code.
fn oracle(
    sections: &[Rows],
    only: Option<usize>,
    qty: u32,
    allow_split: bool,
) -> Result<BTreeSet<String>, &'static str> {
    let tried: Vec<usize> = match only {
        Some(s) => vec![s],
        None => (0..sections.len()).collect(),
    };
    for &s in &tried {
        if let Some(found) = oracle_section(&sections[s], qty, allow_split) {
            return Ok(found);
        }
    }
    // design.md: "409 `no_adjacent_seats` when at least `qty` seats are free": free in
    // the sections tried, together.
    let free: usize = tried
        .iter()
        .map(|&s| {
            sections[s]
                .iter()
                .flat_map(|(_, f)| f)
                .filter(|&&b| b)
                .count()
        })
        .sum();
    Err(if free >= qty as usize {
        "no_adjacent_seats"
    } else {
        "sold_out"
    })
}

fn current_rows(engine: &Engine, sections: usize) -> Vec<Rows> {
    let map = engine.seat_map("show").expect("event");
    assert_eq!(map.sections.len(), sections);
    map.sections
        .iter()
        .map(|s| {
            s.rows
                .iter()
                .map(|r| {
                    (
                        r.label.clone(),
                        r.seats.iter().map(|&st| st == SeatStatus::Free).collect(),
                    )
                })
                .collect()
        })
        .collect()
}

fn run(engine: &mut Engine, command: &Command) -> Result<Output, Rejection> {
    let out = engine.execute(command, T0, &mut Vec::new()).output;
    engine.check_invariants();
    out
}

fn hold(user: &str, seats: Vec<String>) -> NewHold {
    NewHold {
        actor: Actor::Admin,
        event_id: "show".into(),
        user_id: user.into(),
        items: Vec::new(),
        seats,
        ttl_ms: None,
        payment_ref: None,
        idempotency: None,
    }
}

/// Sections of 1 to 4 rows of 1 to 12 seats, each seat taken with some probability.
fn layout() -> impl Strategy<Value = Vec<Vec<Vec<bool>>>> {
    let row = (1..=12usize, 0..=10u32).prop_flat_map(|(n, taken_in_10)| {
        proptest::collection::vec(proptest::bool::weighted(f64::from(taken_in_10) / 10.0), n)
    });
    proptest::collection::vec(proptest::collection::vec(row, 1..=4), 1..=2)
}

fn request() -> impl Strategy<Value = (u32, bool, bool)> {
    (1..=8u32, any::<bool>(), any::<bool>())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

    #[test]
    fn best_available_is_exactly_the_oracles_choice(
        taken in layout(),
        requests in proptest::collection::vec(request(), 1..=4),
    ) {
        let mut engine = Engine::new(0);
        let sections: Vec<NewSection> = taken
            .iter()
            .enumerate()
            .map(|(s, rows)| NewSection {
                id: Some(format!("s{s}")),
                name: "Seats".into(),
                price_cents: 100,
                layout: Layout::Seated {
                    rows: rows
                        .iter()
                        .enumerate()
                        .map(|(r, seats)| NewRow { label: labels(s, r), count: seats.len() as u32 })
                        .collect(),
                },
            })
            .collect();
        let create = Command::CreateEvent(NewEvent {
            id: "show".into(),
            name: "Show".into(),
            starts_at_ms: None,
            max_per_user: None,
            hold_ttl_ms: None,
            sections,
            idempotency: None,
        });
        run(&mut engine, &create).expect("created");
        let mut names = Vec::new();
        for (s, rows) in taken.iter().enumerate() {
            for (r, seats) in rows.iter().enumerate() {
                for (i, &t) in seats.iter().enumerate() {
                    if t {
                        names.push(format!("{}-{}", labels(s, r), i + 1));
                    }
                }
            }
        }
        if !names.is_empty() {
            run(&mut engine, &Command::PlaceHold(hold("taker", names))).expect("taken seats held");
        }
        for (i, &(qty, allow_split, first_only)) in requests.iter().enumerate() {
            let rows = current_rows(&engine, taken.len());
            let only = first_only.then_some(0);
            let expected = oracle(&rows, only, qty, allow_split);
            let best = BestAvailable {
                section_id: only.map(|s| format!("s{s}")),
                qty,
                allow_split,
            };
            let got = run(&mut engine, &Command::PlaceHoldBest(hold(&format!("u{i}"), Vec::new()), Box::new(best)));
            match (got, expected) {
                (Ok(Output::Hold(h)), Ok(want)) => {
                    let seats: BTreeSet<String> = h.seats.iter().cloned().collect();
                    prop_assert_eq!(seats.len(), h.seats.len());
                    prop_assert_eq!(seats, want, "rows {:?} qty {} split {}", rows, qty, allow_split);
                }
                (Err(r), Err(code)) => prop_assert_eq!(r.code(), code),
                (got, want) => prop_assert!(false, "engine {:?}, oracle {:?}, rows {:?} qty {} split {}", got, want, rows, qty, allow_split),
            }
        }
    }
}
