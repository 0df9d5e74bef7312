/* Pieces of the RAG layer (rag.c) kept apart so that tests reach them
 * directly: the prompt-context formatter and the markdown title. Not
 * installed. */
#ifndef AIPLAT_RAG_INTERNAL_H
#define AIPLAT_RAG_INTERNAL_H

#include <stddef.h>

#include "internal.h"

/* Smallest context budget accepted (bytes). */
#define AIP_RAG_MIN_CONTEXT 16u
#define AIP_RAG_MAX_CONTEXT (16u << 20)
/* Bytes of a source name shown in the context (longer ones are cut). */
#define AIP_RAG_SOURCE_SHOWN 200u

typedef struct aip_rag_passage {
  const char *source; /* NULL or "" for none */
  const char *text;
} aip_rag_passage;

/* Format @n passages (in rank order) as numbered context within @budget
 * bytes: "[1] (source: S) text" blocks separated by a blank line, whitespace
 * runs collapsed, control characters of the source replaced; whole passages
 * while they fit, skipping one that does not; only a first passage that
 * does not fit is cut (sentence end, else word boundary plus "…", never
 * inside a UTF-8 sequence). *out is a new NUL-terminated string (free()),
 * *len (may be NULL) its length, always <= @budget. */
aiplat_status aip_rag_context_build(aip_err *err, const aip_rag_passage *p,
                                    size_t n, size_t budget, char **out,
                                    size_t *len);

/* The title of a markdown document: the text of its first ATX heading of
 * level 1 ("# Title") among the first non-empty lines, cleaned and cut to
 * 200 bytes; NULL when there is none (or no memory). free(). */
char *aip_rag_markdown_title(const char *text, size_t len);

#endif
