/**
 * @file aiplat/stt.h
 * @brief Speech-to-text client: OpenAI audio transcriptions
 *        (faster-whisper-server / speaches, vLLM) or whisper.cpp's server.
 *
 * ::AIPLAT_STT_API_OPENAI sends `POST {url}/v1/audio/transcriptions`,
 * ::AIPLAT_STT_API_WHISPER_CPP sends `POST {url}/inference`; both as
 * `multipart/form-data` with the audio as the `file` part and the fields
 * `model` (OpenAI only), `language`, `prompt` (asynchronous form, when
 * set) and `response_format`. The answer is `{"text"}` (`json`), the same
 * with `language`, `duration` and `segments[]` (`verbose_json`), or the
 * plain text (`text`).
 *
 * Thread: a client may be shared by threads; results are immutable. The
 * blocking call runs on the calling thread; the asynchronous one on the
 * library's event loop thread, which also runs its completion callback.
 */
#ifndef AIPLAT_STT_H
#define AIPLAT_STT_H

#include "call.h"
#include "common.h"
#include "config.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A speech-to-text client. */
typedef struct aiplat_stt aiplat_stt;
/** A transcription: text, language, duration, segments. */
typedef struct aiplat_stt_result aiplat_stt_result;

/** Which server API; the numbers are pinned. */
typedef enum aiplat_stt_api {
  AIPLAT_STT_API_OPENAI = 0,     /**< /v1/audio/transcriptions */
  AIPLAT_STT_API_WHISPER_CPP = 1 /**< whisper.cpp server's /inference */
} aiplat_stt_api;

/** The `response_format` asked for; the numbers are pinned. */
typedef enum aiplat_stt_format {
  AIPLAT_STT_FORMAT_JSON = 0,         /**< text only */
  AIPLAT_STT_FORMAT_VERBOSE_JSON = 1, /**< text, language, duration, segments */
  AIPLAT_STT_FORMAT_TEXT = 2          /**< plain text body */
} aiplat_stt_format;

/**
 * Create a client from @p cfg (NULL: the environment): `STT_URL`,
 * `STT_MODEL`, `STT_API_KEY`, `STT_API` (`openai`, `whispercpp`),
 * `STT_LANGUAGE`, `STT_RESPONSE_FORMAT`, `HTTP_*`.
 * Free with aiplat_stt_destroy().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_stt_create(aiplat_stt **out, aiplat_config *cfg);

/**
 * Destroy a client; no call may be running on it. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_stt_destroy(aiplat_stt *c);

/**
 * Set the server URL (copied), with or without a trailing `/v1`.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_stt_set_url(aiplat_stt *c, const char *url);

/**
 * Set the model name (copied; whisper.cpp does not get one).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_stt_set_model(aiplat_stt *c, const char *model);

/**
 * Set the bearer token (copied; never logged). NULL or "" removes it.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_stt_set_api_key(aiplat_stt *c, const char *key);

/**
 * Total time one call may take, retries and waits included (> 0).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_stt_set_timeout_ms(aiplat_stt *c, int64_t ms);

/**
 * Time one connection attempt may take (> 0).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_stt_set_connect_timeout_ms(aiplat_stt *c,
                                                           int64_t ms);

/**
 * Extra attempts on retryable failures, 0 to 100.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_stt_set_max_retries(aiplat_stt *c, int retries);

/**
 * Choose the server API.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_stt_set_api(aiplat_stt *c, aiplat_stt_api api);

/**
 * Choose the response format asked for.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_stt_set_response_format(aiplat_stt *c,
                                                        aiplat_stt_format format);

/**
 * Default language (ISO 639-1, copied); NULL lets the server detect it.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_stt_set_language(aiplat_stt *c,
                                                 const char *language);

/**
 * Readiness probe: `GET /health`, else `GET /v1/models`; no retries.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_stt_health(aiplat_stt *c);

/**
 * Stop every call on @p c in progress now. Thread: any.
 * @since 1.0
 */
AIPLAT_API void aiplat_stt_cancel(aiplat_stt *c);

