/* The NATS bus: settings, connection, events, publish, request, flush,
 * drain, and the mapping of nats.c statuses. See ADR 0006. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus_internal.h"
#include "subject_internal.h"
#include "otel.h"

/* Spins of nats.c's mutexes before they sleep (see aiplat_bus_create). */
#define NATS_LOCK_SPIN 0

/* The bus whose event callback runs on this thread, if any. */
static _Thread_local aiplat_bus *tls_event_bus;

/* ---- status mapping ----------------------------------------------------- */

static aiplat_status map_js_error(int jerr) {
  switch (jerr) {
    case JSStreamNotFoundErr:
    case JSConsumerNotFoundErr:
    case JSStreamTemplateNotFoundErr:
    case JSSequenceNotFoundErr:
      return AIPLAT_ERR_NOT_FOUND;
    case JSStreamNameExistErr:
    case JSConsumerNameExistErr:
    case JSConsumerExistingActiveErr:
      return AIPLAT_ERR_EXISTS;
    case JSNotEnabledErr:
    case JSNotEnabledForAccountErr:
      return AIPLAT_ERR_NOT_SUPPORTED;
    case JSStreamWrongLastSequenceErr:
      return AIPLAT_ERR_STATE;
    default:
      return jerr >= 10000 ? AIPLAT_ERR_BAD_REQUEST : AIPLAT_ERR_SERVER;
  }
}

static aiplat_status map_nats(natsStatus s, int jerr) {
  switch (s) {
    case NATS_OK:
    case NATS_NOT_YET_CONNECTED:
      return AIPLAT_OK;
    case NATS_ERR:
      return jerr ? map_js_error(jerr) : AIPLAT_ERR_SERVER;
    case NATS_PROTOCOL_ERROR:
    case NATS_LINE_TOO_LONG:
    case NATS_MISMATCH:
    case NATS_MISSED_HEARTBEAT:
      return AIPLAT_ERR_PROTOCOL;
    case NATS_IO_ERROR:
    case NATS_NO_SERVER:
    case NATS_STALE_CONNECTION:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_SSL_ERROR:
      return AIPLAT_ERR_CONNECTION;
    case NATS_CONNECTION_CLOSED:
    case NATS_DRAINING:
      return AIPLAT_ERR_CLOSED;
    case NATS_SECURE_CONNECTION_WANTED:
    case NATS_SECURE_CONNECTION_REQUIRED:
    case NATS_ADDRESS_MISSING:
      return AIPLAT_ERR_CONFIG;
    case NATS_CONNECTION_AUTH_FAILED:
    case NATS_NOT_PERMITTED:
      return AIPLAT_ERR_AUTH;
    case NATS_NOT_FOUND:
      return AIPLAT_ERR_NOT_FOUND;
    case NATS_INVALID_SUBJECT:
    case NATS_INVALID_ARG:
    case NATS_INVALID_TIMEOUT:
    case NATS_INVALID_QUEUE_NAME:
      return AIPLAT_ERR_INVALID_ARGUMENT;
    case NATS_INVALID_SUBSCRIPTION:
    case NATS_ILLEGAL_STATE:
    case NATS_NOT_INITIALIZED:
      return AIPLAT_ERR_STATE;
    case NATS_SLOW_CONSUMER:
    case NATS_MAX_PAYLOAD:
    case NATS_MAX_DELIVERED_MSGS:
      return AIPLAT_ERR_TOO_LARGE;
    case NATS_INSUFFICIENT_BUFFER:
    case NATS_NO_RESPONDERS:
      return AIPLAT_ERR_UNAVAILABLE;
    case NATS_NO_MEMORY:
      return AIPLAT_ERR_NO_MEMORY;
    case NATS_TIMEOUT:
      return AIPLAT_ERR_TIMEOUT;
    case NATS_NO_SERVER_SUPPORT:
      return AIPLAT_ERR_NOT_SUPPORTED;
    default:
      return AIPLAT_ERR_INTERNAL;
  }
}

aiplat_status aip_bus_fail_nats(aip_err *e, natsStatus s, int jerr,
                                const char *what) {
  natsStatus last = NATS_OK;
  const char *txt = nats_GetLastError(&last);
  /* The thread's nats.c error text belongs to this status only when the
   * status matches; some paths return without setting it. */
  if (last != s || !txt || !*txt) txt = natsStatus_GetText(s);
  /* nats.c prefixes "(file.c:line): "; keep only the message. */
  if (txt[0] == '(') {
    const char *end = strstr(txt, "): ");
    if (end && end - txt < 48) txt = end + 3;
  }
  aiplat_status st = map_nats(s, jerr);
  if (st == AIPLAT_OK) st = AIPLAT_ERR_INTERNAL;
  if (jerr)
    return aip_fail(e, st, "%s: %s (JetStream error %d)", what, txt, jerr);
  return aip_fail(e, st, "%s: %s", what, txt);
}

/* ---- references ---------------------------------------------------------- */

void aip_bus_ref(aiplat_bus *bus) {
  atomic_fetch_add(&bus->refs, 1);
}

static void bus_free(aiplat_bus *bus) {
  /* The connection is closed and its CLOSED callback has run (close waits
   * for it), so no nats.c thread holds this bus any more. */
  if (bus->js) jsCtx_Destroy(bus->js);
  for (size_t i = 0; i < bus->n_parked; i++)
    natsSubscription_Destroy(bus->parked[i]);
  free(bus->parked);
  if (bus->nc) natsConnection_Destroy(bus->nc);
  natsOptions_Destroy(bus->opts);
  free(bus->servers_log);
  explicit_bzero(bus->nkey_seed, sizeof bus->nkey_seed);
  aip_err_destroy(&bus->err);
  pthread_cond_destroy(&bus->cond);
  pthread_mutex_destroy(&bus->mu);
  free(bus);
  aip_global_unref();
}

