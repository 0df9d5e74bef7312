/* Shared parts of the model clients (see model_common.h). */
#include "model_common.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"

aiplat_status aip_model_base_init(aip_model_base *b, const char *component,
                                  aiplat_config *cfg, const char *url_var,
                                  const char *key_var, const char *model_var,
                                  const char *timeout_var) {
  memset(b, 0, sizeof *b);
  aip_err_init(&b->err);
  pthread_mutex_init(&b->mu, NULL);
  b->component = component;
  aiplat_status st = aip_global_ref();
  if (st != AIPLAT_OK) goto fail;
  b->global_ref = true;
  if (!(b->http = aip_http_new(component))) {
    st = aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "%s: out of memory", component);
    goto fail;
  }
  st = aip_http_configure(b->http, NULL, cfg, url_var, key_var, timeout_var);
  if (st != AIPLAT_OK) goto fail;
  if (model_var) {
    aiplat_config *own = NULL;
    aiplat_config *c = aip_model_cfg_begin(cfg, &own);
    const char *model = NULL;
    if (!c) {
      st = aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "%s: out of memory", component);
      goto fail;
    }
    st = aiplat_config_get_string(c, model_var, &model);
    if (st != AIPLAT_OK) {
      aip_model_cfg_fail(b, c, st);
    } else if (!model || !*model) {
      st = aip_fail(NULL, AIPLAT_ERR_CONFIG, "%s: %s is not set", component,
                    model_var);
    } else {
      st = aip_model_base_set_model(b, model);
    }
    aip_model_cfg_end(own);
    if (st != AIPLAT_OK) goto fail;
  }
  return AIPLAT_OK;
fail:
  aip_model_base_destroy(b);
  return st;
}

void aip_model_base_destroy(aip_model_base *b) {
  aip_http_free(b->http);
  b->http = NULL;
  free(b->model);
  b->model = NULL;
  pthread_mutex_destroy(&b->mu);
  aip_err_destroy(&b->err);
  if (b->global_ref) aip_global_unref();
  b->global_ref = false;
}

char *aip_model_base_model(aip_model_base *b) {
  pthread_mutex_lock(&b->mu);
  char *m = aip_strdup(b->model);
  pthread_mutex_unlock(&b->mu);
  return m;
}

aiplat_status aip_model_base_set_model(aip_model_base *b, const char *model) {
  if (!model || !*model)
    return aip_fail(&b->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "%s: empty model name", b->component);
  char *copy = aip_strdup(model);
  if (!copy)
    return aip_fail(&b->err, AIPLAT_ERR_NO_MEMORY, "%s: out of memory",
                    b->component);
  pthread_mutex_lock(&b->mu);
  free(b->model);
  b->model = copy;
  pthread_mutex_unlock(&b->mu);
  return AIPLAT_OK;
}

aiplat_status aip_model_base_set(aip_model_base *b, aip_model_knob k,
                                 int64_t value) {
  aip_http_settings s;
  aip_http_get_settings(b->http, &s);
  switch (k) {
    case AIP_KNOB_TIMEOUT:
      s.timeout_ms = value;
      break;
    case AIP_KNOB_CONNECT_TIMEOUT:
      s.connect_timeout_ms = value;
      break;
    case AIP_KNOB_IDLE_TIMEOUT:
      s.idle_timeout_ms = value;
      break;
    case AIP_KNOB_RETRIES:
      s.max_retries = value < 0 || value > 100 ? -1 : (int)value;
      break;
  }
  return aip_http_set_settings(b->http, &b->err, &s);
}

aiplat_config *aip_model_cfg_begin(aiplat_config *cfg, aiplat_config **own) {
  *own = NULL;
  if (cfg) return cfg;
  if (aiplat_config_create(own) != AIPLAT_OK) return NULL;
  return *own;
}

void aip_model_cfg_end(aiplat_config *own) {
  aiplat_config_destroy(own);
}

aiplat_status aip_model_cfg_fail(aip_model_base *b, aiplat_config *cfg,
                                 aiplat_status st) {
  char msg[AIP_ERRMSG_MAX];
  aiplat_config_last_error(cfg, msg, sizeof msg);
  return aip_fail(&b->err, st, "%s: %s", b->component, msg);
}

const char *aip_json_str(json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

aiplat_status aip_json_add_str(aip_model_base *b, json_t *obj, const char *key,
                               const char *value, const char *what) {
  json_t *s = json_string(value);
  if (!s)
    return aip_fail(&b->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "%s: %s is not valid UTF-8", b->component, what);
  if (json_object_set_new(obj, key, s) != 0)
    return aip_fail(&b->err, AIPLAT_ERR_NO_MEMORY, "%s: out of memory",
                    b->component);
  return AIPLAT_OK;
}
