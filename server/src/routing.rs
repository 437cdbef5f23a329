//! Which shard owns an event. Changing [`shard_for_event`] re-routes every event of every
//! existing data directory (its holds and bookings would be looked for on the wrong
//! shard), so it is pinned by the test below and must never change.

/// The shard (from 0) that owns the event `event_id` in a data directory of `shards`
/// shards: FNV-1a (64-bit) over the id's bytes, then one more FNV-1a step with the byte
/// `0xff`, modulo `shards`. `shards` is at least 1.
pub fn shard_for_event(event_id: &str, shards: usize) -> usize {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    assert!(shards >= 1, "a data directory has at least one shard");
    let mut hash = OFFSET;
    for &byte in event_id.as_bytes().iter().chain(&[0xff]) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    (hash % shards as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::shard_for_event;

    /// (event id, shard count, shard): written down once from the routing every data
    /// directory so far was created with. A failure here means existing events would
    /// move: change the function back, never the table.
    const PINNED: &[(&str, usize, usize)] = &[
        ("e", 1, 0),
        ("e", 2, 1),
        ("e", 3, 1),
        ("e", 4, 1),
        ("e", 8, 5),
        ("e", 16, 13),
        ("evt-1", 3, 2),
        ("evt-1", 8, 1),
        ("concert_2026", 3, 0),
        ("concert_2026", 8, 5),
        ("A", 16, 9),
        ("zzz-Zz_09", 4, 3),
        ("zzz-Zz_09", 8, 3),
        ("zzz-Zz_09", 16, 11),
    ];

    #[test]
    fn event_routing_is_pinned() {
        for &(event, shards, shard) in PINNED {
            assert_eq!(
                shard_for_event(event, shards),
                shard,
                "event {event:?} with {shards} shards"
            );
        }
    }
}
