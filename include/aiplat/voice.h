/**
 * @file aiplat/voice.h
 * @brief The speech services as library API: the voice pipeline
 *        (speech-to-text, the chat pipeline, text-to-speech) and the
 *        endpoints of the speech bridges.
 *
 * What voice-assistant, stt-module and tts-module run for each request
 * (docs/decisions/0016-chat-and-voice-services.md,
 * docs/decisions/0017-bridges-and-cli.md); each service is configuration,
 * one of these handles, one endpoint and `run`:
 *
 * ```c
 * aiplat_voice_create(&voice, cfg);
 * aiplat_service_add_endpoint(svc, "voice",
 *     aiplat_subject_voice_user_request_filter(), "voice-assistant",
 *     AIPLAT_MSG_VOICE_REQUEST, AIPLAT_MSG_VOICE_RESPONSE,
 *     aiplat_voice_handle_request, voice);
 * aiplat_voice_set_bus(voice, aiplat_service_bus(svc));
 * aiplat_voice_add_checks(voice, aiplat_service_health(svc), 5000);
 * ```
 *
 * The audio of a VoiceRequest or a TranscribeRequest follows one set of
 * rules, refused with ::AIPLAT_ERR_INVALID_ARGUMENT naming the field:
 * `audio` not empty; `audio_format` empty (the format is told from the
 * bytes), one of `wav`, `wave`, `mp3`, `mpeg`, `ogg`, `opus`, `flac`,
 * `webm`, `m4a`, `mp4`, `aac` (any case), an `audio/...` or `video/...`
 * MIME type, or `pcm_s16le_RATE`: raw 16-bit little-endian mono PCM at
 * RATE 8000 to 192000 Hz, an even number of bytes, wrapped in a WAV header
 * before it is sent; `language` empty or a language code (2 or 3 letters,
 * then optional `-` or `_` subtags of 1 to 8 letters or digits), of which
 * the primary subtag is sent (`en-US` as `en`).
 *
 * Thread: every handle here may be shared by the service's worker threads
 * once configured. The handlers check a request on the thread that calls
 * them (a delivery thread), hand it over with aiplat_request_defer() and
 * return; the model calls run on the library's event loop thread, bounded
 * by the request's deadline and cancelled when the service stops past its
 * grace period, and their completions reply.
 */
#ifndef AIPLAT_VOICE_H
#define AIPLAT_VOICE_H

#include "bus.h"
#include "common.h"
#include "config.h"
#include "health.h"
#include "service.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A voice pipeline: its STT and TTS clients and a chat pipeline. */
typedef struct aiplat_voice aiplat_voice;

/**
 * Create a voice pipeline from @p cfg (NULL: the environment): a
 * speech-to-text client (`STT_*`, aiplat_stt_create()), a text-to-speech
 * client (`TTS_*`, aiplat_tts_create(); `TTS_FORMAT` one of the formats
 * of aiplat_tts_endpoint_create()), a chat pipeline (the settings
 * of aiplat_chat_create()) and `WORKERS` threads that start the chat
 * pipeline's answers (its history and retrieval may wait on their
 * servers). Values are copied; @p cfg may be destroyed afterwards. No
 * request is sent. Errors: ::AIPLAT_ERR_CONFIG naming the
 * variable (detail in the thread's last error). Free with
 * aiplat_voice_destroy().
 */
AIPLAT_API aiplat_status aiplat_voice_create(aiplat_voice **out,
                                             aiplat_config *cfg);

/** Destroy a pipeline; no request may be running on it. NULL is a no-op. */
AIPLAT_API void aiplat_voice_destroy(aiplat_voice *voice);

/**
 * Copy the detail of the pipeline's last failure (a handled request's
 * error) into @p buf. Thread: any; with requests running at once it is one
 * of theirs.
 */
AIPLAT_API aiplat_status aiplat_voice_last_error(aiplat_voice *voice, char *buf,
                                                 size_t buflen);

/**
 * Give the chat pipeline inside a NATS connection for conversation
 * history (borrowed; see aiplat_chat_set_bus()). NULL removes it.
 * Thread: before requests run.
 */
AIPLAT_API aiplat_status aiplat_voice_set_bus(aiplat_voice *voice,
                                              aiplat_bus *bus);

