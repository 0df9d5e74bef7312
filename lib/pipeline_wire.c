/* Wire formats of Argo Workflows and Kubeflow Pipelines; see
 * pipeline_wire.h and docs/decisions/0012-pipeline-engines.md. */
#include "pipeline_wire.h"

#include <stdio.h>
#include <string.h>

/* ---- names --------------------------------------------------------------- */

static bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c) {
  return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

static bool set_why(const char **why, const char *reason) {
  if (why) *why = reason;
  return false;
}

/* One DNS-1123 label in [s, s + n). */
static bool dns_label(const char *s, size_t n) {
  if (n == 0 || n > 63) return false;
  if (!is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1])) return false;
  for (size_t i = 0; i < n; i++)
    if (!is_lower_alnum(s[i]) && s[i] != '-') return false;
  return true;
}

bool aip_pipe_valid_namespace(const char *s, const char **why) {
  if (!s || !*s) return set_why(why, "is empty");
  size_t n = strlen(s);
  if (n > 63) return set_why(why, "is longer than 63 bytes");
  if (!dns_label(s, n))
    return set_why(why,
                   "is not a DNS label (lowercase letters, digits and '-', "
                   "starting and ending with a letter or digit)");
  return true;
}

bool aip_pipe_valid_k8s_name(const char *s, const char **why) {
  if (!s || !*s) return set_why(why, "is empty");
  size_t n = strlen(s);
  if (n > 253) return set_why(why, "is longer than 253 bytes");
  const char *label = s;
  for (const char *p = s;; p++) {
    if (*p == '.' || *p == '\0') {
      if (!dns_label(label, (size_t)(p - label)))
        return set_why(why,
                       "is not a Kubernetes name (lowercase letters, digits, "
                       "'-' and '.', each part starting and ending with a "
                       "letter or digit)");
      if (*p == '\0') break;
      label = p + 1;
    }
  }
  return true;
}

bool aip_pipe_valid_kfp_id(const char *s, const char **why) {
  if (!s || !*s) return set_why(why, "is empty");
  size_t n = strlen(s);
  if (n > 128) return set_why(why, "is longer than 128 bytes");
  for (size_t i = 0; i < n; i++)
    if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
      return set_why(why,
                     "has a character other than letters, digits, '.', '_' "
                     "and '-'");
  if (strstr(s, "..") || strcmp(s, ".") == 0)
    return set_why(why, "contains \"..\" or is \".\"");
  return true;
}

bool aip_pipe_valid_param_key(const char *s, const char **why) {
  if (!s || !*s) return set_why(why, "is empty");
  size_t n = strlen(s);
  if (n > AIP_PIPE_MAX_KEY) return set_why(why, "is longer than 128 bytes");
  for (size_t i = 0; i < n; i++)
    if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '-')
      return set_why(why,
                     "has a character other than letters, digits, '_' and "
                     "'-'");
  return true;
}

bool aip_pipe_escape(aip_buf *b, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    char c = (char)*p;
    if (is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      if (!aip_buf_putc(b, c)) return false;
    } else {
      char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
      if (!aip_buf_append(b, e, 3)) return false;
    }
  }
  return true;
}

/* ---- requests ------------------------------------------------------------ */

static int set_new(json_t *obj, const char *key, json_t *v) {
  return v ? json_object_set_new(obj, key, v) : -1;
}

