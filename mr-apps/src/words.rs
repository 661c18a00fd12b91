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
pub fn for_each_word<'a>(text: &'a [u8], mut f: impl FnMut(&'a [u8])) {
    let mut i = 0;
    let mut start: Option<usize> = None;
    while i < text.len() {
        let b = text[i];
        let (letter, width) = if b < 0x80 {
            (b.is_ascii_alphabetic(), 1)
        } else {
            match decode_non_ascii(&text[i..]) {
                Some((c, w)) => (is_letter(c), w),
                None => (false, 1),
            }
        };
        match (letter, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                f(&text[s..i]);
                start = None;
            }
            _ => {}
        }
        i += width;
    }
    if let Some(s) = start {
        f(&text[s..]);
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
