/* What every model client (llm, embeddings, reranker, stt, tts) shares:
 * the error record, the HTTP layer and the model name. Internal. */
#ifndef AIPLAT_MODEL_COMMON_H
#define AIPLAT_MODEL_COMMON_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#include "aiplat/call.h"
#include "http.h"
#include "internal.h"
#include "loop.h"
#include "model_metrics.h"

struct aip_model_base {
  aip_err err;
  aip_http *http;
  pthread_mutex_t mu; /* model and the client's own settings */
  char *model;
  const char *component;
  bool global_ref;
  _Atomic(aip_model_families *) metrics; /* NULL: not attached */
};

/* Take a global reference, make the HTTP layer and read the settings.
 * @model_var may be NULL (no model setting). On failure everything is
 * released again and the detail is in the thread's record. */
aiplat_status aip_model_base_init(aip_model_base *b, const char *component,
                                  aiplat_config *cfg, const char *url_var,
                                  const char *key_var, const char *model_var,
                                  const char *timeout_var);
void aip_model_base_destroy(aip_model_base *b);

/* A copy of the model name (free()), or NULL on ENOMEM. */
char *aip_model_base_model(aip_model_base *b);
aiplat_status aip_model_base_set_model(aip_model_base *b, const char *model);

/* Change one setting of the HTTP layer. */
typedef enum aip_model_knob {
  AIP_KNOB_TIMEOUT,
  AIP_KNOB_CONNECT_TIMEOUT,
  AIP_KNOB_IDLE_TIMEOUT,
  AIP_KNOB_RETRIES
} aip_model_knob;
aiplat_status aip_model_base_set(aip_model_base *b, aip_model_knob k,
                                 int64_t value);

/* Read a config handle (or the environment when @cfg is NULL) for one
 * more setting while creating a client. The returned config must be
 * destroyed with aip_model_cfg_end(). */
aiplat_config *aip_model_cfg_begin(aiplat_config *cfg, aiplat_config **own);
void aip_model_cfg_end(aiplat_config *own);
/* Record a config getter failure with the config's message. */
aiplat_status aip_model_cfg_fail(aip_model_base *b, aiplat_config *cfg,
                                 aiplat_status st);

/* Strings inside parsed answers: NULL when absent or not a string. */
const char *aip_json_str(json_t *obj, const char *key);
/* A JSON string that must be valid UTF-8; INVALID_ARGUMENT otherwise. The
 * detail goes to @err (the handle's or a call's record). */
aiplat_status aip_json_add_str(aip_model_base *b, aip_err *err, json_t *obj,
                               const char *key, const char *value,
                               const char *what);

/* ---- asynchronous calls ---------------------------------------------------
 *
 * One asynchronous client call: one or more HTTP requests in sequence
 * (embedding batches, the reranker's API probes) on the execution core,
 * bounded and cancelled through the caller's aiplat_call. Embed one in the
 * client's per-call context. */

typedef struct aip_model_call aip_model_call;

/* Runs on the loop thread when a request of @m has ended: m->st, m->resp
 * and, on failure, m->err hold its outcome. It starts the next request or
 * calls the user back and frees the context. Must not block. */
typedef void (*aip_model_answer_fn)(aip_model_call *m);

struct aip_model_call {
  aip_model_base *base;
  aiplat_call *call;      /* the caller's, may be NULL */
  aip_err err;            /* this call's record, never the handle's */
  aiplat_status st;       /* the outcome of the last request */
  aiplat_status sink_st;  /* a sink stopped the transfer (detail in err) */
  aip_http_resp resp;     /* the last answer, moved from the HTTP layer */
  aip_http_call *running; /* borrowed: valid in sinks of the request */
  aip_model_answer_fn on_answer;
  /* the answer runs only once the request has ended and has been tied to
   * the aiplat_call, so a callback may destroy that object */
  atomic_int pending;
  aip_task task;
  aip_model_obs obs; /* begun by init; ended by aip_model_call_end() or,
                        for a call that never started, by destroy */
  struct aip_span *span; /* the model call's GenAI span (otel.h), or NULL;
                            its requests' HTTP spans are its children */
};

void aip_model_call_init(aip_model_call *m, aip_model_base *b,
                         aiplat_call *call, aip_model_answer_fn on_answer);
void aip_model_call_destroy(aip_model_call *m);
/* The call's outcome, for its metrics: call once before the completion
 * callback. */
void aip_model_call_end(aip_model_call *m, aiplat_status st);
/* Start @req (copied) with the deadline of the aiplat_call. On AIPLAT_OK
 * on_answer will run once for it, and @m must not be touched by the
 * caller afterwards (another thread may own it already); on failure
 * nothing runs and @err (the handle's record from the caller's thread, the
 * call's own on the loop thread) has the detail. */
aiplat_status aip_model_call_start(aip_model_call *m, aip_err *err,
                                   const aip_http_req *req);
/* POST @body (taken over; NULL means it could not be built) as JSON to
 * @path with aip_model_call_start(). */
aiplat_status aip_model_call_post_json(aip_model_call *m, aip_err *err,
                                       const char *path, json_t *body);
/* The message for a completion callback: "" on success, else the detail of
 * m->err. */
void aip_model_call_message(aip_model_call *m, aiplat_status st, char *buf,
                            size_t buflen);
/* Parse a 2xx JSON answer (object or array) like aip_http_post_json():
 * an empty body or one that is not JSON is AIPLAT_ERR_DECODE. */
aiplat_status aip_model_json_answer(aip_model_base *b, aip_err *err,
                                    const char *path, const aip_http_resp *resp,
                                    json_t **out);

/* What every client kind's public entry points do (set_url, set_model,
 * set_api_key, set_timeout_ms, set_connect_timeout_ms, set_max_retries,
 * health, cancel, last_error): each kind defines its own functions, which
 * call these with its aip_model_base (NULL for a NULL client) and its name
 * for the error message. */
aiplat_status aip_model_api_set_url(aip_model_base *b, const char *kind,
                                    const char *url);
aiplat_status aip_model_api_set_model(aip_model_base *b, const char *kind,
                                      const char *model);
aiplat_status aip_model_api_set_api_key(aip_model_base *b, const char *kind,
                                        const char *key);
aiplat_status aip_model_api_set_knob(aip_model_base *b, const char *kind,
                                     aip_model_knob k, int64_t value);
aiplat_status aip_model_api_health(aip_model_base *b, const char *kind);
void aip_model_api_cancel(aip_model_base *b);
aiplat_status aip_model_api_last_error(aip_model_base *b, char *buf,
                                       size_t buflen);

#endif