json_t *aip_pipe_argo_submit_body(const char *ns, const char *tmpl,
                                  const char *const *keys,
                                  const char *const *values, size_t n,
                                  long *bad_index) {
  if (bad_index) *bad_index = -1;
  json_t *root = json_object();
  json_t *opts = json_object();
  json_t *params = json_array();
  char *kv = NULL;
  if (!root || !opts || !params) goto fail;
  for (size_t i = 0; i < n; i++) {
    /* Argo splits "k=v" at the first '=': keys never hold one, values
     * may. */
    kv = aip_sprintf("%s=%s", keys[i], values[i]);
    if (!kv) goto fail;
    json_t *s = json_string(kv);
    free(kv);
    kv = NULL;
    if (!s) {
      if (bad_index) *bad_index = (long)i;
      goto fail;
    }
    if (json_array_append_new(params, s) != 0) goto fail;
  }
  if (set_new(root, "namespace", json_string(ns)) != 0 ||
      set_new(root, "resourceKind", json_string("WorkflowTemplate")) != 0 ||
      set_new(root, "resourceName", json_string(tmpl)) != 0)
    goto fail;
  if (n > 0) {
    if (json_object_set_new(opts, "parameters", params) != 0) {
      params = NULL;
      goto fail;
    }
  } else {
    json_decref(params);
  }
  params = NULL;
  if (json_object_set_new(root, "submitOptions", opts) != 0) {
    opts = NULL;
    goto fail;
  }
  return root;
fail:
  free(kv);
  json_decref(params);
  json_decref(opts);
  json_decref(root);
  return NULL;
}

json_t *aip_pipe_kfp_run_body(const char *display_name, const char *pipeline_id,
                              const char *const *keys,
                              const char *const *values, size_t n,
                              long *bad_index) {
  if (bad_index) *bad_index = -1;
  json_t *root = json_object();
  json_t *ref = json_object();
  json_t *cfg = json_object();
  json_t *params = json_object();
  if (!root || !ref || !cfg || !params) goto fail;
  for (size_t i = 0; i < n; i++) {
    json_t *s = json_string(values[i]);
    if (!s) {
      if (bad_index) *bad_index = (long)i;
      goto fail;
    }
    if (json_object_set_new(params, keys[i], s) != 0) goto fail;
  }
  if (set_new(root, "display_name", json_string(display_name)) != 0 ||
      (pipeline_id &&
       set_new(ref, "pipeline_id", json_string(pipeline_id)) != 0))
    goto fail;
  if (json_object_set_new(cfg, "parameters", params) != 0) {
    params = NULL;
    goto fail;
  }
  params = NULL;
  if (json_object_set_new(root, "pipeline_version_reference", ref) != 0) {
    ref = NULL;
    goto fail;
  }
  ref = NULL;
  if (json_object_set_new(root, "runtime_config", cfg) != 0) {
    cfg = NULL;
    goto fail;
  }
  return root;
fail:
  json_decref(params);
  json_decref(cfg);
  json_decref(ref);
  json_decref(root);
  return NULL;
}

bool aip_pipe_kfp_run_ref(json_t *run, const char *pipeline_id,
                          const char *version_id) {
  json_t *ref = json_object_get(run, "pipeline_version_reference");
  if (!ref || !pipeline_id) return false;
  json_object_clear(ref);
  if (set_new(ref, "pipeline_id", json_string(pipeline_id)) != 0) return false;
  return !version_id ||
         set_new(ref, "pipeline_version_id", json_string(version_id)) == 0;
}

json_t *aip_pipe_kfp_version_filter(const char *version_name) {
  return json_pack("{s:[{s:s, s:s, s:s}]}", "predicates", "key", "name",
                   "operation", "EQUALS", "string_value", version_name);
}

/* ---- text ---------------------------------------------------------------- */

/* Space, or a control character (which becomes a space). */
static bool blank(char c) {
  return (unsigned char)c <= ' ' || c == 0x7F;
}

/* Copy @s into @out (size @outlen): control characters become spaces,
 * surrounding space is trimmed, a cut never splits a UTF-8 sequence. */
static void copy_text(char *out, size_t outlen, const char *s, size_t n) {
  if (!out || outlen == 0) return;
  while (n > 0 && blank(*s)) s++, n--;
  while (n > 0 && blank(s[n - 1])) n--;
  if (n > outlen - 1) {
    n = outlen - 1;
    /* back off over continuation bytes to a character's start */
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    while (n > 0 && blank(s[n - 1])) n--; /* the cut may end in space */
  }
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    out[i] = (c < 0x20 || c == 0x7F) ? ' ' : (char)c;
  }
  out[n] = '\0';
}

