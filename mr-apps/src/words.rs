//! The word splitter shared by `wc` and `indexer`.
//!
//! A word is a maximal run of Unicode letters, general category L (Lu, Ll, Lt,
//! Lm, Lo), which is what Go's `unicode.IsLetter` tests, so results match the
//! lab's Go reference. Rust's `char::is_alphabetic` is a different property
//! (it includes Nl letter-numbers and some marks) and would give other words.
//! Bytes that are not valid UTF-8 are not letters, as Go decodes each of them
//! to U+FFFD; they separate words.

use unicode_general_category::{get_general_category, GeneralCategory};

/// True when `c` is in Unicode general category L.
pub fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    matches!(
        get_general_category(c),
        GeneralCategory::UppercaseLetter
            | GeneralCategory::LowercaseLetter
            | GeneralCategory::TitlecaseLetter
            | GeneralCategory::ModifierLetter
            | GeneralCategory::OtherLetter
    )
}

/// Decodes the UTF-8 sequence starting at `bytes[0]` (a non-ASCII lead byte).
/// Returns the char and its length, or `None` for an invalid sequence, in
/// which case exactly one byte is consumed, as Go's decoder does.
fn decode_non_ascii(bytes: &[u8]) -> Option<(char, usize)> {
    let width = match bytes[0] {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return None,
    };
    let seq = bytes.get(..width)?;
    // std's validator rejects overlongs, surrogates and > U+10FFFF, exactly
    // the sequences Go's decoder rejects.
    let s = std::str::from_utf8(seq).ok()?;
    s.chars().next().map(|c| (c, width))
}

/// Calls `f` with every word of `text`, in order, as a slice of `text`.
///
/// Text is taken 64 bytes at a time: a block of ASCII alone becomes a mask
/// of its letters (SSE2 compares on x86-64), whose edges are the words'
/// starts and ends, with no branch per byte; a block holding other bytes is
/// decoded character by character, which is also where a UTF-8 sequence
/// running past the block is finished.
pub fn for_each_word<'a>(text: &'a [u8], mut f: impl FnMut(&'a [u8])) {
    let mut i = 0;
    // Where the word in progress started, if one is.
    let mut start: Option<usize> = None;
    while i < text.len() {
        if let Some(block) = text.get(i..i + 64) {
            if let Some(letters) = ascii_letters(block) {
                // Bit j says whether byte i + j is a letter; `before` shifts
                // in whether the byte before the block was.
                let before = (letters << 1) | u64::from(start.is_some());
                let mut edges = letters ^ before;
                while edges != 0 {
                    let j = edges.trailing_zeros() as usize;
                    edges &= edges - 1;
                    match start.take() {
                        Some(s) => f(&text[s..i + j]),
                        None => start = Some(i + j),
                    }
                }
                i += 64;
                continue;
            }
            // Other bytes in this block: one character at a time to its end
            // (or past it, to finish a sequence that straddles it).
            let end = i + 64;
            while i < end {
                i = step(text, i, &mut start, &mut f);
            }
            continue;
        }
        i = step(text, i, &mut start, &mut f);
    }
    if let Some(s) = start {
        f(&text[s..]);
    }
}

/// Decodes the character at `text[i]`, ends or starts a word there, and
/// returns where the next character starts.
#[inline]
fn step<'a>(
    text: &'a [u8],
    i: usize,
    start: &mut Option<usize>,
    f: &mut impl FnMut(&'a [u8]),
) -> usize {
    let b = text[i];
    let (letter, width) = if b < 0x80 {
        (b.is_ascii_alphabetic(), 1)
    } else {
        match decode_non_ascii(&text[i..]) {
            Some((c, w)) => (is_letter(c), w),
            None => (false, 1),
        }
    };
    match (letter, *start) {
        (true, None) => *start = Some(i),
        (false, Some(s)) => {
            f(&text[s..i]);
            *start = None;
        }
        _ => {}
    }
    i + width
}