/**
 * Register readiness checks on @p health: those of the chat pipeline
 * (aiplat_chat_add_checks(): `llm`, `embeddings`, maybe `reranker`) and
 * `stt` and `tts` (the servers' health probes), each run every
 * @p interval_ms (10 .. 86400000) on a thread of its own, failing when a
 * probe takes over 5 s. The pipeline must outlive @p health's checks:
 * destroy the health handle (or the service owning it) first.
 */
AIPLAT_API aiplat_status aiplat_voice_add_checks(aiplat_voice *voice,
                                                 aiplat_health *health,
                                                 int64_t interval_ms);

/**
 * The voice-assistant endpoint: an ::aiplat_handler_fn for an endpoint of
 * request type ::AIPLAT_MSG_VOICE_REQUEST and reply type
 * ::AIPLAT_MSG_VOICE_RESPONSE on `ai.voice.user.*.request`; @p user_data
 * is the ::aiplat_voice.
 *
 * 1. checks: the request id names `ai.voice.response.{request_id}` (a
 *    valid subject token); the user of the subject is a valid token and
 *    equals `user_id` when that is set; the audio rules of the file
 *    comment (all ::AIPLAT_ERR_INVALID_ARGUMENT);
 * 2. transcribe: the STT server's refusal of the audio is
 *    ::AIPLAT_ERR_BAD_REQUEST and bytes the client cannot recognise
 *    ::AIPLAT_ERR_INVALID_ARGUMENT (as stt-module answers them), prefixed
 *    "speech-to-text: "; a blank transcript is ::AIPLAT_ERR_BAD_REQUEST
 *    "no speech was recognised in the audio";
 * 3. answer: a ChatRequest (the transcript, the user, `conversation_id`,
 *    `enable_rag`, the request id) through the chat pipeline;
 * 4. speak: the answer without its `[N]` citation marks, in the request's
 *    `voice` or `TTS_VOICE`; failures prefixed "text-to-speech: ";
 * 5. the VoiceResponse (transcript, text with its marks, audio,
 *    `audio_format` from the server's content type, sources,
 *    conversation_id) goes to the reply subject and to
 *    `ai.voice.response.{request_id}`; a failure is a VoiceResponse with
 *    `error` on both.
 *
 * The checks run on the calling thread, which then returns: the
 * request is deferred and answered from the completions of the steps
 * (the transcription, the LLM call and the speech on the library's event
 * loop thread; the history and retrieval of the answer on a thread of the
 * pipeline). Every step is bounded by the request's deadline
 * (::AIPLAT_ERR_TIMEOUT) and cancelled when the service stops past its
 * grace period.
 */
AIPLAT_API aiplat_status aiplat_voice_handle_request(aiplat_request *req,
                                                     void *user_data);

/** The speech-to-text bridge: an STT client and a readiness probe. */
typedef struct aiplat_stt_endpoint aiplat_stt_endpoint;

/**
 * Create the stt-module endpoint from @p cfg (NULL: the environment): one
 * STT client that every request shares (each call carries its own
 * options and deadline) and one for the readiness probe, from `STT_*`
 * and `HTTP_*`; `STT_RESPONSE_FORMAT` (`json`,
 * `verbose_json`, `text`) is the default of a request. Values are copied.
 * No request is sent. Errors: ::AIPLAT_ERR_CONFIG naming the variable
 * (detail in the thread's last error). Free with
 * aiplat_stt_endpoint_destroy().
 */
AIPLAT_API aiplat_status aiplat_stt_endpoint_create(aiplat_stt_endpoint **out,
                                                    aiplat_config *cfg);

/**
 * Stop the readiness probe and destroy the endpoint; no request may be
 * running on it, and the health handle holding its check must be
 * destroyed first. NULL is a no-op.
 */
AIPLAT_API void aiplat_stt_endpoint_destroy(aiplat_stt_endpoint *ep);

/**
 * Register the readiness check `stt` on @p health: the STT server's
 * health probe runs on a thread of the endpoint every 10 s (3 s timeout)
 * and again within a fraction of a second after a request found the
 * server unreachable (or reachable again while marked down). The check
 * itself never blocks. Once per endpoint.
 */