void aip_bus_unref(aiplat_bus *bus) {
  if (atomic_fetch_sub(&bus->refs, 1) == 1) bus_free(bus);
}

natsConnection *aip_bus_conn(aiplat_bus *bus) {
  if (!bus) return NULL;
  pthread_mutex_lock(&bus->mu);
  natsConnection *nc = bus->nc;
  pthread_mutex_unlock(&bus->mu);
  return nc;
}

jsCtx *aip_bus_js(aiplat_bus *bus) {
  if (!bus) return NULL;
  pthread_mutex_lock(&bus->mu);
  jsCtx *js = bus->js;
  pthread_mutex_unlock(&bus->mu);
  return js;
}

natsConnection *aip_bus_open_conn(aiplat_bus *bus, aip_err *e,
                                  const char *what) {
  pthread_mutex_lock(&bus->mu);
  aip_bus_state state = bus->state;
  natsConnection *nc = bus->nc;
  pthread_mutex_unlock(&bus->mu);
  if (state == AIP_BUS_OPEN && nc) return nc;
  if (state == AIP_BUS_CLOSED)
    aip_fail(e, AIPLAT_ERR_CLOSED, "%s: the bus is closed", what);
  else
    aip_fail(e, AIPLAT_ERR_STATE,
             "%s: the bus is not connected (call aiplat_bus_connect first)",
             what);
  return NULL;
}

void aip_bus_release_nsub(aiplat_bus *bus, natsSubscription *ns) {
  if (!ns) return;
  /* nats.c 3.4.1's read loop looks a subscription up and then uses it
   * without a reference: destroying it while a message for it is being
   * read can crash (fixed in 3.6.1). The subscription is out of the
   * connection's table already; a PING/PONG round trip, read by the same
   * read loop, proves that loop is past any message for it. A closed
   * connection has joined its read loop. Otherwise keep it until the bus is
   * released. */
  natsConnection *nc = bus->nc;
  bool safe = !nc || natsConnection_IsClosed(nc) ||
              natsConnection_FlushTimeout(nc, 2000) == NATS_OK ||
              natsConnection_IsClosed(nc);
  if (safe) {
    natsSubscription_Destroy(ns);
    return;
  }
  pthread_mutex_lock(&bus->mu);
  if (bus->n_parked == bus->cap_parked) {
    size_t cap = bus->cap_parked ? bus->cap_parked * 2 : 8;
    natsSubscription **p = realloc(bus->parked, cap * sizeof *p);
    if (p) {
      bus->parked = p;
      bus->cap_parked = cap;
    }
  }
  if (bus->n_parked < bus->cap_parked) {
    bus->parked[bus->n_parked++] = ns;
    ns = NULL;
  }
  pthread_mutex_unlock(&bus->mu);
  /* Out of memory for the list: leak it rather than risk the crash. */
  if (ns)
    aip_log_kv(AIPLAT_LOG_WARNING, "bus: a subscription object was leaked",
               NULL);
}

/* ---- events ----------------------------------------------------------------
 */

static void emit(aiplat_bus *bus, aiplat_bus_event ev, aiplat_status st,
                 const char *detail) {
  if (!bus->event_fn) return;
  tls_event_bus = bus;
  bus->event_fn(bus, ev, st, detail, bus->event_ud);
  tls_event_bus = NULL;
}

static void connected_url(natsConnection *nc, char *buf, size_t n) {
  buf[0] = '\0';
  if (natsConnection_GetConnectedUrl(nc, buf, n) != NATS_OK) buf[0] = '\0';
}

static void on_connected(natsConnection *nc, void *closure) {
  aiplat_bus *bus = closure;
  char url[256];
  connected_url(nc, url, sizeof url);
  aip_log_kv(AIPLAT_LOG_INFO, "nats connected", "url", url, NULL);
  emit(bus, AIPLAT_BUS_EVENT_CONNECTED, AIPLAT_OK, "connected");
}

static void on_disconnected(natsConnection *nc, void *closure) {
  aiplat_bus *bus = closure;
  if (natsConnection_IsClosed(nc) || natsConnection_IsDraining(nc))
    aip_log_kv(AIPLAT_LOG_INFO, "nats disconnected (closing)", NULL);
  else
    aip_log_kv(AIPLAT_LOG_WARNING, "nats disconnected, reconnecting", "servers",
               bus->servers_log, NULL);
  emit(bus, AIPLAT_BUS_EVENT_DISCONNECTED, AIPLAT_OK, "disconnected");
}

static void on_reconnected(natsConnection *nc, void *closure) {
  aiplat_bus *bus = closure;
  atomic_fetch_add(&bus->reconnects, 1);
  char url[256];
  connected_url(nc, url, sizeof url);
  aip_log_kv(AIPLAT_LOG_INFO, "nats reconnected", "url", url, NULL);
  emit(bus, AIPLAT_BUS_EVENT_RECONNECTED, AIPLAT_OK, "reconnected");
}

static void on_lame_duck(natsConnection *nc, void *closure) {
  (void)nc;
  aiplat_bus *bus = closure;
  aip_log_kv(AIPLAT_LOG_WARNING, "nats server entered lame duck mode", NULL);
  emit(bus, AIPLAT_BUS_EVENT_LAME_DUCK, AIPLAT_OK,
       "the server is shutting down (lame duck mode)");
}