/// The letter mask of a 64-byte block (bit j set when `block[j]` is an
/// ASCII letter), or `None` when the block holds a byte that is not ASCII.
#[inline]
fn ascii_letters(block: &[u8]) -> Option<u64> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        let mut letters = 0u64;
        let mut high = 0u32;
        for q in 0..4 {
            // SAFETY: SSE2 is part of x86-64; the load is unaligned and
            // within `block`, which is 64 bytes (checked by the slice below).
            let part = unsafe {
                let v = _mm_loadu_si128(block[q * 16..q * 16 + 16].as_ptr().cast());
                high |= _mm_movemask_epi8(v) as u32;
                // Setting bit 5 folds upper case onto lower; as signed
                // bytes, non-ASCII ones are negative and so never in range.
                let lower = _mm_or_si128(v, _mm_set1_epi8(0x20));
                let ge_a = _mm_cmpgt_epi8(lower, _mm_set1_epi8(b'a' as i8 - 1));
                let le_z = _mm_cmpgt_epi8(_mm_set1_epi8(b'z' as i8 + 1), lower);
                _mm_movemask_epi8(_mm_and_si128(ge_a, le_z)) as u32
            };
            letters |= u64::from(part) << (q * 16);
        }
        (high == 0).then_some(letters)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let mut letters = 0u64;
        for (j, &b) in block[..64].iter().enumerate() {
            if b >= 0x80 {
                return None;
            }
            letters |= u64::from(b.is_ascii_alphabetic()) << j;
        }
        Some(letters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for_each_word(text, |w| out.push(String::from_utf8_lossy(w).into_owned()));
        out
    }

    #[test]
    fn ascii_words_split_on_non_letters() {
        assert_eq!(
            words(b"Hello, world! it's 42nd-st."),
            ["Hello", "world", "it", "s", "nd", "st"]
        );
        assert!(words(b"").is_empty());
        assert!(words(b"123 !!! \n").is_empty());
    }

    #[test]
    fn other_scripts_are_letters() {
        assert_eq!(words("Привет мир".as_bytes()), ["Привет", "мир"]);
        assert_eq!(words("日本語のテキスト".as_bytes()), ["日本語のテキスト"]);
        assert_eq!(words("naïve café".as_bytes()), ["naïve", "café"]);
        // Lm (modifier letter ʰ) and Lt (titlecase ǅ) are letters.
        assert_eq!(words("aʰb ǅx".as_bytes()), ["aʰb", "ǅx"]);
    }

    #[test]
    fn marks_numbers_symbols_and_emoji_separate_words() {
        // U+0301 COMBINING ACUTE ACCENT is Mn: not a letter.
        assert_eq!(words("e\u{301}t".as_bytes()), ["e", "t"]);
        // U+0903 DEVANAGARI SIGN VISARGA is Mc.
        assert_eq!(words("क\u{903}ख".as_bytes()), ["क", "ख"]);
        // Roman numeral twelve is Nl, which char::is_alphabetic accepts.
        assert!('Ⅻ'.is_alphabetic());
        assert_eq!(words("xⅫy".as_bytes()), ["x", "y"]);
        assert_eq!(words("a😀b½c٣d".as_bytes()), ["a", "b", "c", "d"]);
    }

    /// The plain definition, one character at a time, to check the block
    /// scanner against.
    fn words_one_by_one(text: &[u8]) -> Vec<String> {
        let (mut out, mut i, mut start) = (Vec::new(), 0, None);
        let mut f = |w: &[u8]| out.push(String::from_utf8_lossy(w).into_owned());
        while i < text.len() {
            i = step(text, i, &mut start, &mut f);
        }
        if let Some(s) = start {
            f(&text[s..]);
        }
        out
    }

    #[test]
    fn blocks_agree_with_one_character_at_a_time_across_block_edges() {
        // Words, ASCII separators, letters of other scripts, marks and
        // broken sequences, placed at every offset around the 64-byte edges.
        let pieces: [&[u8]; 9] = [
            b"word",
            b" ",
            b"Zz",
            b"\n",
            "é".as_bytes(),
            "日本".as_bytes(),
            b"\xff",
            b"\xe6\x97",
            b"@[`{",
        ];
        let mut x: u64 = 1;
        for len in [0usize, 1, 63, 64, 65, 127, 128, 129, 200, 1000] {
            for _ in 0..40 {
                let mut text = Vec::new();
                while text.len() < len {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let p = pieces[(x >> 33) as usize % pieces.len()];
                    let n = (x >> 45) as usize % 70 + 1;
                    for _ in 0..n.min(if p.len() > 1 { 3 } else { n }) {
                        text.extend_from_slice(p);
                    }
                }
                text.truncate(len);
                assert_eq!(words(&text), words_one_by_one(&text), "{text:?}");
            }
        }
        // Every byte value, in and out of an all-ASCII block.
        for b in 0..=255u8 {
            let mut text = vec![b'a'; 130];
            text[63] = b;
            text[64] = b;
            assert_eq!(words(&text), words_one_by_one(&text), "byte {b:#x}");
        }
    }

    #[test]
    fn invalid_utf8_bytes_separate_words() {
        assert_eq!(words(b"ab\xffcd"), ["ab", "cd"]);
        // A truncated two-byte sequence, an overlong and a surrogate encoding.
        assert_eq!(words(b"ab\xc3"), ["ab"]);
        assert_eq!(words(b"x\xc0\xafy"), ["x", "y"]);
        assert_eq!(words(b"p\xed\xa0\x80q"), ["p", "q"]);
        // A lone continuation byte followed by a valid letter.
        assert_eq!(words("\u{80}".as_bytes()), Vec::<String>::new());
        assert_eq!(words(b"\x80\xc3\xa9t\xe9"), ["ét"]);
    }
}
