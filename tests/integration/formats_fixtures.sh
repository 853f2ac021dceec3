#!/bin/bash
# formats_fixtures.sh — text fidelity of the format parsers on the shared
# fixture corpus ($ZHIKU_SHARED/data/fixtures/formats/{docx,pptx,odt,epub,
# html,txt}). Every file is ingested with the real binary; each one with a
# reference .txt beside it (same basename) must reach token-level F1 >= 0.9
# between its stored text (rebuilt from chunk offsets) and the reference.
# Skips (77) when the fixtures or python3 are absent.
source "${ZHIKU_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
need python3

FX=${ZHIKU_SHARED:-$ZHIKU_ROOT/../shared}/data/fixtures/formats
[ -d "$FX" ] || skip "no format fixtures at $FX"
FX=$(cd "$FX" && pwd -P)   # zhiku stores canonical paths
F1=${ZHIKU_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/tools/text_f1.py
D=$PWD/data
MIN_F1=0.9

checked=0
for dir in docx pptx odt epub html txt; do
    [ -d "$FX/$dir" ] || continue
    for f in "$FX/$dir"/*; do
        [ -f "$f" ] || continue
        base=${f%.*}
        # a .txt is the reference of a sibling, unless it is the fixture itself
        if [ "${f##*.}" = txt ] && [ "$dir" != txt ]; then continue; fi
        zk_expect 0 --data-dir "$D" ingest "$f"
        assert_not_contains "$OUT" "failed   " "ingest $(basename "$f")"
        zk_expect 0 --data-dir "$D" docs show "$f" --json
        ok "ingested $dir/$(basename "$f")"
        ref="$base.txt"
        [ "$dir" = txt ] && continue
        [ -f "$ref" ] || continue
        printf '%s' "$OUT" >doc.json
        read -r f1 p r < <(python3 "$F1" doc.json "$ref")
        note "$dir/$(basename "$f"): F1 $f1 (precision $p, recall $r)"
        python3 -c "import sys; sys.exit(0 if float('$f1') >= $MIN_F1 else 1)" ||
            fail "$dir/$(basename "$f"): token F1 $f1 < $MIN_F1 against $(basename "$ref")"
        ok "$dir/$(basename "$f") F1 $f1 >= $MIN_F1"
        checked=$((checked + 1))
    done
done
[ "$checked" -gt 0 ] || skip "no fixture with a reference text"
finish