static void on_closed(natsConnection *nc, void *closure) {
  aiplat_bus *bus = closure;
  const char *why = NULL;
  natsStatus last = natsConnection_GetLastError(nc, &why);
  if (last != NATS_OK && why && *why)
    aip_log_kv(AIPLAT_LOG_WARNING, "nats connection closed", "error", why,
               NULL);
  else
    aip_log_kv(AIPLAT_LOG_INFO, "nats connection closed", NULL);
  emit(bus, AIPLAT_BUS_EVENT_CLOSED, AIPLAT_OK, "closed");
  /* Nothing may touch the bus after this: close() may free it next. */
  pthread_mutex_lock(&bus->mu);
  bus->state = AIP_BUS_CLOSED;
  bus->closed_done = true;
  pthread_cond_broadcast(&bus->cond);
  pthread_mutex_unlock(&bus->mu);
}

static void on_async_error(natsConnection *nc, natsSubscription *sub,
                           natsStatus err, void *closure) {
  /* `sub` may already be freed in nats.c 3.4.1 (fixed upstream later):
   * never touch it. */
  (void)nc;
  (void)sub;
  aiplat_bus *bus = closure;
  atomic_fetch_add(&bus->async_errors, 1);
  natsStatus last = NATS_OK;
  const char *txt = nats_GetLastError(&last);
  char detail[512];
  if (err == NATS_SLOW_CONSUMER)
    snprintf(detail, sizeof detail,
             "slow consumer: a subscription's pending limit was reached and "
             "messages were dropped");
  else
    snprintf(detail, sizeof detail, "%s",
             last == err && txt && *txt ? txt : natsStatus_GetText(err));
  aip_log_kv(AIPLAT_LOG_ERROR, "nats asynchronous error", "error", detail,
             NULL);
  emit(bus, AIPLAT_BUS_EVENT_ERROR, map_nats(err, 0), detail);
}

/* ---- settings
 * ---------------------------------------------------------------- */

static bool nats_ok(natsStatus s) {
  return s == NATS_OK;
}

/* Prefix the thread's last message (from the config) with "bus: ". */
static aiplat_status cfg_fail(aiplat_status st) {
  char m[AIP_ERRMSG_MAX];
  snprintf(m, sizeof m, "%s", aip_thread_errmsg());
  return aip_fail(NULL, st, "bus: %s", m);
}

/* Copy @url with any user:password@ removed, for logs. */
static void redact_url(aip_buf *b, const char *url, size_t len) {
  const char *sep = NULL;
  for (size_t i = 0; i + 2 < len; i++)
    if (url[i] == ':' && url[i + 1] == '/' && url[i + 2] == '/') {
      sep = url + i + 3;
      break;
    }
  const char *host = sep ? sep : url;
  const char *at = NULL;
  for (const char *q = host; q < url + len && *q != '/'; q++)
    if (*q == '@') at = q;
  if (at) {
    aip_buf_append(b, url, (size_t)(host - url));
    aip_buf_puts(b, "[REDACTED]@");
    aip_buf_append(b, at + 1, (size_t)(url + len - at - 1));
  } else {
    aip_buf_append(b, url, len);
  }
}

static bool has_scheme(const char *u, size_t len, const char *scheme) {
  size_t n = strlen(scheme);
  return len > n + 3 && strncmp(u, scheme, n) == 0 &&
         strncmp(u + n, "://", 3) == 0;
}

/* Split NATS_URL into servers; check each. */
static aiplat_status set_servers(aiplat_bus *bus, const char *urls) {
  size_t count = 0, cap = 4;
  char **list = calloc(cap, sizeof *list);
  aip_buf logb = {0};
  aiplat_status st = AIPLAT_OK;
  bool any_tls = false;
  if (!list) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "bus: out of memory");
  const char *p = urls;
  for (size_t index = 0; p; index++) {
    while (*p == ' ' || *p == '\t') p++;
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
    const char *why = NULL;
    if (len == 0) why = "is empty";
    for (size_t i = 0; !why && i < len; i++)
      if ((unsigned char)p[i] <= ' ' || p[i] == 0x7f)
        why = "contains whitespace or control characters";
    if (!why && memmem(p, len, "://", 3)) {
      if (has_scheme(p, len, "tls"))
        any_tls = true;
      else if (!has_scheme(p, len, "nats"))
        why =
            "has an unsupported scheme (nats:// or tls://; nats.c 3.4.1 "
            "has no websocket)";
    }
    if (why) {
      aip_buf shown = {0};
      redact_url(&shown, p, len);
      st =
          aip_fail(NULL, AIPLAT_ERR_CONFIG, "bus: NATS_URL: server %zu (%s) %s",
                   index + 1, shown.data ? shown.data : "", why);
      aip_buf_free(&shown);
      goto out;
    }
    if (count == cap) {
      char **nl = realloc(list, 2 * cap * sizeof *nl);
      if (!nl) {
        st = aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "bus: out of memory");
        goto out;
      }
      list = nl;
      cap *= 2;
    }
    if (!(list[count] = aip_strndup(p, len))) {
      st = aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "bus: out of memory");
      goto out;
    }
    count++;
    if (logb.len) aip_buf_putc(&logb, ',');
    redact_url(&logb, p, len);
    p = comma ? comma + 1 : NULL;
  }
  if (count > INT_MAX || !nats_ok(natsOptions_SetServers(
                             bus->opts, (const char **)list, (int)count))) {
    st = aip_fail(NULL, AIPLAT_ERR_CONFIG,
                  "bus: NATS_URL: the NATS client refused the list (%s)",
                  logb.data ? logb.data : "");
    goto out;
  }
  if (any_tls && !nats_ok(natsOptions_SetSecure(bus->opts, true)))
    st = aip_fail(NULL, AIPLAT_ERR_CONFIG,
                  "bus: TLS is not available in this NATS client");
  bus->servers_log = aip_buf_steal(&logb, NULL);