AIPLAT_API aiplat_status aiplat_stt_endpoint_add_checks(aiplat_stt_endpoint *ep,
                                                        aiplat_health *health);

/**
 * The stt-module endpoint: an ::aiplat_handler_fn for request type
 * ::AIPLAT_MSG_TRANSCRIBE_REQUEST and reply type
 * ::AIPLAT_MSG_TRANSCRIBE_RESPONSE (`ai.stt.transcribe`); @p user_data is
 * the ::aiplat_stt_endpoint. The audio rules of the file comment, then
 * `response_format` empty (the default), `json`, `verbose_json` or `text`
 * (else ::AIPLAT_ERR_INVALID_ARGUMENT); `prompt`, when set, is sent to the
 * server with the audio. The STT call is bounded by the request's time
 * left and `HTTP_TIMEOUT`. The TranscribeResponse carries the text, the
 * language (the server's, else the one asked), the duration and segments
 * when the server gave them; a failure is the reply with `error` set to
 * the client's status and words. The checks run on the calling thread;
 * the call runs on the library's event loop thread, whose completion
 * replies (the request is deferred).
 */
AIPLAT_API aiplat_status aiplat_stt_handle_request(aiplat_request *req,
                                                   void *user_data);

/** The text-to-speech bridge: a TTS client and a readiness probe. */
typedef struct aiplat_tts_endpoint aiplat_tts_endpoint;

/**
 * Create the tts-module endpoint from @p cfg (NULL: the environment):
 * one TTS client that every request shares and one for the readiness
 * probe, from `TTS_*` and `HTTP_*`; `TTS_FORMAT` (`wav`, `mp3`, `opus`,
 * `aac`, `flac`, `pcm`; default `wav`) and `TTS_SPEED` are the defaults of
 * a request. Values are
 * copied. No request is sent. Errors: ::AIPLAT_ERR_CONFIG naming the
 * variable. Free with aiplat_tts_endpoint_destroy().
 */
AIPLAT_API aiplat_status aiplat_tts_endpoint_create(aiplat_tts_endpoint **out,
                                                    aiplat_config *cfg);

/** As aiplat_stt_endpoint_destroy(). NULL is a no-op. */
AIPLAT_API void aiplat_tts_endpoint_destroy(aiplat_tts_endpoint *ep);

/**
 * Give the endpoint the service's NATS connection (borrowed; it must
 * outlive the endpoint's requests) so that audio too large for the
 * server's max_payload is refused with a reason instead of a failed
 * publish. Without one, the size is not checked. Thread: before requests
 * run.
 */
AIPLAT_API aiplat_status aiplat_tts_endpoint_set_bus(aiplat_tts_endpoint *ep,
                                                     aiplat_bus *bus);

/** Register the readiness check `tts`, as aiplat_stt_endpoint_add_checks(). */
AIPLAT_API aiplat_status aiplat_tts_endpoint_add_checks(aiplat_tts_endpoint *ep,
                                                        aiplat_health *health);

/**
 * The tts-module endpoint: an ::aiplat_handler_fn for request type
 * ::AIPLAT_MSG_SYNTHESIZE_REQUEST and reply type
 * ::AIPLAT_MSG_SYNTHESIZE_RESPONSE (`ai.tts.synthesize`); @p user_data is
 * the ::aiplat_tts_endpoint. Checks: `text` not blank
 * (::AIPLAT_ERR_INVALID_ARGUMENT) and at most 4096 characters
 * (::AIPLAT_ERR_TOO_LARGE); `format` empty (`TTS_FORMAT`) or one of
 * `wav`, `mp3`, `opus`, `aac`, `flac`, `pcm`; `speed` 0 (`TTS_SPEED`) or
 * 0.25 to 4.0. The SynthesizeResponse carries the audio and its
 * content type; audio over the bus's max_payload is ::AIPLAT_ERR_TOO_LARGE.
 * The checks run on the calling thread; the call runs on the library's
 * event loop thread, whose completion replies (the request is deferred).
 */
AIPLAT_API aiplat_status aiplat_tts_handle_request(aiplat_request *req,
                                                   void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* AIPLAT_VOICE_H */
