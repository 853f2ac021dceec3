#!/bin/sh
# ci.sh — CI hook for the fuzz targets: a short, bounded `make fuzz`
# (FUZZ_SECONDS per target, default 8). Exits 77 (skipped) when clang or
# libFuzzer is not installed, so CI without them reports a skip, not a
# failure. Run from anywhere: `fuzz/ci.sh`.
cd "$(dirname "$0")/.." || exit 1
CC_FUZZ=${FUZZ_CC:-clang}
if ! command -v "$CC_FUZZ" >/dev/null 2>&1; then
    echo "fuzz: $CC_FUZZ not installed, skipped"; exit 77
fi
probe=$(mktemp -d) || exit 1
trap 'rm -rf "$probe"' EXIT
printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$probe/p.c"
if ! "$CC_FUZZ" -fsanitize=fuzzer,address,undefined -o "$probe/p" "$probe/p.c" >/dev/null 2>&1; then
    echo "fuzz: libFuzzer runtime (libclang-rt-14-dev) not installed, skipped"; exit 77
fi
exec make --no-print-directory fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-8}"
