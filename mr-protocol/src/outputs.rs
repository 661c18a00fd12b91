//! A list of map outputs as reduces read it, and its compact encoding on
//! the wire.
//!
//! A reduce must learn where every one of the M map outputs is. Plain
//! bincode (about 45 bytes a map: fixed-width integers and the holder's
//! address spelled out every time) made that 45 MB for a million maps.
//! Encoded here instead as a table of the distinct holders, then per map
//! four varints (map id as a delta, attempt, holder index with the
//! shared-directory flag, size): about 8 bytes a map. The coordinator
//! serves its list in pages of these (see [`crate::OutputsPage`]), each
//! encoded once and shared by every reader, so each send is a copy, not a
//! re-encoding.

use crate::ids::{AttemptId, MapTaskId};
use crate::messages::MapOutputRef;
use crate::packed::{Damaged, Reader, Writer};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// Every map's accepted output, in map order, as a reduce is told them:
/// reads as a slice of [`MapOutputRef`]; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct MapOutputs(Arc<Shared>);

/// Prints the list alone: the wire form is a cache of it, filled by the
/// first send, so two equal lists must print alike whether or not either
/// was sent (the wire fuzzer compares messages by how they print).
impl std::fmt::Debug for MapOutputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("MapOutputs").field(&&*self.0.list).finish()
    }
}

#[derive(Default)]
struct Shared {
    list: Box<[MapOutputRef]>,
    /// The wire form, made on the first send.
    wire: OnceLock<Vec<u8>>,
}

impl MapOutputs {
    /// The list `list`, in map order.
    pub fn new(list: Vec<MapOutputRef>) -> MapOutputs {
        MapOutputs(Arc::new(Shared {
            list: list.into_boxed_slice(),
            wire: OnceLock::new(),
        }))
    }

    /// The bytes this list crosses the wire as.
    pub fn encoded(&self) -> &[u8] {
        self.0.wire.get_or_init(|| encode(&self.0.list))
    }
}

impl std::ops::Deref for MapOutputs {
    type Target = [MapOutputRef];

    fn deref(&self) -> &[MapOutputRef] {
        &self.0.list
    }
}

impl PartialEq for MapOutputs {
    fn eq(&self, other: &MapOutputs) -> bool {
        self.0.list == other.0.list
    }
}

impl FromIterator<MapOutputRef> for MapOutputs {
    fn from_iter<I: IntoIterator<Item = MapOutputRef>>(iter: I) -> MapOutputs {
        MapOutputs::new(iter.into_iter().collect())
    }
}

impl Serialize for MapOutputs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.encoded())
    }
}

impl<'de> Deserialize<'de> for MapOutputs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MapOutputs, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        decode(&bytes)
            .map(MapOutputs::new)
            .map_err(serde::de::Error::custom)
    }
}

/// `holders | n | n x (map delta, attempt, holder index + 1 << 1 | shared dir, bytes)`,
/// holders being `count | count x (len, utf-8)`; every integer a varint.
fn encode(list: &[MapOutputRef]) -> Vec<u8> {
    let mut index: HashMap<&str, u64> = HashMap::new();
    let mut holders: Vec<&str> = Vec::new();
    for m in list {
        if let Some(h) = m.host.as_deref() {
            index.entry(h).or_insert_with(|| {
                holders.push(h);
                holders.len() as u64 - 1
            });
        }
    }
    let mut out = Vec::with_capacity(16 + list.len() * 8);
    out.put_varint(holders.len() as u64);
    for h in &holders {
        out.put_bytes_varint(h.as_bytes());
    }
    out.put_varint(list.len() as u64);
    let mut prev = 0u64;
    for m in list {
        let id = u64::from(m.map.0);
        // Wrapping: a list out of order still round-trips.
        out.put_varint(id.wrapping_sub(prev) & u64::from(u32::MAX));
        prev = id;
        out.put_varint(m.attempt.0);
        let holder = m.host.as_deref().map_or(0, |h| index[h] + 1);
        out.put_varint(holder << 1 | u64::from(m.in_job_dir));
        out.put_varint(m.bytes);
    }
    out
}

