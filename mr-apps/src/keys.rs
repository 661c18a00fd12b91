//! Short keys as integers: the first 16 bytes of a key, big-endian, so that
//! tables and comparisons of words (nearly all shorter than 16 bytes) work
//! on one `u128` instead of a byte string.

/// The first 16 bytes of `key` as a big-endian number, zero-padded: keys
/// whose prefixes differ order as their prefixes do; keys of at most 16
/// bytes with equal prefixes differ only in length (the shorter first).
#[inline]
pub fn key_prefix(key: &[u8]) -> u128 {
    let len = key.len();
    if len >= 16 {
        return u128::from_be_bytes(key[..16].try_into().unwrap());
    }
    // Built from loads of the key itself (two that overlap for lengths
    // between the powers of two) rather than copied into a zeroed buffer
    // and read back: the copy's narrow stores cannot forward to the wide
    // load, which stalled every word this was called on.
    let be64 = |at: usize| u64::from_be_bytes(key[at..at + 8].try_into().unwrap());
    let be32 = |at: usize| u64::from(u32::from_be_bytes(key[at..at + 4].try_into().unwrap()));
    // The key's bytes as a big-endian number, in the top bytes of `hi`
    // (then `lo`), zeros after them.
    let (hi, lo) = if len >= 8 {
        let tail = be64(len - 8); // the last 8 bytes; the top 16 - len repeat `hi`'s
        let rest = len - 8;
        let lo = if rest == 0 {
            0
        } else {
            tail << (8 * (8 - rest))
        };
        (be64(0), lo)
    } else {
        let n = if len >= 4 {
            (be32(0) << (8 * (len - 4))) | be32(len - 4)
        } else if len > 0 {
            let (a, m, z) = (key[0] as u64, key[len / 2] as u64, key[len - 1] as u64);
            (a << (8 * (len - 1))) | (m << (8 * (len - 1 - len / 2))) | z
        } else {
            0
        };
        let hi = if len == 0 { 0 } else { n << (8 * (8 - len)) };
        (hi, 0)
    };
    (u128::from(hi) << 64) | u128::from(lo)
}

/// Asks for the cache line holding `p` ahead of its use: tables looked up
/// at random slots queue their lookups and prefetch each slot first, so the
/// misses of a batch overlap. A hint only; any address is allowed.
#[inline]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_order_like_bytes_unless_equal() {
        let keys: [&[u8]; 9] = [
            b"",
            b"\0",
            b"a",
            b"a\0",
            b"ab",
            b"b",
            b"abcdefghijklmnop",
            b"abcdefghijklmnopq",
            b"abcdefghijklmnoq",
        ];
        for a in keys {
            for b in keys {
                let (pa, pb) = (key_prefix(a), key_prefix(b));
                if pa != pb {
                    assert_eq!(pa.cmp(&pb), a.cmp(b), "{a:?} vs {b:?}");
                } else if a.len() <= 16 && b.len() <= 16 {
                    assert_eq!(a.len().cmp(&b.len()), a.cmp(b), "{a:?} vs {b:?}");
                }
            }
        }
    }

    #[test]
    fn a_prefix_is_the_key_padded_with_zeros() {
        let text: Vec<u8> = (1..=40u8).map(|i| i.wrapping_mul(37)).collect();
        for start in 0..text.len() {
            for len in 0..=16.min(text.len() - start) {
                let key = &text[start..start + len];
                let mut b = [0u8; 16];
                b[..len].copy_from_slice(key);
                assert_eq!(key_prefix(key), u128::from_be_bytes(b), "{key:?}");
            }
        }
    }
}
