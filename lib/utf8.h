/* UTF-8 validation shared by the components that must reject bad text
 * (message strings, metric labels, health messages). */
#ifndef AIPLAT_UTF8_H
#define AIPLAT_UTF8_H

#include <stdbool.h>
#include <stddef.h>

#include <stdint.h>

/* Length of the well-formed sequence at @s (1..4, at most @left bytes) with
 * its code point in *cp, or 0 when it is not one: truncated, overlong, a
 * surrogate, past U+10FFFF. */
size_t aip_utf8_decode(const unsigned char *s, size_t left, uint32_t *cp);
/* aip_utf8_decode() without the code point. */
size_t aip_utf8_seq_len(const unsigned char *s, size_t left);
/* True when [s, s+len) is well-formed; otherwise false and, when @bad is
 * not NULL, the offset of the first bad byte in *bad. */
bool aip_utf8_check(const char *s, size_t len, size_t *bad);
bool aip_utf8_valid(const char *s, size_t len);

#endif