out:
  aip_buf_free(&logb);
  for (size_t i = 0; i < count; i++) free(list[i]);
  free(list);
  return st;
}

static aiplat_status readable(const char *var, const char *path) {
  if (access(path, R_OK) != 0)
    return aip_fail(NULL, AIPLAT_ERR_CONFIG, "bus: %s: cannot read %s: %s", var,
                    path, strerror(errno));
  return AIPLAT_OK;
}

/* nats.c asks us to sign the server's nonce with the nkey seed. */
static natsStatus sign_nonce(char **custom_err, unsigned char **sig,
                             int *sig_len, const char *nonce, void *closure) {
  (void)custom_err;
  return nats_Sign((const char *)closure, nonce, sig, sig_len);
}

static aiplat_status set_auth(aiplat_bus *bus, aiplat_config *cfg) {
  const char *creds = NULL, *seed = NULL, *token = NULL, *user = NULL,
             *pass = NULL;
  aiplat_status st;
  if ((st = aiplat_config_get_string(cfg, "NATS_CREDS", &creds)) ||
      (st = aiplat_config_get_string(cfg, "NATS_NKEY_SEED", &seed)) ||
      (st = aiplat_config_get_string(cfg, "NATS_TOKEN", &token)) ||
      (st = aiplat_config_get_string(cfg, "NATS_USER", &user)) ||
      (st = aiplat_config_get_string(cfg, "NATS_PASSWORD", &pass)))
    return cfg_fail(st);
  if (creds && *creds) {
    if ((st = readable("NATS_CREDS", creds))) return st;
    if (!nats_ok(
            natsOptions_SetUserCredentialsFromFiles(bus->opts, creds, NULL)))
      return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                      "bus: NATS_CREDS: the NATS client refused %s", creds);
  }
  if (seed && *seed) {
    char pub[64];
    if (!aip_nkey_public_from_seed(seed, pub, sizeof pub))
      return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                      "bus: NATS_NKEY_SEED is not a valid user nkey seed "
                      "(expected \"SU\" followed by 56 base32 characters)");
    /* nats.c calls back with the seed on every (re)connect: keep a copy
     * that lives as long as the bus. */
    size_t seed_len = strlen(seed);
    if (seed_len >= sizeof bus->nkey_seed)
      return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                      "bus: NATS_NKEY_SEED is not a valid user nkey seed");
    memcpy(bus->nkey_seed, seed, seed_len + 1);
    if (!nats_ok(
            natsOptions_SetNKey(bus->opts, pub, sign_nonce, bus->nkey_seed)))
      return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                      "bus: NATS_NKEY_SEED: the NATS client refused the key");
  }
  if (token && *token && !nats_ok(natsOptions_SetToken(bus->opts, token)))
    return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                    "bus: NATS_TOKEN: the NATS client refused the token");
  bool has_user = user && *user, has_pass = pass && *pass;
  if (has_user != has_pass)
    return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                    "bus: %s is set but %s is not (set both or neither)",
                    has_user ? "NATS_USER" : "NATS_PASSWORD",
                    has_user ? "NATS_PASSWORD" : "NATS_USER");
  if (has_user && !nats_ok(natsOptions_SetUserInfo(bus->opts, user, pass)))
    return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                    "bus: NATS_USER: the NATS client refused the user");
  return AIPLAT_OK;
}

static aiplat_status set_tls(aiplat_bus *bus, aiplat_config *cfg) {
  const char *ca = NULL, *cert = NULL, *key = NULL;
  aiplat_status st;
  if ((st = aiplat_config_get_string(cfg, "NATS_TLS_CA", &ca)) ||
      (st = aiplat_config_get_string(cfg, "NATS_TLS_CERT", &cert)) ||
      (st = aiplat_config_get_string(cfg, "NATS_TLS_KEY", &key)))
    return cfg_fail(st);
  bool has_cert = cert && *cert, has_key = key && *key;
  if (has_cert != has_key)
    return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                    "bus: %s is set but %s is not (set both or neither)",
                    has_cert ? "NATS_TLS_CERT" : "NATS_TLS_KEY",
                    has_cert ? "NATS_TLS_KEY" : "NATS_TLS_CERT");
  if (ca && *ca) {
    if ((st = readable("NATS_TLS_CA", ca))) return st;
    if (!nats_ok(natsOptions_SetSecure(bus->opts, true)) ||
        !nats_ok(natsOptions_LoadCATrustedCertificates(bus->opts, ca)))
      return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                      "bus: NATS_TLS_CA: cannot load %s: %s", ca,
                      nats_GetLastError(NULL));
  }
  if (has_cert) {
    if ((st = readable("NATS_TLS_CERT", cert)) ||
        (st = readable("NATS_TLS_KEY", key)))
      return st;
    if (!nats_ok(natsOptions_SetSecure(bus->opts, true)) ||
        !nats_ok(natsOptions_LoadCertificatesChain(bus->opts, cert, key)))
      return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                      "bus: NATS_TLS_CERT/NATS_TLS_KEY: cannot load %s: %s",
                      cert, nats_GetLastError(NULL));
  }
  return AIPLAT_OK;
}