/**
 * Copy the detail of the client's last failure into @p buf.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_stt_last_error(aiplat_stt *c, char *buf,
                                               size_t buflen);

/**
 * Transcribe @p len bytes of audio (read, not kept).
 * @p mime_type: the audio's type (`audio/mpeg`, `audio/ogg`, ...) sent
 * with the file; NULL or "" to detect it (WAV, OGG, FLAC, MP3, WebM, MP4
 * are recognised, anything else is ::AIPLAT_ERR_INVALID_ARGUMENT). A WAV
 * (RIFF/WAVE header) is always sent as `audio/wav`.
 * @p language: ISO 639-1 code for this call, or NULL for the client's.
 * On success *@p out is a new result (aiplat_stt_result_destroy()).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_stt_transcribe(aiplat_stt *c, const void *audio,
                                               size_t len, const char *mime_type,
                                               const char *language,
                                               aiplat_stt_result **out);

/**
 * Destroy a result. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_stt_result_destroy(aiplat_stt_result *r);

/**
 * The transcript, NUL-terminated, never NULL; borrowed from @p r.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_stt_result_text(const aiplat_stt_result *r);

/**
 * The language the server reports (`en`, `english`, ...), or NULL.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_stt_result_language(const aiplat_stt_result *r);

/**
 * The audio's duration in seconds, or a negative value when unknown.
 * @since 1.0
 */
AIPLAT_API double aiplat_stt_result_duration(const aiplat_stt_result *r);

/**
 * Number of segments (0 unless the format was verbose_json).
 * @since 1.0
 */
AIPLAT_API size_t aiplat_stt_result_segment_count(const aiplat_stt_result *r);

/**
 * Start of segment @p i in seconds (0 when out of range).
 * @since 1.0
 */
AIPLAT_API double aiplat_stt_result_segment_start(const aiplat_stt_result *r,
                                                  size_t i);

/**
 * End of segment @p i in seconds (0 when out of range).
 * @since 1.0
 */
AIPLAT_API double aiplat_stt_result_segment_end(const aiplat_stt_result *r,
                                                size_t i);

/**
 * Text of segment @p i (borrowed), or NULL when out of range.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_stt_result_segment_text(const aiplat_stt_result *r,
                                                      size_t i);

/* ---- asynchronous form ------------------------------------------------ */

/**
 * Settings of one transcription that would otherwise be the client's
 * (language, response format) plus the prompt. Read when a call starts:
 * it may be changed or destroyed as soon as the call has returned. One
 * thread at a time. The detail of a failed setter is in
 * aiplat_error_last().
 */
typedef struct aiplat_stt_options aiplat_stt_options;

/** Options that keep every setting of the client. Free with
 * aiplat_stt_options_destroy().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_stt_options_create(aiplat_stt_options **out);

/**
 * Destroy options. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_stt_options_destroy(aiplat_stt_options *options);

/**
 * Language of the audio (ISO 639-1, copied); "" sends none (the server
 * detects it); NULL restores the client's (aiplat_stt_set_language()).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_stt_options_set_language(
    aiplat_stt_options *options, const char *language);

/**
 * Text that guides the recognition (spelling of names, the previous
 * sentence), sent as the `prompt` field; UTF-8, copied. NULL or "" sends
 * none.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_stt_options_set_prompt(
    aiplat_stt_options *options, const char *prompt);

/**
 * The `response_format` of this call instead of the client's.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_stt_options_set_response_format(
    aiplat_stt_options *options, aiplat_stt_format format);

/**
 * Completion of aiplat_stt_transcribe_async(). Runs once, on the library's
 * event loop thread, and must not block (no blocking library call there:
 * they fail with ::AIPLAT_ERR_INTERNAL). @p message (borrowed for the
 * callback) explains a failure, "" on success. @p result is the caller's
 * on success (aiplat_stt_result_destroy()), NULL on failure.
 */
typedef void (*aiplat_stt_done_fn)(aiplat_status status, const char *message,
                                   aiplat_stt_result *result, void *user_data);

/**
 * aiplat_stt_transcribe() without waiting: returns at once, and @p done
 * gets the transcript on the event loop thread, with @p user_data. The
 * audio (@p len bytes) and @p mime_type are as in aiplat_stt_transcribe()
 * and are copied before this returns. @p options (may be NULL: the
 * client's settings) are read before this returns. @p call (may be NULL)
 * carries the deadline and the cancel switch and must outlive the call. On
 * an error return nothing is called back.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_stt_transcribe_async(
    aiplat_stt *c, const void *audio, size_t len, const char *mime_type,
    const aiplat_stt_options *options, aiplat_call *call,
    aiplat_stt_done_fn done, void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* AIPLAT_STT_H */
