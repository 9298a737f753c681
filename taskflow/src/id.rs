//! [`TaskId`]: time-ordered task ids, how they are made, and the cheap hasher of the maps keyed
//! by them.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// A task's unique id (a time-ordered UUID version 7, shown as its hyphenated string).
///
/// # Examples
///
/// ```
/// let id = taskflow::TaskId::new();
/// let parsed: taskflow::TaskId = id.to_string().parse().unwrap();
/// assert_eq!(id, parsed);
/// ```
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(uuid::Uuid);

/// The last id stamp handed out: Unix milliseconds shifted left by [`COUNTER_BITS`], plus a
/// counter for ids made within the same millisecond.
static LAST_STAMP: AtomicU64 = AtomicU64::new(0);

/// Bits of the per-millisecond counter: the UUID's 12-bit `rand_a` field (RFC 9562, method 3).
const COUNTER_BITS: u32 = 12;

/// A stamp greater than every stamp handed out before, from the clock (`since_epoch`, `None`
/// before the epoch) when it moved on.
///
/// More than 4,096 ids in one millisecond borrow from the next millisecond, so the order holds
/// without a lock; the stamp falls back to the clock once it catches up.
fn next_stamp(since_epoch: Option<Duration>) -> u64 {
    let now = since_epoch.map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX >> 16)
    });
    let floor = now << COUNTER_BITS;
    let mut last = LAST_STAMP.load(AtomicOrdering::Relaxed);
    loop {
        let next = floor.max(last + 1);
        match LAST_STAMP.compare_exchange_weak(
            last,
            next,
            AtomicOrdering::Relaxed,
            AtomicOrdering::Relaxed,
        ) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

impl TaskId {
    /// A new id, ordered after every id made before it in this process.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = (taskflow::TaskId::new(), taskflow::TaskId::new());
    /// assert!(a < b);
    /// ```
    pub fn new() -> Self {
        Self::at(crate::clock::since_epoch(SystemTime::now()))
    }

    /// A new id for something made `since_epoch` after the Unix epoch (`None`: before it), from
    /// the clock reading its record's creation time is made of too.
    pub(crate) fn at(since_epoch: Option<Duration>) -> Self {
        let stamp = next_stamp(since_epoch);
        let millis = stamp >> COUNTER_BITS;
        let counter = stamp & ((1 << COUNTER_BITS) - 1);
        // unix_ts_ms (48 bits) | version 7 (4 bits) | counter (12 bits)
        let high = (millis << 16) | 0x7000 | counter;
        // variant 0b10 (2 bits) | random (62 bits)
        let low = (fastrand::u64(..) >> 2) | (1 << 63);
        Self(uuid::Uuid::from_u64_pair(high, low))
    }

    /// The id's 16 bytes, big-endian, so that byte order is creation order: a compact key for a
    /// store.
    ///
    /// # Examples
    ///
    /// ```
    /// let id = taskflow::TaskId::new();
    /// assert_eq!(taskflow::TaskId::from_bytes(id.to_bytes()), id);
    /// assert!(taskflow::TaskId::new().to_bytes() > id.to_bytes());
    /// ```
    pub fn to_bytes(self) -> [u8; 16] {
        *self.0.as_bytes()
    }

    /// The id as one number, in the ids' order: a key that compares in one instruction.
    pub(crate) fn key(self) -> u128 {
        self.0.as_u128()
    }

    /// The id whose bytes are `bytes` (see [`TaskId::to_bytes`]).
    ///
    /// # Examples
    ///
    /// See [`TaskId::to_bytes`].
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(uuid::Uuid::from_bytes(bytes))
    }
}

impl Default for TaskId {
    fn default() -> Self {
        Self::new()
    }
}

// Equality, order and hash work on the id's `key` (big-endian, so its order is the byte order):
// one comparison instead of a byte-wise one, on the path of every lookup by id.
impl PartialEq for TaskId {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for TaskId {}

impl PartialOrd for TaskId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TaskId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl std::hash::Hash for TaskId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u128(self.key());
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for TaskId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(Self)
    }
}

/// A map keyed by task id with [`IdHasher`].
pub(crate) type IdMap<V> = HashMap<TaskId, V, BuildHasherDefault<IdHasher>>;

/// A set of task ids with [`IdHasher`].
pub(crate) type IdSet = HashSet<TaskId, BuildHasherDefault<IdHasher>>;

/// Hashes a [`TaskId`] with one multiply: the low 62 bits of an id made here are random, so
/// SipHash's protection buys nothing on the maps of live tasks, which hold only such ids.
#[derive(Debug, Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // FNV-1a, for completeness: `TaskId` only ever calls `write_u128`.
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u128(&mut self, n: u128) {
        let folded = (n as u64) ^ ((n >> 64) as u64) ^ self.0;
        self.0 = folded.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn ids_are_version_7_and_ordered_across_threads() {
        let made: Vec<Vec<TaskId>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| (0..20_000).map(|_| TaskId::new()).collect::<Vec<_>>()))
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("no panic"))
                .collect()
        });
        let mut all: Vec<TaskId> = made.iter().flatten().copied().collect();
        for ids in &made {
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "ordered per thread");
        }
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 80_000, "unique");
        let id = all[0];
        assert_eq!(id.0.get_version_num(), 7);
        assert_eq!(id.0.get_variant(), uuid::Variant::RFC4122);
        let (seconds, _) = id.0.get_timestamp().expect("a v7 timestamp").to_unix();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        assert!(now.abs_diff(seconds) < 60, "{seconds} vs {now}");
    }

    #[test]
    fn order_and_bytes_agree() {
        let ids: Vec<TaskId> = (0..1_000).map(|_| TaskId::new()).collect();
        for pair in ids.windows(2) {
            assert_eq!(
                pair[0].cmp(&pair[1]),
                pair[0].to_bytes().cmp(&pair[1].to_bytes())
            );
        }
    }

    #[test]
    fn the_id_map_spreads_ids() {
        let mut map: IdMap<usize> = IdMap::default();
        let ids: Vec<TaskId> = (0..10_000).map(|_| TaskId::new()).collect();
        for (n, id) in ids.iter().enumerate() {
            map.insert(*id, n);
        }
        assert!(
            ids.iter()
                .enumerate()
                .all(|(n, id)| map.get(id) == Some(&n))
        );
        let buckets: std::collections::HashSet<u64> = ids
            .iter()
            .map(|id| {
                let mut hasher = IdHasher::default();
                std::hash::Hash::hash(id, &mut hasher);
                hasher.finish() >> 57
            })
            .collect();
        assert_eq!(
            buckets.len(),
            128,
            "the top 7 bits (hashbrown's tag) all occur"
        );
    }
}
