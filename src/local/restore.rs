//! [`LocalPeeks::restore`]: rebuilding the machine from its stored records.

use std::collections::BTreeMap;

use super::record::{LocalKey, LocalRecord};
use super::state::Entry;
use super::{LocalConfig, LocalOutput, LocalPeeks};
use crate::Timestamp;
use crate::time::Monotonic;

impl LocalPeeks {
    /// Rebuilds the machine from the records a store kept (every `Persist` applied in order).
    ///
    /// * Leases, stream positions (the counter survives, so clients' `since` tokens stay
    ///   valid), retained ended/joined entries and every deadline are rebuilt. Deadlines already
    ///   past are not acted on here: `poll_timeout` returns them and the first `handle_timeout`
    ///   processes them, exactly as the machine before the restart would have.
    /// * Liveness is not persisted (DESIGN §4.4): every restored device counts as live from
    ///   `now`, and `poll_output` yields `RoomDemand { demanded: true }` for every room with a
    ///   live peek (sorted by room id) so the coordinator re-declares outbound demand.
    /// * Duplicate keys: the last record wins. Nothing panics on odd input; caps are not
    ///   re-applied to what the store already holds.
    pub fn restore(
        now: Timestamp,
        config: LocalConfig,
        records: impl IntoIterator<Item = LocalRecord>,
    ) -> Self {
        let mut by_key: BTreeMap<LocalKey, LocalRecord> = BTreeMap::new();
        for record in records {
            by_key.insert(record.key(), record);
        }
        let mut this = LocalPeeks::new(config);
        this.clock = Monotonic::starting_at(now);
        for record in by_key.into_values() {
            match record {
                LocalRecord::Stream { position, horizon } => {
                    this.position = this.position.max(position.0);
                    this.horizon = this.horizon.max(horizon.0);
                    this.persisted_stream = (position.0, horizon.0);
                }
                LocalRecord::Peek { user, device, room_id, started, expires_at } => {
                    let d = this.intern_device(&user, &device);
                    let r = this.intern_room(&room_id);
                    let slot =
                        u32::try_from(this.room(r).peekers.len()).expect("bounded by the records");
                    this.dev_mut(d).entries.insert(r, Entry::Peeking { started, expires_at, slot });
                    this.dev_mut(d).live_peeks += 1;
                    this.live_total += 1;
                    let room = this.room_mut(r);
                    room.peekers.push(d);
                    room.refs += 1;
                    room.live += 1;
                    this.leases.schedule((d, r), expires_at);
                    this.position = this.position.max(started.0);
                }
                LocalRecord::Ended { user, device, room_id, started, position, at, reason } => {
                    let d = this.intern_device(&user, &device);
                    let r = this.intern_room(&room_id);
                    this.dev_mut(d)
                        .entries
                        .insert(r, Entry::Ended { started, position, at, reason });
                    this.dev_mut(d).ended += 1;
                    this.ended_total += 1;
                    this.room_mut(r).refs += 1;
                    let due = at.saturating_add(this.config.ended_retention);
                    this.collect.schedule((position.0, d, r), due);
                    this.position = this.position.max(started.0).max(position.0);
                }
            }
        }
        if let Some(idle_after) = this.config.device_idle_after {
            let live: Vec<_> =
                this.devices.iter().filter(|(_, dev)| dev.live_peeks > 0).map(|(d, _)| d).collect();
            for d in live {
                this.idle.schedule(d, now.saturating_add(idle_after));
            }
        }
        let mut demanded: Vec<_> = this
            .rooms
            .iter()
            .filter(|(_, room)| room.live > 0)
            .map(|(_, room)| room.id.clone())
            .collect();
        demanded.sort();
        this.out.extend(
            demanded.into_iter().map(|room_id| LocalOutput::RoomDemand { room_id, demanded: true }),
        );
        this
    }
}
