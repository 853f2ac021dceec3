/* utf8.c — strict UTF-8 decoding, width/case folding and character classes.
 * Hot path of the tokenizer and embedder: keep it branch-light and free of
 * allocation. */
#include "utf8.h"

#include <string.h>

size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *out_cp)
{
    if (len == 0) { *out_cp = 0; return 0; }
    unsigned c = s[0];
    if (c < 0x80) { *out_cp = c; return 1; }
    size_t n;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) { n = 2; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { n = 3; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { n = 4; cp = c & 0x07; min = 0x10000; }
    else { *out_cp = UTF8_REPLACEMENT; return 1; }
    if (n > len) { *out_cp = UTF8_REPLACEMENT; return 1; }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) { *out_cp = UTF8_REPLACEMENT; return 1; }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        *out_cp = UTF8_REPLACEMENT;
        return 1;
    }
    *out_cp = cp;
    return n;
}

size_t utf8_encode(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = UTF8_REPLACEMENT;
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp > 0x10FFFF) return utf8_encode(UTF8_REPLACEMENT, out);
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* 1 if s[0] (of len > 0 bytes) is a continuation byte in [lo, hi]. */
#define CONT_IN(s, lo, hi) ((s)[0] >= (lo) && (s)[0] <= (hi))
#define CONT(s) (((s)[0] & 0xC0) == 0x80)

/* The well-formed sequences of Unicode's table 3-7 (what utf8_decode
 * accepts), checked without building code points: every byte of the text
 * passes here two or three times during ingestion (charset detection, the
 * copy, the check of a parser helper's output), and ASCII goes 8 bytes at
 * a time. */
size_t utf8_valid_prefix(const char *s, size_t len, size_t *out_multibyte)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, mb = 0;
    while (i < len) {
        uint64_t w;
        while (i + 8 <= len && (memcpy(&w, p + i, 8), (w & 0x8080808080808080ull) == 0)) i += 8;
        if (i == len) break;
        unsigned c = p[i];
        if (c < 0x80) { i++; continue; }
        size_t left = len - i;
        const unsigned char *q = p + i + 1;
        size_t n;
        if (c >= 0xC2 && c <= 0xDF) n = left >= 2 && CONT(q) ? 2 : 0;
        else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) n = left >= 3 && CONT(q) && CONT(q + 1) ? 3 : 0;
        else if (c == 0xE0) n = left >= 3 && CONT_IN(q, 0xA0, 0xBF) && CONT(q + 1) ? 3 : 0;
        else if (c == 0xED) n = left >= 3 && CONT_IN(q, 0x80, 0x9F) && CONT(q + 1) ? 3 : 0;   /* no surrogates */
        else if (c == 0xF0) n = left >= 4 && CONT_IN(q, 0x90, 0xBF) && CONT(q + 1) && CONT(q + 2) ? 4 : 0;
        else if (c >= 0xF1 && c <= 0xF3) n = left >= 4 && CONT(q) && CONT(q + 1) && CONT(q + 2) ? 4 : 0;
        else if (c == 0xF4) n = left >= 4 && CONT_IN(q, 0x80, 0x8F) && CONT(q + 1) && CONT(q + 2) ? 4 : 0;
        else n = 0;
        if (!n) break;
        i += n;
        mb++;
    }
    if (out_multibyte) *out_multibyte = mb;
    return i;
}

int utf8_valid(const char *s, size_t len)
{
    return utf8_valid_prefix(s, len, NULL) == len;
}

size_t utf8_count(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n = 0;
    while (i < len) {
        uint32_t cp;
        i += utf8_decode(p + i, len - i, &cp);
        n++;
    }
    return n;
}

uint32_t utf8_fold(uint32_t cp)
{
    if (cp < 0x80) {
        if (cp >= 'A' && cp <= 'Z') return cp + 32;
        return cp;
    }
    /* full-width ASCII variants and the ideographic space */
    if (cp >= 0xFF01 && cp <= 0xFF5E) return utf8_fold(cp - 0xFF01 + 0x21);
    if (cp == 0x3000) return ' ';
    /* half-width katakana etc. are left alone; Latin-1 and Latin Extended-A */
    if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) return cp + 32;
    if (cp >= 0x100 && cp <= 0x17F && cp != 0x130 && cp != 0x131 && cp != 0x138 &&
        cp != 0x149 && cp != 0x17F) {
        /* pairs: even upper, odd lower in most of this block */
        if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E))
            return (cp & 1) ? cp + 1 : cp;
        return (cp & 1) ? cp : cp + 1;
    }
    if (cp >= 0x391 && cp <= 0x3AB && cp != 0x3A2) return cp + 32;  /* Greek */
    if (cp >= 0x410 && cp <= 0x42F) return cp + 32;                  /* Cyrillic */
    if (cp >= 0x400 && cp <= 0x40F) return cp + 80;
    return cp;
}

int utf8_is_cjk(uint32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) ||   /* CJK unified */
           (cp >= 0x3400 && cp <= 0x4DBF) ||   /* extension A */
           (cp >= 0x20000 && cp <= 0x2FA1F) || /* extensions B.. + compat supplement */
           (cp >= 0xF900 && cp <= 0xFAFF) ||   /* compatibility ideographs */
           (cp >= 0x3040 && cp <= 0x30FF) ||   /* hiragana, katakana */
           (cp >= 0x31F0 && cp <= 0x31FF) ||
           (cp >= 0xAC00 && cp <= 0xD7AF) ||   /* hangul syllables */
           (cp >= 0x1100 && cp <= 0x11FF) || (cp >= 0x3130 && cp <= 0x318F) ||
           cp == 0x3007;                       /* 〇 */
}

int utf8_is_alnum(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9');
    if (utf8_is_cjk(cp)) return 0;
    if (cp == 0xD7 || cp == 0xF7) return 0;
    if (cp >= 0xC0 && cp <= 0x24F) return 1;   /* Latin-1 letters, Latin Extended */
    if (cp >= 0x370 && cp <= 0x3FF) return 1;  /* Greek */
    if (cp >= 0x400 && cp <= 0x52F) return 1;  /* Cyrillic */
    if (cp >= 0x1E00 && cp <= 0x1EFF) return 1; /* Latin Extended Additional */
    if (cp >= 0x0600 && cp <= 0x06FF) return 1; /* Arabic letters */
    if (cp >= 0x0900 && cp <= 0x0DFF) return 1; /* Indic */
    if (cp >= 0x0E00 && cp <= 0x0E7F) return 1; /* Thai */
    return 0;
}

int utf8_is_space(uint32_t cp)
{
    return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\f' || cp == '\v' ||
           cp == 0xA0 || cp == 0x3000 || (cp >= 0x2000 && cp <= 0x200B) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0xFEFF;
}

int utf8_is_sentence_end(uint32_t cp)
{
    switch (cp) {
    case '.': case '!': case '?':
    case 0x3002: /* 。 */
    case 0xFF01: /* ！ */
    case 0xFF1F: /* ？ */
    case 0xFF1B: /* ； */
    case 0x2026: /* … */
    case 0xFF0E: /* ． */
    case 0xFF61: /* ｡ */
        return 1;
    default:
        return 0;
    }
}