static aiplat_status set_timing(aiplat_bus *bus, aiplat_config *cfg) {
  int64_t connect_ms, wait_ms, max_reconnects;
  aiplat_status st;
  if ((st = aiplat_config_get_duration_ms(cfg, "NATS_CONNECT_TIMEOUT",
                                          &connect_ms)) ||
      (st = aiplat_config_get_duration_ms(cfg, "NATS_RECONNECT_WAIT",
                                          &wait_ms)) ||
      (st = aiplat_config_get_int(cfg, "NATS_MAX_RECONNECTS", -1, INT_MAX,
                                  &max_reconnects)) ||
      (st = aiplat_config_get_bool(cfg, "NATS_SEND_ASAP", &bus->send_asap)) ||
      (st = aiplat_config_get_bool(cfg, "NATS_RETRY_ON_FAILED_CONNECT",
                                   &bus->retry_connect)))
    return cfg_fail(st);
  if (connect_ms <= 0)
    return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                    "bus: NATS_CONNECT_TIMEOUT must be more than 0");
  /* Jitter spreads the reconnections of many clients after a server
   * restart: up to half the wait, the whole wait for TLS (costlier). */
  int64_t jitter = wait_ms / 2, jitter_tls = wait_ms;
  if (!nats_ok(natsOptions_SetTimeout(bus->opts, connect_ms)) ||
      !nats_ok(natsOptions_SetReconnectWait(bus->opts, wait_ms)) ||
      !nats_ok(natsOptions_SetReconnectJitter(bus->opts, jitter, jitter_tls)) ||
      !nats_ok(natsOptions_SetMaxReconnect(bus->opts, (int)max_reconnects)) ||
      !nats_ok(natsOptions_SetAllowReconnect(bus->opts, max_reconnects != 0)))
    return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                    "bus: the NATS client refused the timing settings");
  return AIPLAT_OK;
}

static aiplat_status set_callbacks(aiplat_bus *bus) {
  natsOptions *o = bus->opts;
  if (!nats_ok(natsOptions_SetDisconnectedCB(o, on_disconnected, bus)) ||
      !nats_ok(natsOptions_SetReconnectedCB(o, on_reconnected, bus)) ||
      !nats_ok(natsOptions_SetClosedCB(o, on_closed, bus)) ||
      !nats_ok(natsOptions_SetLameDuckModeCB(o, on_lame_duck, bus)) ||
      !nats_ok(natsOptions_SetErrorHandler(o, on_async_error, bus)))
    return aip_fail(NULL, AIPLAT_ERR_INTERNAL,
                    "bus: cannot install the NATS callbacks");
  return AIPLAT_OK;
}

static aiplat_status configure(aiplat_bus *bus, aiplat_config *cfg) {
  const char *urls = NULL, *name = NULL;
  aiplat_status st;
  if ((st = aiplat_config_get_string(cfg, "NATS_URL", &urls)))
    return cfg_fail(st);
  if (!urls || !*urls)
    return aip_fail(NULL, AIPLAT_ERR_CONFIG, "bus: NATS_URL is empty");
  if ((st = set_servers(bus, urls))) return st;
  if ((st = aiplat_config_get_string(cfg, "NATS_NAME", &name)))
    return cfg_fail(st);
  if ((!name || !*name) &&
      (st = aiplat_config_get_string(cfg, "SERVICE_NAME", &name)))
    return cfg_fail(st);
  if (name && *name && !nats_ok(natsOptions_SetName(bus->opts, name)))
    return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                    "bus: the NATS client refused the connection name");
  if ((st = set_auth(bus, cfg)) || (st = set_tls(bus, cfg)) ||
      (st = set_timing(bus, cfg)) || (st = set_callbacks(bus)))
    return st;
  return AIPLAT_OK;
}

/* ---- lifecycle
 * ------------------------------------------------------------------ */

AIPLAT_API aiplat_status aiplat_bus_create(aiplat_bus **out,
                                           aiplat_config *cfg) {
  if (!out)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "bus: out is NULL");
  *out = NULL;
  aiplat_status st = aip_global_ref();
  if (st != AIPLAT_OK) return st;
  aiplat_bus *bus = calloc(1, sizeof *bus);
  if (!bus) {
    aip_global_unref();
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "bus: out of memory");
  }
  atomic_init(&bus->refs, 1);
  atomic_init(&bus->reconnects, 0);
  atomic_init(&bus->async_errors, 0);
  aip_err_init(&bus->err);
  pthread_mutex_init(&bus->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&bus->cond, &ca);
  pthread_condattr_destroy(&ca);
  aiplat_config *own = NULL;
  if (!cfg) {
    if ((st = aiplat_config_create(&own)) != AIPLAT_OK) goto fail;
    cfg = own;
  }
  /* nats.c spins up to 2,000 times on a contended mutex before it sleeps:
   * on a few shared cores the spinning burns the time the lock holder
   * needs (a subscription's lock is taken by the reader for every message
   * and by the delivery thread for every message). The count is
   * process-wide and fixed by the first open: when the process opened
   * nats.c before, its choice stands. */
  (void)nats_Open(NATS_LOCK_SPIN);
  if (natsOptions_Create(&bus->opts) != NATS_OK) {
    st = aip_bus_fail_nats(NULL, NATS_NO_MEMORY, 0, "bus: natsOptions_Create");
    goto fail;
  }
  aip_bus_tls_exit_guard(); /* nats.c is initialised now */
  if ((st = configure(bus, cfg)) != AIPLAT_OK) goto fail;
  aiplat_config_destroy(own);
  *out = bus;
  return AIPLAT_OK;
