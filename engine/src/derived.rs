//! The indexes `apply` keeps beside the state and a restore rebuilds from it: interned
//! users, the expiry queue, per-user counts, seat summaries, the waiting lists' lookups.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap;

use crate::decision::IdemScope;

use crate::expiry::ExpiryQueue;
use crate::state::{Event, IdemOutcome, State, Status};
use crate::summary::SeatSummary;
use crate::waitlist::{Status as EntryStatus, Waitlists};

/// Indexes derived from [`State`], rebuilt on restore (never serialized, so their
/// iteration order cannot reach a snapshot).
#[derive(Clone, Debug, Default)]
pub struct Derived {
    /// User id → index.
    pub user_index: FxHashMap<String, u32>,
    /// (expires_at_ms, hold counter) of every live hold, plus stale entries below the top.
    pub expiry: ExpiryQueue,
    /// Holds with status held (due ones included).
    pub live_holds: usize,
    /// (event, user) → tickets in live holds plus confirmed bookings, for capped events
    /// only (an uncapped event has nothing to enforce). A zero count is removed.
    pub per_user: FxHashMap<(u32, u32), u32>,
    /// The free-run summary of each seated section, by event and section index.
    pub summaries: Vec<Vec<Option<SeatSummary>>>,
    /// (event, user) → their live (waiting or offered) entry.
    pub live_entry: FxHashMap<(u32, u32), u32>,
    /// Hold counter of a live offer → its entry.
    pub offer_of: FxHashMap<u32, u32>,
    /// Event → its live (waiting or offered) entries; a zero count is removed.
    pub live_per_event: FxHashMap<u32, u32>,
    /// (recorded at, scope, key) of every remembered refusal, oldest first: their
    /// retention order. Ordered by value, not by arrival, so a rebuild from the keys
    /// alone gives the same order (and forgets the same keys) as the live engine.
    pub refusals: BTreeSet<(u64, IdemScope, String)>,
}

impl Derived {
    /// Takes `tickets` off a user's count in a capped event.
    pub fn uncount(&mut self, event: u32, user: u32, tickets: u32) {
        let count = self
            .per_user
            .get_mut(&(event, user))
            .expect("a user with tickets is counted");
        *count -= tickets;
        if *count == 0 {
            self.per_user.remove(&(event, user));
        }
    }

    /// The free-run summary of a section (seated sections only).
    pub fn summary(&mut self, event: u32, section: u16) -> &mut SeatSummary {
        self.summaries[event as usize][section as usize]
            .as_mut()
            .expect("a seated section has a summary")
    }

    /// The summaries of an event's sections.
    pub fn summaries_of(event: &Event) -> Vec<Option<SeatSummary>> {
        event
            .sections
            .iter()
            .map(|s| {
                s.is_seated()
                    .then(|| SeatSummary::new(&s.rows, |seat| s.seats[seat as usize].is_free()))
            })
            .collect()
    }

    /// Rebuilds the indexes from the state.
    pub fn rebuild(state: &State, wait: &Waitlists) -> Self {
        let mut derived = Derived {
            live_entry: wait
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.status.is_live())
                .map(|(i, e)| ((e.event, e.user), i as u32 + 1))
                .collect(),
            live_per_event: wait.entries.iter().filter(|e| e.status.is_live()).fold(
                FxHashMap::default(),
                |mut m, e| {
                    *m.entry(e.event).or_default() += 1;
                    m
                },
            ),
            offer_of: wait
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.status == EntryStatus::Offered)
                .map(|(i, e)| (e.hold, i as u32 + 1))
                .collect(),
            summaries: state.events.iter().map(Derived::summaries_of).collect(),
            refusals: state
                .idem
                .iter()
                .filter(|(_, e)| matches!(e.outcome, IdemOutcome::Refused(_)))
                .map(|((scope, key), e)| (e.at_ms, scope.clone(), key.clone()))
                .collect(),
            user_index: state
                .users
                .iter()
                .enumerate()
                .map(|(i, u)| (u.clone(), i as u32))
                .collect(),
            ..Derived::default()
        };
        for (i, hold) in state.holds.iter().enumerate() {
            let counter = i as u32 + 1;
            let counts = match hold.status {
                Status::Held => {
                    derived.expiry.push((hold.expires_at_ms(), counter));
                    derived.live_holds += 1;
                    true
                }
                Status::Confirmed => true,
                Status::Released | Status::Expired => false,
            };
            if counts && state.events[hold.event as usize].max_per_user.is_some() {
                *derived.per_user.entry((hold.event, hold.user)).or_default() +=
                    state.tickets_of(hold);
            }
        }
        // A cancelled booking's tickets no longer count.
        for booking in state.bookings.iter().filter(|b| b.is_cancelled()) {
            let hold = state.hold(booking.hold);
            if state.events[hold.event as usize].max_per_user.is_some() {
                let key = (hold.event, hold.user);
                let count = derived.per_user.get_mut(&key).expect("counted above");
                *count -= state.tickets_of(hold);
                if *count == 0 {
                    derived.per_user.remove(&key);
                }
            }
        }
        derived
    }
}