static const char *str_at(json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

static json_t *parse_object(aip_err *err, const char *engine, const char *what,
                            const char *body, size_t len) {
  json_error_t je;
  json_t *root = body ? json_loadb(body, len, 0, &je) : NULL;
  if (!root) {
    aip_fail(err, AIPLAT_ERR_PROTOCOL, "%s: the %s answer is not JSON (%s)",
             engine, what, body ? je.text : "empty body");
    return NULL;
  }
  if (!json_is_object(root)) {
    json_decref(root);
    aip_fail(err, AIPLAT_ERR_PROTOCOL, "%s: the %s answer is not a JSON object",
             engine, what);
    return NULL;
  }
  return root;
}

/* ---- answers ------------------------------------------------------------- */

/* Every phase as each engine spells it, and whether the engine sends that
 * name: the one table both the parsers here and the names published for
 * a run (aiplat_pipeline_phase_engine_str) read. Argo has no name for a
 * phase it never reaches; those spellings follow its style. Kubeflow has
 * no ERROR: an engine failure is FAILED there. */
static const struct {
  const char *argo, *kfp;
  bool argo_sent, kfp_sent;
} phase_names[] = {
    [AIPLAT_PIPELINE_UNKNOWN] = {"", "RUNTIME_STATE_UNSPECIFIED", false, false},
    [AIPLAT_PIPELINE_PENDING] = {"Pending", "PENDING", true, true},
    [AIPLAT_PIPELINE_RUNNING] = {"Running", "RUNNING", true, true},
    [AIPLAT_PIPELINE_SUCCEEDED] = {"Succeeded", "SUCCEEDED", true, true},
    [AIPLAT_PIPELINE_FAILED] = {"Failed", "FAILED", true, true},
    [AIPLAT_PIPELINE_ERROR] = {"Error", "FAILED", true, false},
    [AIPLAT_PIPELINE_CANCELLED] = {"Cancelled", "CANCELED", false, true},
    [AIPLAT_PIPELINE_SKIPPED] = {"Skipped", "SKIPPED", false, true},
    [AIPLAT_PIPELINE_CANCELLING] = {"Cancelling", "CANCELING", false, true},
    [AIPLAT_PIPELINE_PAUSED] = {"Paused", "PAUSED", false, true}};

aiplat_pipeline_phase aip_pipe_argo_phase(const char *phase) {
  if (!phase || !*phase) return AIPLAT_PIPELINE_PENDING; /* not seen yet */
  for (size_t i = 0; i < AIP_ARRAY_LEN(phase_names); i++)
    if (phase_names[i].argo_sent && strcmp(phase, phase_names[i].argo) == 0)
      return (aiplat_pipeline_phase)i;
  return AIPLAT_PIPELINE_UNKNOWN;
}

aiplat_pipeline_phase aip_pipe_kfp_state(const char *state) {
  if (!state) return AIPLAT_PIPELINE_UNKNOWN;
  for (size_t i = 0; i < AIP_ARRAY_LEN(phase_names); i++)
    if (phase_names[i].kfp_sent && strcmp(state, phase_names[i].kfp) == 0)
      return (aiplat_pipeline_phase)i;
  return AIPLAT_PIPELINE_UNKNOWN;
}

AIPLAT_API const char *aiplat_pipeline_phase_engine_str(aiplat_pipeline_engine engine,
                                             aiplat_pipeline_phase phase) {
  if ((unsigned)phase >= AIP_ARRAY_LEN(phase_names))
    phase = AIPLAT_PIPELINE_UNKNOWN;
  if (engine == AIPLAT_PIPELINE_ARGO) return phase_names[phase].argo;
  if (engine == AIPLAT_PIPELINE_KUBEFLOW) return phase_names[phase].kfp;
  return NULL;
}

/* protojson writes enum names; a server set to write numbers sends the
 * RuntimeState value (run.proto). */
static aiplat_pipeline_phase kfp_state_number(json_int_t v) {
  static const aiplat_pipeline_phase map[] = {
      AIPLAT_PIPELINE_UNKNOWN,    AIPLAT_PIPELINE_PENDING,
      AIPLAT_PIPELINE_RUNNING,    AIPLAT_PIPELINE_SUCCEEDED,
      AIPLAT_PIPELINE_SKIPPED,    AIPLAT_PIPELINE_FAILED,
      AIPLAT_PIPELINE_CANCELLING, AIPLAT_PIPELINE_CANCELLED,
      AIPLAT_PIPELINE_PAUSED};
  return (v >= 0 && v < (json_int_t)AIP_ARRAY_LEN(map))
             ? map[v]
             : AIPLAT_PIPELINE_UNKNOWN;
}

static aiplat_status copy_id(aip_err *err, const char *engine, const char *what,
                             const char *v, char *out, size_t outlen) {
  if (!out) return AIPLAT_OK;
  if (strlen(v) >= outlen)
    return aip_fail(err, AIPLAT_ERR_PROTOCOL, "%s: the %s is too long", engine,
                    what);
  memcpy(out, v, strlen(v) + 1);
  return AIPLAT_OK;
}

aiplat_status aip_pipe_argo_parse_workflow(aip_err *err, const char *body,
                                           size_t len, char *name,
                                           size_t namelen,
                                           aiplat_pipeline_phase *phase,
                                           char *msg, size_t msglen) {
  json_t *root = parse_object(err, "argo", "workflow", body, len);
  if (!root) return AIPLAT_ERR_PROTOCOL;
  aiplat_status rc = AIPLAT_OK;
  json_t *meta = json_object_get(root, "metadata");
  const char *n = str_at(meta, "name");
  if (!n || !aip_pipe_valid_k8s_name(n, NULL)) {
    rc = aip_fail(err, AIPLAT_ERR_PROTOCOL,
                  "argo: the workflow answer has no valid metadata.name");
    goto out;
  }
  rc = copy_id(err, "argo", "workflow name", n, name, namelen);
  if (rc != AIPLAT_OK) goto out;
  json_t *status = json_object_get(root, "status");
  if (status && !json_is_object(status) && !json_is_null(status)) {
    rc = aip_fail(err, AIPLAT_ERR_PROTOCOL,
                  "argo: the workflow's status is not an object");
    goto out;
  }
  json_t *ph = json_object_get(status, "phase");
  if (ph && !json_is_string(ph) && !json_is_null(ph)) {
    rc = aip_fail(err, AIPLAT_ERR_PROTOCOL,
                  "argo: the workflow's status.phase is not a string");
    goto out;
  }
  if (phase)
    *phase =
        aip_pipe_argo_phase(json_is_string(ph) ? json_string_value(ph) : NULL);
  const char *m = str_at(status, "message");
  if (msg && msglen) copy_text(msg, msglen, m ? m : "", m ? strlen(m) : 0);
out:
  json_decref(root);
  return rc;
}

aiplat_status aip_pipe_kfp_parse_pipeline(aip_err *err, const char *body,
                                          size_t len, char *id, size_t idlen) {
  json_t *root = parse_object(err, "kubeflow", "pipeline", body, len);
  if (!root) return AIPLAT_ERR_PROTOCOL;
  aiplat_status rc;
  const char *v = str_at(root, "pipeline_id");
  if (!v) v = str_at(root, "pipelineId");
  if (!v || !aip_pipe_valid_kfp_id(v, NULL))
    rc = aip_fail(err, AIPLAT_ERR_PROTOCOL,
                  "kubeflow: the pipeline answer has no valid pipeline_id");
  else
    rc = copy_id(err, "kubeflow", "pipeline id", v, id, idlen);
  json_decref(root);
  return rc;
}

aiplat_status aip_pipe_kfp_parse_versions(aip_err *err, const char *body,
                                          size_t len, const char *pipeline,
                                          const char *version, char *id,
                                          size_t idlen) {
  json_t *root = parse_object(err, "kubeflow", "pipeline version list", body,
                              len);
  if (!root) return AIPLAT_ERR_PROTOCOL;
  json_t *list = json_object_get(root, "pipeline_versions");
  if (!list) list = json_object_get(root, "pipelineVersions");
  aiplat_status rc = AIPLAT_OK;
  if (list && !json_is_array(list)) {
    rc = aip_fail(err, AIPLAT_ERR_PROTOCOL,
                  "kubeflow: pipeline_versions is not an array");
    goto out;
  }
  /* The filter asked for the name; checking it again keeps a server that
   * ignores the filter from running some other version. protojson omits an
   * empty list, so no key at all is "none". */
  size_t i;
  json_t *v;
  json_array_foreach(list, i, v) {
    const char *name = str_at(v, "name");
    if (!name || !*name) name = str_at(v, "display_name");
    if (!name || !*name) name = str_at(v, "displayName");
    if (!name || strcmp(name, version) != 0) continue;
    const char *vid = str_at(v, "pipeline_version_id");
    if (!vid) vid = str_at(v, "pipelineVersionId");
    if (!vid || !aip_pipe_valid_kfp_id(vid, NULL))
      rc = aip_fail(err, AIPLAT_ERR_PROTOCOL,
                    "kubeflow: pipeline version \"%s\" has no valid "
                    "pipeline_version_id",
                    version);
    else
      rc = copy_id(err, "kubeflow", "pipeline version id", vid, id, idlen);
    goto out;
  }
  rc = aip_fail(err, AIPLAT_ERR_NOT_FOUND,
                "kubeflow: pipeline \"%s\" has no version named \"%s\"",
                pipeline, version);
out:
  json_decref(root);
  return rc;
}

aiplat_status aip_pipe_kfp_parse_version(aip_err *err, const char *body,
                                         size_t len, const char *pipeline_id,
                                         char *id, size_t idlen) {
  json_t *root = parse_object(err, "kubeflow", "pipeline version", body, len);
  if (!root) return AIPLAT_ERR_PROTOCOL;
  aiplat_status rc;
  const char *vid = str_at(root, "pipeline_version_id");
  if (!vid) vid = str_at(root, "pipelineVersionId");
  const char *pid = str_at(root, "pipeline_id");
  if (!pid) pid = str_at(root, "pipelineId");
  if (!vid || !aip_pipe_valid_kfp_id(vid, NULL))
    rc = aip_fail(err, AIPLAT_ERR_PROTOCOL,
                  "kubeflow: the pipeline version answer has no valid "
                  "pipeline_version_id");
  else if (pid && strcmp(pid, pipeline_id) != 0)
    rc = aip_fail(err, AIPLAT_ERR_PROTOCOL,
                  "kubeflow: pipeline version %s belongs to pipeline %s, not %s",
                  vid, pid, pipeline_id);
  else
    rc = copy_id(err, "kubeflow", "pipeline version id", vid, id, idlen);
  json_decref(root);
  return rc;
}

/* The message of a google.rpc.Status object, or NULL. */
static const char *status_message(json_t *st) {
  const char *m = str_at(st, "message");
  return (m && *m) ? m : NULL;
}

aiplat_status aip_pipe_kfp_parse_run(aip_err *err, const char *body, size_t len,
                                     char *run_id, size_t run_id_len,
                                     aiplat_pipeline_phase *phase, char *msg,
                                     size_t msglen) {
  json_t *root = parse_object(err, "kubeflow", "run", body, len);
  if (!root) return AIPLAT_ERR_PROTOCOL;
  aiplat_status rc = AIPLAT_OK;
  const char *id = str_at(root, "run_id");
  if (!id) id = str_at(root, "runId");
  if (!id || !aip_pipe_valid_kfp_id(id, NULL)) {
    rc = aip_fail(err, AIPLAT_ERR_PROTOCOL,
                  "kubeflow: the run answer has no valid run_id");
    goto out;
  }
  rc = copy_id(err, "kubeflow", "run id", id, run_id, run_id_len);
  if (rc != AIPLAT_OK) goto out;
  /* protojson omits a zero enum: no "state" is RUNTIME_STATE_UNSPECIFIED */
  json_t *st = json_object_get(root, "state");
  aiplat_pipeline_phase ph = AIPLAT_PIPELINE_UNKNOWN;
  if (json_is_string(st))
    ph = aip_pipe_kfp_state(json_string_value(st));
  else if (json_is_integer(st))
    ph = kfp_state_number(json_integer_value(st));
  else if (st && !json_is_null(st)) {
    rc = aip_fail(err, AIPLAT_ERR_PROTOCOL,
                  "kubeflow: the run's state is neither a name nor a number");
    goto out;
  }
  if (phase) *phase = ph;
  const char *m = status_message(json_object_get(root, "error"));
  json_t *hist = json_object_get(root, "state_history");
  if (!hist) hist = json_object_get(root, "stateHistory");
  if (!m && json_is_array(hist) && json_array_size(hist) > 0)
    m = status_message(json_object_get(
        json_array_get(hist, json_array_size(hist) - 1), "error"));
  if (msg && msglen) copy_text(msg, msglen, m ? m : "", m ? strlen(m) : 0);
out:
  json_decref(root);
  return rc;
}

/* ---- errors -------------------------------------------------------------- */

bool aip_pipe_error_message(const char *body, size_t len, char *out,
                            size_t outlen, int *code_out) {
  if (code_out) *code_out = -1;
  if (out && outlen) out[0] = '\0';
  if (!body || len == 0) return false;
  json_t *root = json_loadb(body, len, JSON_DECODE_ANY, NULL);
  const char *m = NULL;
  if (json_is_object(root)) {
    json_t *code = json_object_get(root, "code");
    if (json_is_integer(code) && code_out)
      *code_out = (int)json_integer_value(code);
    m = status_message(root);
    if (!m) m = str_at(root, "error");
    if (!m) m = str_at(root, "error_message");
    if (!m) {
      json_t *d = json_object_get(root, "details");
      if (json_is_array(d) && json_array_size(d) > 0)
        m = status_message(json_array_get(d, 0));
    }
    if (m && *m) copy_text(out, outlen, m, strlen(m));
  } else if (json_is_string(root)) {
    m = json_string_value(root);
    copy_text(out, outlen, m, strlen(m));
  } else if (!root) {
    /* plain text (a proxy's "RBAC: access denied", "Bad Gateway") */
    copy_text(out, outlen, body, len);
  }
  json_decref(root);
  return out && outlen && out[0] != '\0';
}

aiplat_status aip_pipe_status_for_http(long s) {
  switch (s) {
    case 400:
      return AIPLAT_ERR_BAD_REQUEST;
    case 401:
    case 403:
      return AIPLAT_ERR_AUTH;
    case 404:
      return AIPLAT_ERR_NOT_FOUND;
    case 408:
    case 504:
      return AIPLAT_ERR_TIMEOUT;
    case 409:
      return AIPLAT_ERR_EXISTS;
    case 413:
      return AIPLAT_ERR_TOO_LARGE;
    case 429:
      return AIPLAT_ERR_RATE_LIMITED;
    case 501:
      return AIPLAT_ERR_NOT_SUPPORTED;
    case 503:
      return AIPLAT_ERR_UNAVAILABLE;
    default:
      break;
  }
  if (s >= 200 && s < 300) return AIPLAT_OK;
  if (s >= 500 && s < 600) return AIPLAT_ERR_SERVER;
  if (s >= 400 && s < 500) return AIPLAT_ERR_BAD_REQUEST;
  return AIPLAT_ERR_PROTOCOL;
}
