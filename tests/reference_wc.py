#!/usr/bin/env python3
"""An independent word count, for checking the framework's `wc` against
something that shares none of its code: words are maximal runs of characters
whose Unicode general category starts with L (Go's unicode.IsLetter); bytes
that are not valid UTF-8 decode to U+FFFD, which is not a letter.

Usage: reference_wc.py FILE... > counts   (lines "word count", bytewise order)
"""
import collections
import sys
import unicodedata


def main(paths):
    counts = collections.Counter()
    for path in paths:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
        word = []
        for ch in text:
            if unicodedata.category(ch).startswith("L"):
                word.append(ch)
            elif word:
                counts["".join(word)] += 1
                word = []
        if word:
            counts["".join(word)] += 1
    out = sys.stdout.buffer
    for key in sorted(counts, key=lambda s: s.encode("utf-8")):
        out.write(b"%s %d\n" % (key.encode("utf-8"), counts[key]))


if __name__ == "__main__":
    main(sys.argv[1:])