fail:
  aiplat_config_destroy(own);
  /* Keep the failure detail: cleanup must not overwrite it. */
  {
    char msg[AIP_ERRMSG_MAX];
    aiplat_status code = aiplat_error_last(msg, sizeof msg);
    bus_free(bus);
    aip_fail(NULL, code, "%s", msg);
  }
  return st;
}

AIPLAT_API aiplat_status aiplat_bus_set_event_callback(aiplat_bus *bus,
                                                       aiplat_bus_event_fn fn,
                                                       void *user_data) {
  if (!bus)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "bus: bus is NULL");
  aiplat_status st = AIPLAT_OK;
  pthread_mutex_lock(&bus->mu);
  if (bus->state != AIP_BUS_CREATED)
    st = aip_fail(&bus->err, AIPLAT_ERR_STATE,
                  "bus: the event callback can be set only before connect");
  else
    bus->event_fn = fn, bus->event_ud = user_data;
  pthread_mutex_unlock(&bus->mu);
  return st;
}

static aiplat_status set_flag(aiplat_bus *bus, bool *flag, bool value,
                              const char *what) {
  if (!bus)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "bus: bus is NULL");
  aiplat_status st = AIPLAT_OK;
  pthread_mutex_lock(&bus->mu);
  if (bus->state != AIP_BUS_CREATED)
    st = aip_fail(&bus->err, AIPLAT_ERR_STATE,
                  "bus: %s can be set only before connect", what);
  else
    *flag = value;
  pthread_mutex_unlock(&bus->mu);
  return st;
}

AIPLAT_API aiplat_status aiplat_bus_set_send_asap(aiplat_bus *bus,
                                                  bool send_asap) {
  return set_flag(bus, bus ? &bus->send_asap : NULL, send_asap, "send asap");
}

AIPLAT_API aiplat_status aiplat_bus_set_retry_on_failed_connect(aiplat_bus *bus,
                                                                bool retry) {
  return set_flag(bus, bus ? &bus->retry_connect : NULL, retry,
                  "retry on failed connect");
}

AIPLAT_API aiplat_status aiplat_bus_connect(aiplat_bus *bus) {
  if (!bus)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "bus: bus is NULL");
  pthread_mutex_lock(&bus->mu);
  if (bus->state != AIP_BUS_CREATED) {
    aip_bus_state s = bus->state;
    pthread_mutex_unlock(&bus->mu);
    return aip_fail(&bus->err,
                    s == AIP_BUS_CLOSED ? AIPLAT_ERR_CLOSED : AIPLAT_ERR_STATE,
                    "bus: connect: %s",
                    s == AIP_BUS_CLOSED ? "the bus is closed"
                                        : "already connected or connecting");
  }
  bus->state = AIP_BUS_CONNECTING;
  pthread_mutex_unlock(&bus->mu);

  natsStatus s = natsOptions_SetSendAsap(bus->opts, bus->send_asap);
  if (s == NATS_OK)
    s = natsOptions_SetRetryOnFailedConnect(
        bus->opts, bus->retry_connect, bus->retry_connect ? on_connected : NULL,
        bus);
  natsConnection *nc = NULL;
  if (s == NATS_OK) s = natsConnection_Connect(&nc, bus->opts);
  if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
    aiplat_status st = aip_bus_fail_nats(&bus->err, s, 0, "bus: connect");
    if (st == AIPLAT_ERR_CONNECTION)
      st = aip_fail(&bus->err, st,
                    "bus: connect: no NATS server reachable at %s (%s)",
                    bus->servers_log, natsStatus_GetText(s));
    pthread_mutex_lock(&bus->mu);
    if (bus->state == AIP_BUS_CONNECTING) bus->state = AIP_BUS_CREATED;
    pthread_mutex_unlock(&bus->mu);
    aip_log_kv(AIPLAT_LOG_ERROR, "nats connect failed", "servers",
               bus->servers_log, "error", aip_thread_errmsg(), NULL);
    return st;
  }
  jsCtx *js = NULL;
  natsStatus js_s = natsConnection_JetStream(&js, nc, NULL);
  pthread_mutex_lock(&bus->mu);
  bus->nc = nc;
  bus->js = js_s == NATS_OK ? js : NULL;
  bool closed_meanwhile = bus->state == AIP_BUS_CLOSED;
  if (!closed_meanwhile) bus->state = AIP_BUS_OPEN;
  pthread_mutex_unlock(&bus->mu);
  if (closed_meanwhile) {
    aiplat_bus_close(bus);
    return aip_fail(&bus->err, AIPLAT_ERR_CLOSED,
                    "bus: connect: the bus was closed while connecting");
  }
  if (js_s != NATS_OK)
    aip_log_kv(AIPLAT_LOG_WARNING, "nats: no JetStream context", NULL);
  if (s == NATS_OK) {
    char url[256];
    connected_url(nc, url, sizeof url);
    aip_log_kv(AIPLAT_LOG_INFO, "nats connected", "url", url, NULL);
  } else {
    aip_log_kv(AIPLAT_LOG_WARNING,
               "nats: no server reachable yet, retrying in the background",
               "servers", bus->servers_log, NULL);
  }
  return AIPLAT_OK;
}

