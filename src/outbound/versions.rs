//! The room versions the machine supports ([`Versions`]): the `ver` list every `PUT` shares,
//! and the check of the version a resident answers with.

use std::sync::Arc;

use ruma_common::RoomVersionId;

/// `OutboundConfig::supported_versions`, fixed at `OutboundPeeks::new`.
///
/// Checking an answer's version reads one bit for the stable versions (V1 to V12), and scans
/// the list only for any other: a scan of the default list for a V10 answer (its tenth entry)
/// cost about 90 instructions per established peek, a sixtieth of the round trip.
#[derive(Debug, Clone)]
pub(super) struct Versions {
    /// Shared by every `PUT` (cloning it copies no versions).
    list: Arc<[RoomVersionId]>,
    /// Bit `n - 1` set when `list` holds version `n`, for the stable versions.
    stable: u16,
}

impl Versions {
    /// The versions of `list`, with a bit for each stable one.
    pub(super) fn new(list: &[RoomVersionId]) -> Self {
        let stable = list.iter().filter_map(stable_bit).fold(0, |bits, bit| bits | bit);
        Versions { list: list.into(), stable }
    }

    /// The list for a `PUT`'s `ver` parameters.
    pub(super) fn list(&self) -> Arc<[RoomVersionId]> {
        self.list.clone()
    }

    /// Whether `version` is one of the list's.
    pub(super) fn supports(&self, version: &RoomVersionId) -> bool {
        match stable_bit(version) {
            Some(bit) => self.stable & bit != 0,
            None => self.list.contains(version),
        }
    }
}

/// The bit of a stable room version; `None` for any other (unstable or custom).
fn stable_bit(version: &RoomVersionId) -> Option<u16> {
    use RoomVersionId::*;
    let n = match version {
        V1 => 0,
        V2 => 1,
        V3 => 2,
        V4 => 3,
        V5 => 4,
        V6 => 5,
        V7 => 6,
        V8 => 7,
        V9 => 8,
        V10 => 9,
        V11 => 10,
        V12 => 11,
        _ => return None,
    };
    Some(1 << n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use RoomVersionId::*;

    fn custom(s: &str) -> RoomVersionId {
        RoomVersionId::try_from(s).unwrap()
    }

    #[test]
    fn supports_exactly_the_listed_versions() {
        let all = [V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12];
        let probes: Vec<RoomVersionId> =
            all.iter().cloned().chain([custom("org.example.x"), custom("13")]).collect();
        let lists: [Vec<RoomVersionId>; 6] = [
            vec![],
            all.to_vec(),
            vec![V10, V12],
            vec![custom("org.example.x")],
            vec![V1, custom("13"), V11],
            vec![V10, V10, custom("org.example.x"), custom("org.example.x")],
        ];
        for list in &lists {
            let versions = Versions::new(list);
            for v in &probes {
                assert_eq!(versions.supports(v), list.contains(v), "{v} in {list:?}");
            }
            assert_eq!(&*versions.list(), list.as_slice());
        }
    }

    #[test]
    fn every_stable_version_has_its_own_bit() {
        let bits: Vec<u16> = [V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12]
            .iter()
            .map(|v| stable_bit(v).unwrap())
            .collect();
        let union = bits.iter().fold(0, |a, b| a | b);
        assert_eq!(union.count_ones(), 12);
        assert_eq!(stable_bit(&custom("org.example.x")), None);
    }
}
