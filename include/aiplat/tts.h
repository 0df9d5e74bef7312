/**
 * @file aiplat/tts.h
 * @brief Text-to-speech client for OpenAI-compatible audio speech servers.
 *
 * `POST {url}/v1/audio/speech` with `{"model", "input", "voice",
 * "response_format", "speed"}`; the answer is the audio itself (often
 * chunked) with its `Content-Type` (`audio/wav`, `audio/mpeg`, ...).
 * A 2xx answer in JSON instead of audio is an error carrying its message.
 *
 * Thread: a client may be shared by threads. The blocking calls run on the
 * calling thread; the asynchronous one on the library's event loop thread,
 * which also runs its chunk and completion callbacks.
 */
#ifndef AIPLAT_TTS_H
#define AIPLAT_TTS_H

#include "call.h"
#include "common.h"
#include "config.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A text-to-speech client. */
typedef struct aiplat_tts aiplat_tts;

/**
 * Receives the audio of aiplat_tts_synthesize_stream() piece by piece as
 * it arrives.
 * @param data      audio bytes, borrowed for the call only
 * @param len       their number (> 0)
 * @param user_data as given
 * @return true to go on, false to stop (the call returns
 *         ::AIPLAT_ERR_CANCELLED and the connection is closed).
 * Runs on the thread that made the call; for aiplat_tts_synthesize_async()
 * on the event loop thread, where it must not block.
 */
typedef bool (*aiplat_tts_chunk_fn)(const void *data, size_t len,
                                    void *user_data);

/**
 * Create a client from @p cfg (NULL: the environment): `TTS_URL`,
 * `TTS_MODEL`, `TTS_VOICE`, `TTS_API_KEY`, `TTS_FORMAT`, `TTS_SPEED`,
 * `HTTP_*`. Free with aiplat_tts_destroy().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_tts_create(aiplat_tts **out, aiplat_config *cfg);

/**
 * Destroy a client; no call may be running on it. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_tts_destroy(aiplat_tts *c);

/**
 * Set the server URL (copied), with or without a trailing `/v1`.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_tts_set_url(aiplat_tts *c, const char *url);

/**
 * Set the model name (copied).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_tts_set_model(aiplat_tts *c, const char *model);

/**
 * Set the bearer token (copied; never logged). NULL or "" removes it.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_tts_set_api_key(aiplat_tts *c, const char *key);

/**
 * Total time one call may take, retries and waits included (> 0).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_tts_set_timeout_ms(aiplat_tts *c, int64_t ms);

/**
 * Time one connection attempt may take (> 0).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_tts_set_connect_timeout_ms(aiplat_tts *c,
                                                           int64_t ms);

/**
 * Longest silence inside a streamed answer; 0: none.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_tts_set_stream_idle_timeout_ms(aiplat_tts *c,
                                                               int64_t ms);

/**
 * Extra attempts on retryable failures, 0 to 100.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_tts_set_max_retries(aiplat_tts *c, int retries);

/**
 * Default voice (copied, non-empty).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_tts_set_voice(aiplat_tts *c, const char *voice);

/**
 * Audio format asked for: `wav`, `mp3`, `opus`, `aac`, `flac`, `pcm`.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_tts_set_format(aiplat_tts *c, const char *format);

/**
 * Speech speed in [0.25, 4.0].
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_tts_set_speed(aiplat_tts *c, double speed);

/**
 * Readiness probe: `GET /health`, else `GET /v1/models`; no retries.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_tts_health(aiplat_tts *c);

/**
 * Stop every call on @p c in progress now. Thread: any.
 * @since 1.0
 */
AIPLAT_API void aiplat_tts_cancel(aiplat_tts *c);

/**
 * Copy the detail of the client's last failure into @p buf.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_tts_last_error(aiplat_tts *c, char *buf,
                                               size_t buflen);

/**
 * Synthesize @p text (UTF-8, non-empty) with @p voice (NULL: the
 * client's). On success *@p audio (free with aiplat_free()) holds
 * *@p len bytes and *@p content_type (free with aiplat_free(); may be
 * passed as NULL when not wanted) the server's type, or `audio/<format>`
 * when it sent none. All outputs are NULL/0 on failure.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_tts_synthesize(aiplat_tts *c, const char *text,
                                               const char *voice, void **audio,
                                               size_t *len, char **content_type);

/**
 * Like aiplat_tts_synthesize(), but the audio goes to @p fn as it
 * arrives instead of being collected. *@p content_type (may be NULL) is set
 * on success as above.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_tts_synthesize_stream(aiplat_tts *c,
                                                      const char *text,
                                                      const char *voice,
                                                      aiplat_tts_chunk_fn fn,
                                                      void *user_data,
                                                      char **content_type);

/* ---- asynchronous form ------------------------------------------------ */

/**
 * Settings of one synthesis that would otherwise be the client's: voice,
 * format, speed. Read when a call starts: it may be changed or destroyed
 * as soon as the call has returned. One thread at a time. The detail of a
 * failed setter is in aiplat_error_last().
 */
typedef struct aiplat_tts_options aiplat_tts_options;

/** Options that keep every setting of the client. Free with
 * aiplat_tts_options_destroy().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_tts_options_create(aiplat_tts_options **out);

/**
 * Destroy options. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_tts_options_destroy(aiplat_tts_options *options);

/**
 * Voice of this call (copied, non-empty); NULL restores the client's.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_tts_options_set_voice(
    aiplat_tts_options *options, const char *voice);

/**
 * Format of this call (`wav`, `mp3`, ...); NULL restores the client's.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_tts_options_set_format(
    aiplat_tts_options *options, const char *format);

/**
 * Speed of this call in [0.25, 4.0]; 0 restores the client's.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_tts_options_set_speed(
    aiplat_tts_options *options, double speed);

/**
 * Completion of aiplat_tts_synthesize_async(). Runs once, on the library's
 * event loop thread, and must not block (no blocking library call there:
 * they fail with ::AIPLAT_ERR_INTERNAL). @p message (borrowed for the
 * callback) explains a failure, "" on success.
 * @param audio        on success without a chunk callback: the whole
 *                     audio, the caller's, freed with aiplat_free();
 *                     NULL otherwise
 * @param len          its length; with a chunk callback the number of
 *                     bytes handed to it; 0 on failure
 * @param content_type on success the server's type, or `audio/<format>`
 *                     when it sent none; NULL on failure; borrowed for the
 *                     callback
 */
typedef void (*aiplat_tts_done_fn)(aiplat_status status, const char *message,
                                   void *audio, size_t len,
                                   const char *content_type, void *user_data);

/**
 * Synthesize @p text without waiting: returns at once. Without @p fn the
 * audio is collected and handed to @p done; with @p fn it goes to @p fn as
 * it arrives (as aiplat_tts_synthesize_stream()) and @p done gets the end.
 * Both run on the event loop thread, with @p user_data. @p text and
 * @p options (may be NULL: the client's settings) are read before this
 * returns. @p call (may be NULL) carries the deadline and the cancel
 * switch and must outlive the call. On an error return nothing is called
 * back.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_tts_synthesize_async(
    aiplat_tts *c, const char *text, const aiplat_tts_options *options,
    aiplat_call *call, aiplat_tts_chunk_fn fn, aiplat_tts_done_fn done,
    void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* AIPLAT_TTS_H */