AIPLAT_API bool aiplat_bus_is_connected(aiplat_bus *bus) {
  natsConnection *nc = aip_bus_conn(bus);
  return nc && natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED;
}

AIPLAT_API uint64_t aiplat_bus_reconnect_count(aiplat_bus *bus) {
  return bus ? (uint64_t)atomic_load(&bus->reconnects) : 0;
}

AIPLAT_API uint64_t aiplat_bus_async_error_count(aiplat_bus *bus) {
  return bus ? (uint64_t)atomic_load(&bus->async_errors) : 0;
}

AIPLAT_API int64_t aiplat_bus_max_payload(aiplat_bus *bus) {
  natsConnection *nc = aip_bus_conn(bus);
  return nc ? natsConnection_GetMaxPayload(nc) : 0;
}

/* Wait for the CLOSED callback, unless it is this thread that must run it. */
static void wait_closed(aiplat_bus *bus) {
  if (tls_event_bus == bus) return;
  pthread_mutex_lock(&bus->mu);
  while (bus->nc && !bus->closed_done) pthread_cond_wait(&bus->cond, &bus->mu);
  pthread_mutex_unlock(&bus->mu);
}

AIPLAT_API void aiplat_bus_close(aiplat_bus *bus) {
  if (!bus) return;
  pthread_mutex_lock(&bus->mu);
  natsConnection *nc = bus->nc;
  bus->state = AIP_BUS_CLOSED;
  pthread_mutex_unlock(&bus->mu);
  if (!nc) return;
  natsConnection_Close(nc);
  wait_closed(bus);
}

AIPLAT_API void aiplat_bus_destroy(aiplat_bus *bus) {
  if (!bus) return;
  if (tls_event_bus == bus) {
    /* Freeing the bus from its own event callback would free it under
     * nats.c's feet; refuse loudly rather than crash. */
    aip_log_kv(AIPLAT_LOG_ERROR,
               "bus: aiplat_bus_destroy called from the bus's event "
               "callback; ignored",
               NULL);
    return;
  }
  aiplat_bus_close(bus);
  aip_bus_unref(bus);
}

AIPLAT_API aiplat_status aiplat_bus_last_error(aiplat_bus *bus, char *buf,
                                               size_t buflen) {
  if (!bus)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "bus: bus is NULL");
  return aip_err_copy(&bus->err, buf, buflen);
}

/* ---- publish, request, flush, drain
 * ---------------------------------------------- */

aiplat_status aip_bus_make_msg(aiplat_bus *bus, aip_err *e, natsConnection *nc,
                               const char *subject, const char *reply,
                               const void *data, size_t len,
                               const aiplat_headers *headers, natsMsg **out) {
  (void)bus;
  if (out) *out = NULL;
  aiplat_status st = aip_subject_check(e, "bus: publish", subject, false);
  if (st) return st;
  if (reply && (st = aip_subject_check(e, "bus: reply", reply, false)))
    return st;
  if (!data && len)
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                    "bus: publish: data is NULL but len is %zu", len);
  size_t hlen = 0;
  if (headers && (st = aip_headers_encoded_len(headers, e, &hlen))) return st;
  int64_t max = natsConnection_GetMaxPayload(nc);
  if (len > (size_t)INT_MAX - hlen || (max > 0 && (int64_t)(len + hlen) > max))
    return aip_fail(e, AIPLAT_ERR_TOO_LARGE,
                    "bus: publish on %s: payload of %zu bytes (%zu of data, "
                    "%zu of headers) exceeds the server's max_payload of %lld "
                    "bytes",
                    subject, len + hlen, len, hlen, (long long)max);
  if (!out) return AIPLAT_OK; /* checks only */
  natsMsg *nm = NULL;
  natsStatus s = natsMsg_Create(&nm, subject, reply, data, (int)len);
  if (s != NATS_OK) return aip_bus_fail_nats(e, s, 0, "bus: publish");
  if (headers && (st = aip_headers_apply(headers, nm, e))) {
    natsMsg_Destroy(nm);
    return st;
  }
  *out = nm;
  return AIPLAT_OK;
}

aiplat_status aip_bus_send(aip_err *e, natsConnection *nc, const char *subject,
                           const char *reply, const void *data, size_t len,
                           const aiplat_headers *headers, const char *what) {
  /* Without headers, publish straight from the caller's buffer. */
  bool with_headers = headers && headers->n;
  natsMsg *nm = NULL;
  aiplat_status st = aip_bus_make_msg(NULL, e, nc, subject, reply, data, len,
                                      headers, with_headers ? &nm : NULL);
  if (st) return st;
  natsStatus s;
  if (nm)
    s = natsConnection_PublishMsg(nc, nm);
  else if (reply)
    s = natsConnection_PublishRequest(nc, subject, reply, data, (int)len);
  else
    s = natsConnection_Publish(nc, subject, data, (int)len);
  aip_bus_retire(nm);
  if (s != NATS_OK) return aip_bus_fail_nats(e, s, 0, what);
  return AIPLAT_OK;
}

static aiplat_status publish(aiplat_bus *bus, const char *subject,
                             const char *reply, const void *data, size_t len,
                             const aiplat_headers *headers) {
  if (!bus)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "bus: bus is NULL");
  natsConnection *nc = aip_bus_open_conn(bus, &bus->err, "bus: publish");
  if (!nc) return aip_err_copy(&bus->err, NULL, 0);
  return aip_bus_send(&bus->err, nc, subject, reply, data, len, headers,
                      "bus: publish");
}

