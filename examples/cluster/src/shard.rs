//! Which federation worker owns a room: `FNV-1a-64(room id as UTF-8) mod workers`.
//!
//! FNV-1a is fixed by its definition (offset basis `0xcbf29ce484222325`, prime
//! `0x100000001b3`), so every process, on every machine and in every version, puts a room in
//! the same shard: the `fnv` crate's `FnvHasher` fed the id's bytes directly (not through
//! `Hash`, which would add a terminator that is std's business).

use std::hash::Hasher;

use ruma_common::RoomId;

/// The shard (`0..workers`) of `room_id`.
pub fn shard_of(room_id: &RoomId, workers: u32) -> u32 {
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(room_id.as_str().as_bytes());
    (hasher.finish() % u64::from(workers.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fnv_1a_64_and_never_changes() {
        // Published FNV-1a-64 test vectors: "" and "a".
        let mut h = fnv::FnvHasher::default();
        h.write(b"");
        assert_eq!(h.finish(), 0xcbf29ce484222325);
        let mut h = fnv::FnvHasher::default();
        h.write(b"a");
        assert_eq!(h.finish(), 0xaf63dc4c8601ec8c);
        let room = RoomId::parse("!abc:example.org").unwrap();
        assert_eq!(shard_of(&room, 1), 0);
        assert_eq!(shard_of(&room, 2), shard_of(&room, 2));
    }
}