/// Reads what [`encode`] wrote; any other bytes give an error, never a
/// panic or an allocation larger than the input warrants.
fn decode(bytes: &[u8]) -> Result<Vec<MapOutputRef>, String> {
    let damaged = |e: Damaged| format!("the map output list: {e}");
    let mut r = Reader::new(bytes);
    let count = r.count_varint(1).map_err(damaged)?;
    let mut holders: Vec<Arc<str>> = Vec::with_capacity(count);
    for _ in 0..count {
        let text = std::str::from_utf8(r.bytes_varint().map_err(damaged)?)
            .map_err(|_| "a map output's holder address is not UTF-8".to_string())?;
        holders.push(Arc::from(text));
    }
    // Each entry takes at least four bytes.
    let n = r.count_varint(4).map_err(damaged)?;
    let mut list = Vec::with_capacity(n);
    let mut prev = 0u64;
    for _ in 0..n {
        let id = prev.wrapping_add(r.varint().map_err(damaged)?) & u64::from(u32::MAX);
        prev = id;
        let attempt = AttemptId(r.varint().map_err(damaged)?);
        let place = r.varint().map_err(damaged)?;
        let host = match place >> 1 {
            0 => None,
            h => Some(
                holders
                    .get((h - 1) as usize)
                    .ok_or("a map output names a holder not in the table")?
                    .clone(),
            ),
        };
        list.push(MapOutputRef {
            map: MapTaskId(id as u32),
            attempt,
            host,
            in_job_dir: place & 1 == 1,
            bytes: r.varint().map_err(damaged)?,
        });
    }
    r.finish().map_err(damaged)?;
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(map: u32, attempt: u64, host: Option<&str>, shared: bool, bytes: u64) -> MapOutputRef {
        MapOutputRef {
            map: MapTaskId(map),
            attempt: AttemptId(attempt),
            host: host.map(Arc::from),
            in_job_dir: shared,
            bytes,
        }
    }

    #[test]
    fn a_list_round_trips_through_bincode_and_is_small() {
        let mut list = vec![
            out(0, 7, Some("10.0.0.2:7071"), false, 123),
            out(1, (3 << 32) + 9, None, true, 0),
            out(2, 8, Some("10.0.0.3:7071"), true, u64::MAX),
            out(3, 11, Some("10.0.0.2:7071"), false, 1 << 40),
        ];
        // Out of order and with a gap: still exactly the same list.
        list.push(out(9, 1, None, false, 5));
        list.push(out(4, 2, Some("[::1]:1"), false, 6));
        let m = MapOutputs::new(list.clone());
        let back: MapOutputs = bincode::deserialize(&bincode::serialize(&m).unwrap()).unwrap();
        assert_eq!(&*back, &list[..]);
        // Hosts shared, not repeated: the two entries of one holder point
        // at one string.
        assert!(Arc::ptr_eq(
            back[0].host.as_ref().unwrap(),
            back[3].host.as_ref().unwrap()
        ));
        // 100,000 maps over 1,000 holders: about 8 bytes a map.
        let big: MapOutputs = (0..100_000u32)
            .map(|i| {
                let host = format!("10.0.{}.{}:7071", i % 1000 / 250, i % 250);
                out(
                    i,
                    u64::from(i) + 5,
                    Some(&host),
                    false,
                    50_000 + u64::from(i),
                )
            })
            .collect();
        let wire = bincode::serialize(&big).unwrap();
        assert!(wire.len() < 100_000 * 9, "{} bytes", wire.len());
        assert_eq!(&*bincode::deserialize::<MapOutputs>(&wire).unwrap(), &*big);
    }

    #[test]
    fn the_bytes_are_the_documented_ones() {
        // Worked out by hand from `encode`'s comment: one holder ("h"),
        // two entries (map deltas 0 and 1), every integer one varint byte.
        let m = MapOutputs::new(vec![
            out(0, 7, Some("h"), false, 123),
            out(1, 8, None, true, 4),
        ]);
        let want = [1, 1, b'h', 2, 0, 7, 1 << 1, 123, 1, 8, 1, 4];
        assert_eq!(m.encoded(), &want[..]);
        // A two-byte varint: 300 = 0b10_0101100.
        let m = MapOutputs::new(vec![out(0, 300, None, false, 0)]);
        assert_eq!(m.encoded(), &[0, 1, 0, 0xac, 0x02, 0, 0][..]);
    }

    #[test]
    fn damaged_bytes_are_an_error_not_a_panic() {
        let m = MapOutputs::new(vec![
            out(0, 7, Some("10.0.0.2:7071"), false, 123),
            out(1, 8, None, true, 4),
        ]);
        let good = m.encoded().to_vec();
        // Every truncation, and every single byte changed to each of a few values.
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..good.len() {
            for v in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] = v;
                let _ = decode(&bad);
            }
        }
        // A huge count with few bytes behind it is refused before allocating.
        let mut huge = Vec::new();
        huge.put_varint(0);
        huge.put_varint(u64::MAX >> 1);
        assert!(decode(&huge).unwrap_err().contains("exceeds"));
        // A holder index past the table.
        let mut past = Vec::new();
        for v in [0, 1, 0, 3, 5 << 1, 0] {
            past.put_varint(v);
        }
        assert!(decode(&past).unwrap_err().contains("holder"));
    }
}
