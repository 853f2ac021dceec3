#!/usr/bin/env python3
"""text_f1.py DOC_JSON EXPECTED_TXT — token-level F1 between a document's
text as zhiku stored it and a reference text. Used by
tests/integration/formats_fixtures.sh. The document text is rebuilt from
its chunks by their code-point [start, end) offsets, so overlapping chunks
are not counted twice. Tokens are lowercased words (\\w+, Unicode), compared
as multisets. Prints "F1 P R" with 4 decimals."""
import json
import re
import sys
from collections import Counter


def doc_text(doc):
    chunks = doc.get("chunks", [])
    size = max((c["end"] for c in chunks), default=0)
    chars = [" "] * size
    for c in chunks:
        text = c["text"]
        for i, ch in enumerate(text[: c["end"] - c["start"]]):
            chars[c["start"] + i] = ch
    return "".join(chars)


def tokens(s):
    return Counter(w.lower() for w in re.findall(r"\w+", s))


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        got = tokens(doc_text(json.load(f)))
    with open(sys.argv[2], encoding="utf-8", errors="replace") as f:
        want = tokens(f.read())
    common = sum((got & want).values())
    p = common / max(sum(got.values()), 1)
    r = common / max(sum(want.values()), 1)
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    if not got and not want:
        f1 = p = r = 1.0
    print(f"{f1:.4f} {p:.4f} {r:.4f}")


if __name__ == "__main__":
    main()