AIPLAT_API aiplat_status aiplat_bus_publish(aiplat_bus *bus,
                                            const char *subject,
                                            const void *data, size_t len,
                                            const aiplat_headers *headers) {
  return publish(bus, subject, NULL, data, len, headers);
}

AIPLAT_API aiplat_status aiplat_bus_publish_request(
    aiplat_bus *bus, const char *subject, const char *reply, const void *data,
    size_t len, const aiplat_headers *headers) {
  if (!reply)
    return aip_fail(bus ? &bus->err : NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "bus: publish_request: reply is NULL");
  return publish(bus, subject, reply, data, len, headers);
}

static aiplat_status bus_request(
    aiplat_bus *bus, const char *subject, const void *data, size_t len,
    const aiplat_headers *headers, int64_t timeout_ms, aiplat_bus_msg **reply) {
  if (!bus)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "bus: bus is NULL");
  if (!reply)
    return aip_fail(&bus->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "bus: request: reply is NULL");
  *reply = NULL;
  if (timeout_ms <= 0)
    return aip_fail(&bus->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "bus: request: timeout_ms must be more than 0");
  natsConnection *nc = aip_bus_open_conn(bus, &bus->err, "bus: request");
  if (!nc) return aip_err_copy(&bus->err, NULL, 0);
  bool with_headers = headers && headers->n;
  natsMsg *nm = NULL;
  aiplat_status st = aip_bus_make_msg(bus, &bus->err, nc, subject, NULL, data,
                                      len, headers, with_headers ? &nm : NULL);
  if (st) return st;
  natsMsg *rm = NULL;
  natsStatus s =
      nm ? natsConnection_RequestMsg(&rm, nc, nm, timeout_ms)
         : natsConnection_Request(&rm, nc, subject, data, (int)len, timeout_ms);
  natsMsg_Destroy(nm);
  if (s == NATS_NO_RESPONDERS)
    return aip_fail(&bus->err, AIPLAT_ERR_UNAVAILABLE,
                    "bus: request on %s: no responders (nobody subscribes to "
                    "this subject)",
                    subject);
  if (s == NATS_TIMEOUT)
    return aip_fail(&bus->err, AIPLAT_ERR_TIMEOUT,
                    "bus: request on %s: no reply within %lld ms", subject,
                    (long long)timeout_ms);
  if (s != NATS_OK) return aip_bus_fail_nats(&bus->err, s, 0, "bus: request");
  return aip_bus_msg_wrap(reply, bus, NULL, rm);
}

/* A client span around each request the library makes (tracing on). */
AIPLAT_API aiplat_status aiplat_bus_request(
    aiplat_bus *bus, const char *subject, const void *data, size_t len,
    const aiplat_headers *headers, int64_t timeout_ms, aiplat_bus_msg **reply) {
  aip_span *sp = aip_otel_nats_begin("request", subject);
  aiplat_status st = bus_request(bus, subject, data, len, headers, timeout_ms, reply);
  aip_otel_end(sp, st);
  return st;
}

AIPLAT_API aiplat_status aiplat_bus_flush(aiplat_bus *bus, int64_t timeout_ms) {
  if (!bus)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "bus: bus is NULL");
  if (timeout_ms <= 0)
    return aip_fail(&bus->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "bus: flush: timeout_ms must be more than 0");
  natsConnection *nc = aip_bus_open_conn(bus, &bus->err, "bus: flush");
  if (!nc) return aip_err_copy(&bus->err, NULL, 0);
  natsStatus s = natsConnection_FlushTimeout(nc, timeout_ms);
  if (s != NATS_OK) return aip_bus_fail_nats(&bus->err, s, 0, "bus: flush");
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_bus_drain(aiplat_bus *bus, int64_t timeout_ms) {
  if (!bus)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "bus: bus is NULL");
  if (timeout_ms <= 0)
    return aip_fail(&bus->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "bus: drain: timeout_ms must be more than 0");
  if (tls_event_bus == bus)
    return aip_fail(&bus->err, AIPLAT_ERR_STATE,
                    "bus: drain cannot be called from the event callback");
  natsConnection *nc = aip_bus_open_conn(bus, &bus->err, "bus: drain");
  if (!nc) return aip_err_copy(&bus->err, NULL, 0);
  natsStatus s = natsConnection_DrainTimeout(nc, timeout_ms);
  if (s != NATS_OK) {
    aiplat_status st = aip_bus_fail_nats(&bus->err, s, 0, "bus: drain");
    aiplat_bus_close(bus);
    return st;
  }
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  /* nats.c closes the connection itself at its own deadline; allow it a
   * moment past ours before forcing the close. */
  int64_t wait_ms = timeout_ms + 500;
  deadline.tv_sec += wait_ms / 1000;
  deadline.tv_nsec += (wait_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  bool timed_out = false;
  pthread_mutex_lock(&bus->mu);
  while (!bus->closed_done && !timed_out)
    timed_out =
        pthread_cond_timedwait(&bus->cond, &bus->mu, &deadline) == ETIMEDOUT;
  bool done = bus->closed_done;
  pthread_mutex_unlock(&bus->mu);
  if (!done) {
    aiplat_bus_close(bus);
    return aip_fail(&bus->err, AIPLAT_ERR_TIMEOUT,
                    "bus: drain did not finish within %lld ms; closed",
                    (long long)timeout_ms);
  }
  return AIPLAT_OK;
}
