//! Names for an operator's tools (`boxoffice wal dump`): the ids and labels the API
//! spells, for the indexes a decision stores (event, section and seat indexes, interned
//! users). Events, sections, seats and users are only ever appended, so a later state
//! names the indexes of every earlier decision too.

use crate::engine::Engine;
use crate::ids::{BookingId, HoldId};

impl Engine {
    /// The id of the event with index `event` on this shard.
    pub fn event_id_of(&self, event: u32) -> Option<&str> {
        self.state.events.get(event as usize).map(|e| e.id.as_str())
    }

    /// The id of section `section` of event `event`.
    pub fn section_id_of(&self, event: u32, section: u16) -> Option<&str> {
        let event = self.state.events.get(event as usize)?;
        event
            .sections
            .get(usize::from(section))
            .map(|s| s.id.as_str())
    }

    /// The label (`A-12`) of seat `seat` of section `section` of event `event`.
    pub fn seat_label_of(&self, event: u32, section: u16, seat: u32) -> Option<String> {
        let event = self.state.events.get(event as usize)?;
        let section = event.sections.get(usize::from(section))?;
        ((seat as usize) < section.seats.len() && section.is_seated())
            .then(|| section.seat_label(seat))
    }

    /// The id of the user with interned index `user`.
    pub fn user_of(&self, user: u32) -> Option<&str> {
        self.state.users.get(user as usize).map(String::as_str)
    }

    /// The event index of a hold of this shard.
    pub fn event_of_hold(&self, hold: HoldId) -> Option<u32> {
        self.hold_at(hold).map(|h| h.event)
    }

    /// The event index of a booking of this shard.
    pub fn event_of_booking(&self, booking: BookingId) -> Option<u32> {
        let booking = self.booking_at(booking)?;
        self.state
            .holds
            .get((booking.hold as usize).checked_sub(1)?)
            .map(|h| h.event)
    }
}
