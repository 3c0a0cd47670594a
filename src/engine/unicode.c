#include "engine/unicode.h"

static int is_cont(uint8_t b) { return (b & 0xC0u) == 0x80u; }

uint32_t unicode_decode(const char *s, size_t len, size_t *used)
{
    const uint8_t *p = (const uint8_t *)s;
    uint8_t b = p[0];
    *used = 1;
    if (b < 0x80u)
        return b;
    size_t n;
    uint32_t cpt;
    if ((b & 0xE0u) == 0xC0u) { n = 2; cpt = b & 0x1Fu; }
    else if ((b & 0xF0u) == 0xE0u) { n = 3; cpt = b & 0x0Fu; }
    else if ((b & 0xF8u) == 0xF0u) { n = 4; cpt = b & 0x07u; }
    else return UNICODE_REPLACEMENT; /* continuation or 11111xxx */
    if (len < n)
        return UNICODE_REPLACEMENT;
    for (size_t i = 1; i < n; i++) {
        if (!is_cont(p[i]))
            return UNICODE_REPLACEMENT;
        cpt = (cpt << 6) | (p[i] & 0x3Fu);
    }
    if (cpt > UNICODE_MAX_CPT) /* F4 90.. to F7 ..: llama.cpp throws later */
        return UNICODE_REPLACEMENT;
    *used = n;
    return cpt;
}

size_t unicode_encode(uint32_t cpt, char out[UNICODE_MAX_UTF8])
{
    if (cpt > UNICODE_MAX_CPT)
        cpt = UNICODE_REPLACEMENT;
    if (cpt < 0x80u) {
        out[0] = (char)cpt;
        return 1;
    }
    if (cpt < 0x800u) {
        out[0] = (char)(0xC0u | (cpt >> 6));
        out[1] = (char)(0x80u | (cpt & 0x3Fu));
        return 2;
    }
    if (cpt < 0x10000u) {
        out[0] = (char)(0xE0u | (cpt >> 12));
        out[1] = (char)(0x80u | ((cpt >> 6) & 0x3Fu));
        out[2] = (char)(0x80u | (cpt & 0x3Fu));
        return 3;
    }
    out[0] = (char)(0xF0u | (cpt >> 18));
    out[1] = (char)(0x80u | ((cpt >> 12) & 0x3Fu));
    out[2] = (char)(0x80u | ((cpt >> 6) & 0x3Fu));
    out[3] = (char)(0x80u | (cpt & 0x3Fu));
    return 4;
}

size_t unicode_seq_len(uint8_t lead)
{
    static const uint8_t by_high_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return by_high_nibble[lead >> 4];
}

size_t unicode_incomplete_tail(const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t back = 0;
    /* Walk back over at most 3 continuation bytes to the lead byte. */
    while (back < len && back < UNICODE_MAX_UTF8) {
        uint8_t b = p[len - 1 - back];
        if (!is_cont(b)) {
            size_t need;
            if ((b & 0xE0u) == 0xC0u) need = 2;
            else if ((b & 0xF0u) == 0xE0u) need = 3;
            else if ((b & 0xF8u) == 0xF0u) need = 4;
            else return 0;
            return back + 1 < need ? back + 1 : 0;
        }
        back++;
    }
    return 0;
}

unicode_gc unicode_category(uint32_t cpt)
{
    if (cpt > UNICODE_MAX_CPT)
        return UCAT_CN;
    /* Last entry whose start <= cpt; entry 0 starts at 0. */
    size_t lo = 0, hi = unicode_gc_ranges_len;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if ((unicode_gc_ranges[mid] >> 8) <= cpt)
            lo = mid;
        else
            hi = mid;
    }
    return (unicode_gc)(unicode_gc_ranges[lo] & 0xFFu);
}

int unicode_is_whitespace(uint32_t cpt)
{
    if (cpt < 0x80u)
        return cpt == ' ' || (cpt >= 0x09u && cpt <= 0x0Du);
    for (size_t i = 0; i < unicode_ws_list_len; i++)
        if (unicode_ws_list[i] == cpt)
            return 1;
    return 0;
}

unsigned unicode_flags(uint32_t cpt)
{
    static const uint16_t major[UCAT_COUNT] = {
        [UCAT_CN] = UFLAG_UNDEFINED,
        [UCAT_LU] = UFLAG_LETTER, [UCAT_LL] = UFLAG_LETTER, [UCAT_LT] = UFLAG_LETTER,
        [UCAT_LM] = UFLAG_LETTER, [UCAT_LO] = UFLAG_LETTER,
        [UCAT_MN] = UFLAG_MARK, [UCAT_MC] = UFLAG_MARK, [UCAT_ME] = UFLAG_MARK,
        [UCAT_ND] = UFLAG_NUMBER, [UCAT_NL] = UFLAG_NUMBER, [UCAT_NO] = UFLAG_NUMBER,
        [UCAT_PC] = UFLAG_PUNCT, [UCAT_PD] = UFLAG_PUNCT, [UCAT_PS] = UFLAG_PUNCT,
        [UCAT_PE] = UFLAG_PUNCT, [UCAT_PI] = UFLAG_PUNCT, [UCAT_PF] = UFLAG_PUNCT,
        [UCAT_PO] = UFLAG_PUNCT,
        [UCAT_SM] = UFLAG_SYMBOL, [UCAT_SC] = UFLAG_SYMBOL, [UCAT_SK] = UFLAG_SYMBOL,
        [UCAT_SO] = UFLAG_SYMBOL,
        [UCAT_ZS] = UFLAG_SEPARATOR, [UCAT_ZL] = UFLAG_SEPARATOR, [UCAT_ZP] = UFLAG_SEPARATOR,
        [UCAT_CC] = UFLAG_CONTROL, [UCAT_CF] = UFLAG_CONTROL, [UCAT_CS] = UFLAG_CONTROL,
        [UCAT_CO] = UFLAG_CONTROL,
    };
    unsigned f = major[unicode_category(cpt)];
    if (unicode_is_whitespace(cpt))
        f |= UFLAG_WHITESPACE;
    return f;
}

int unicode_in_dsllm_letters(uint32_t cpt)
{
    size_t lo = 0, hi = unicode_dsllm_letters_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cpt < unicode_dsllm_letters[2 * mid])
            hi = mid;
        else if (cpt > unicode_dsllm_letters[2 * mid + 1])
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

/* GPT-2's map: printable Latin-1 bytes stand for themselves, the other 68
 * bytes take U+0100.. in ascending byte order. */
static int byte_is_printable(unsigned b)
{
    return (b >= 0x21u && b <= 0x7Eu) || (b >= 0xA1u && b <= 0xACu) || (b >= 0xAEu && b <= 0xFFu);
}

uint32_t unicode_byte_to_cpt(uint8_t b)
{
    if (byte_is_printable(b))
        return b;
    /* Count the non-printable bytes below b. */
    unsigned n = 0;
    for (unsigned i = 0; i < b; i++)
        n += !byte_is_printable(i);
    return 0x100u + n;
}

int unicode_cpt_to_byte(uint32_t cpt)
{
    if (cpt < 0x100u)
        return byte_is_printable(cpt) ? (int)cpt : -1;
    if (cpt >= 0x100u + 68u)
        return -1;
    unsigned n = cpt - 0x100u;
    for (unsigned i = 0; i < 256; i++) {
        if (!byte_is_printable(i)) {
            if (n == 0)
                return (int)i;
            n--;
        }
    }
    return -1;
}
