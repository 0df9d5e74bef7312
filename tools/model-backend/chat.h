/* The extractive "chat model" of the local backend: it answers from numbered
 * context passages found in the prompt, never from anything else. */
#ifndef BK_CHAT_H
#define BK_CHAT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct bk_chat_msg {
  const char *role;    /* "system", "user", "assistant", ... */
  const char *content; /* the message text (parts already joined) */
} bk_chat_msg;

/* Fixed answers, so that callers and tests can recognise them. */
#define BK_CHAT_NO_CONTEXT                                                \
  "I have no context to answer from. This is the local development "      \
  "backend: it does not generate text, it only quotes numbered passages " \
  "([1], [2], ...) supplied in the prompt, and this prompt has none."
#define BK_CHAT_NO_MATCH                                             \
  "The supplied context does not answer this question: none of its " \
  "passages shares a content word with it."

/* The answer to msgs[0..n), malloc'd; NULL when memory runs out.
 * Passages are lines of system and user messages starting with "[N]"
 * (N up to 9999), continued by the following lines up to a blank line, a
 * "Question:" line or the next "[N]"; lines starting with "Source:" inside a
 * passage name its source and are not quoted, and so does a "(source: NAME)"
 * right after the "[N]" (aiplat/rag.h's context format). The question is the text of the
 * last user message outside passages (a leading "Question:" label is dropped).
 * The answer is the passage sentences that share the most weighted content
 * words with the question (at most 3), each followed by its "[N]". */
char *bk_chat_answer(const bk_chat_msg *msgs, size_t n);

#endif
