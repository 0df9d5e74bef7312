/* Splitting documents into passages for retrieval, and stable ids. */
#ifndef AIPLAT_CHUNK_H
#define AIPLAT_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct aip_chunk {
  size_t offset; /* byte offset of the chunk in the document */
  size_t len;    /* bytes */
} aip_chunk;

/* Split @text into chunks of at most @max_chars bytes (>= 32), preferring
 * paragraph boundaries, then sentence boundaries, then whitespace, never
 * inside a UTF-8 sequence; consecutive chunks of one paragraph overlap by
 * about @overlap bytes (< max_chars / 2), starting on a sentence or word
 * boundary. Leading/trailing whitespace is excluded from each chunk and
 * whitespace-only pieces produce none. Returns the number of chunks, the
 * array in *out (free()), or (size_t)-1 on bad arguments or no memory. */
size_t aip_chunk_text(const char *text, size_t len, size_t max_chars,
                      size_t overlap, aip_chunk **out);

/* A stable id for a passage: hex of a 128-bit hash of source and text
 * (32 characters + NUL). Same content from the same source, same id. */
void aip_chunk_id(const char *source, const char *text, size_t len,
                  char out[33]);

#endif
