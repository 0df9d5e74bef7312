/**
 * @file aiplat/subject.h
 * @brief Build and validate NATS subjects of the platform.
 *
 * Platform subjects follow `ai.{domain}.{scope}.{action}`, e.g.
 * `ai.chat.user.{userId}.message` (docs/decisions/0006-nats-bus.md).
 * Tokens that come from users (a user id, a request id, a run id) are
 * checked before they become part of a subject, so that a hostile value can
 * never add a level (`.`), a wildcard (`*`, `>`), or break the protocol line
 * (whitespace, control bytes): such a value is refused with
 * ::AIPLAT_ERR_INVALID_ARGUMENT and a message saying why; it is never
 * escaped, truncated or passed through.
 *
 * A token is valid when it is 1 to ::AIPLAT_SUBJECT_TOKEN_MAX bytes of
 * well-formed UTF-8 with no ASCII space or control byte (0x00-0x20, 0x7f),
 * no C1 control (U+0080-U+009F), and none of `.`, `*` or `>`.
 * A subject is 1 to ::AIPLAT_SUBJECT_MAX bytes of valid tokens joined by
 * single dots.
 *
 * These functions keep no state. Thread: any. Failures set the calling
 * thread's error detail (aiplat_error_last()).
 */
#ifndef AIPLAT_SUBJECT_H
#define AIPLAT_SUBJECT_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Longest token accepted, in bytes. */
#define AIPLAT_SUBJECT_TOKEN_MAX 256
/** Longest subject accepted, in bytes. */
#define AIPLAT_SUBJECT_MAX 2048

/**
 * Check one token (one level of a subject) that may come from a user.
 * ::AIPLAT_OK when valid; ::AIPLAT_ERR_INVALID_ARGUMENT with the reason
 * (empty, too long, a dot, a wildcard, whitespace, a control byte, not
 * UTF-8) otherwise. The message never repeats the token's bytes.
 * @since 1.0
 * @experimental
 */
AIPLAT_API aiplat_status aiplat_subject_token_check(const char *token);

/**
 * Check a subject to publish on: valid tokens, no wildcard.
 * ::AIPLAT_ERR_INVALID_ARGUMENT with the position of the bad token.
 * @since 1.0
 * @experimental
 */
AIPLAT_API aiplat_status aiplat_subject_validate(const char *subject);

/**
 * Check a subscription filter: like aiplat_subject_validate(), but a whole
 * token may be `*` (one level) and the last token may be `>` (one or more
 * levels). `*` or `>` inside a longer token is refused.
 * @since 1.0
 * @experimental
 */
AIPLAT_API aiplat_status aiplat_subject_validate_filter(const char *subject);

/**
 * Join @p n tokens with dots into a new subject. Every token is checked as
 * by aiplat_subject_token_check(); nothing is written to @p out on failure.
 * @param out receives the subject, to be released with aiplat_free()
 * @since 1.0
 * @experimental
 */
AIPLAT_API aiplat_status aiplat_subject_join(char **out,
                                             const char *const *tokens,
                                             size_t n);

/**
 * Build `ai.{domain}.{scope}.{action}`; each part is checked as a token.
 * @param out receives the subject, released with aiplat_free()
 * @since 1.0
 * @experimental
 */
AIPLAT_API aiplat_status aiplat_subject_build(char **out, const char *domain,
                                              const char *scope,
                                              const char *action);

/**
 * Build `ai.chat.user.{user_id}.message`; released with aiplat_free().
 * @since 1.0
 * @experimental
 */
AIPLAT_API aiplat_status aiplat_subject_chat_user_message(char **out,
                                                          const char *user_id);

/**
 * Build `ai.chat.response.{request_id}`; released with aiplat_free().
 * @since 1.0
 * @experimental
 */
AIPLAT_API aiplat_status aiplat_subject_chat_response(char **out,
                                                      const char *request_id);

/**
 * Build `ai.voice.user.{user_id}.request`; released with aiplat_free().
 * @since 1.0
 * @experimental
 */
AIPLAT_API aiplat_status aiplat_subject_voice_user_request(char **out,
                                                           const char *user_id);

/**
 * Build `ai.voice.response.{request_id}`; released with aiplat_free().
 * @since 1.0
 * @experimental
 */
AIPLAT_API aiplat_status aiplat_subject_voice_response(char **out,
                                                       const char *request_id);

/**
 * Build `ai.pipeline.status.{run_id}`; released with aiplat_free().
 * @since 1.0
 * @experimental
 */
AIPLAT_API aiplat_status aiplat_subject_pipeline_status(char **out,
                                                        const char *run_id);

/**
 * The subject `ai.pipeline.trigger`. Static; never NULL, never freed.
 * @since 1.0
 * @experimental
 */
AIPLAT_API const char *aiplat_subject_pipeline_trigger(void);

/**
 * The subject `ai.pipeline.query`: ask pipeline-bridge for the state of a
 * run (request PipelineStatus with `run_id`, reply PipelineStatus;
 * docs/decisions/0017-bridges-and-cli.md). Static; never NULL, never freed.
 * @since 1.0
 * @experimental
 */
AIPLAT_API const char *aiplat_subject_pipeline_query(void);

/**
 * The subject `ai.stt.transcribe` of stt-module (TranscribeRequest →
 * TranscribeResponse, request/reply; ADR 0017). Static; never NULL.
 * @since 1.0
 * @experimental
 */
AIPLAT_API const char *aiplat_subject_stt_transcribe(void);

/**
 * The subject `ai.tts.synthesize` of tts-module (SynthesizeRequest →
 * SynthesizeResponse, request/reply; ADR 0017). Static; never NULL.
 * @since 1.0
 * @experimental
 */
AIPLAT_API const char *aiplat_subject_tts_synthesize(void);

/**
 * The filter `ai.chat.user.*.message` (every user's chat). Static.
 * @since 1.0
 * @experimental
 */
AIPLAT_API const char *aiplat_subject_chat_user_message_filter(void);

/**
 * The filter `ai.voice.user.*.request` (every user's voice). Static.
 * @since 1.0
 * @experimental
 */
AIPLAT_API const char *aiplat_subject_voice_user_request_filter(void);

/**
 * Copy token number @p index (0-based) of @p subject into a new string,
 * e.g. index 3 of `ai.chat.user.u1.message` is `u1`.
 * ::AIPLAT_ERR_NOT_FOUND when the subject has fewer tokens;
 * ::AIPLAT_ERR_INVALID_ARGUMENT when @p subject is not a valid subject.
 * @param out receives the token, released with aiplat_free()
 * @since 1.0
 * @experimental
 */
AIPLAT_API aiplat_status aiplat_subject_token_at(char **out,
                                                 const char *subject,
                                                 size_t index);

#ifdef __cplusplus
}
#endif

#endif /* AIPLAT_SUBJECT_H */
