/* aiplat services: discovery through the NATS micro protocol.
 * One $SRV.STATS request is answered by every running instance, so the
 * replies are gathered on an inbox subscription for a short window. */
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define DEFAULT_WAIT_MS 500
#define MAX_REPLIES 4096

typedef struct gather {
  pthread_mutex_t mu;
  json_t *replies; /* array of STATS objects */
  size_t bad;      /* replies that were not STATS JSON */
  bool no_responders;
} gather;

static void on_reply(aiplat_bus_msg *msg, void *ud) {
  gather *g = ud;
  size_t len = aiplat_bus_msg_len(msg);
  const char *status = NULL;
  if (len == 0 && aiplat_bus_msg_header(msg, "Status", &status) == AIPLAT_OK &&
      status && strncmp(status, "503", 3) == 0) {
    pthread_mutex_lock(&g->mu);
    g->no_responders = true;
    pthread_mutex_unlock(&g->mu);
    return;
  }
  aiplat_error_clear();
  json_t *j = json_loadb(aiplat_bus_msg_data(msg), len, 0, NULL);
  const char *type = j ? json_string_value(json_object_get(j, "type")) : NULL;
  pthread_mutex_lock(&g->mu);
  if (type && strcmp(type, "io.nats.micro.v1.stats_response") == 0 &&
      json_array_size(g->replies) < MAX_REPLIES) {
    json_array_append(g->replies, j);
  } else {
    g->bad++;
  }
  pthread_mutex_unlock(&g->mu);
  json_decref(j);
}

static const char *str(json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? s : "";
}

static int by_name_id(const void *a, const void *b) {
  json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
  int c = strcmp(str(x, "name"), str(y, "name"));
  return c ? c : strcmp(str(x, "id"), str(y, "id"));
}

static void format_ns(json_int_t ns, char *out, size_t len) {
  if (ns < 1000000)
    snprintf(out, len, "%.1fus", (double)ns / 1e3);
  else if (ns < 1000000000)
    snprintf(out, len, "%.1fms", (double)ns / 1e6);
  else
    snprintf(out, len, "%.2fs", (double)ns / 1e9);
}

static void print_table(json_t *replies) {
  size_t n = json_array_size(replies);
  json_t **v = calloc(n ? n : 1, sizeof *v);
  if (!v) return;
  for (size_t i = 0; i < n; i++) v[i] = json_array_get(replies, i);
  qsort(v, n, sizeof *v, by_name_id);
  printf("%-20s %-22s %-10s %-14s %-28s %9s %7s %10s\n", "NAME", "ID",
         "VERSION", "ENDPOINT", "SUBJECT", "REQUESTS", "ERRORS", "AVG");
  for (size_t i = 0; i < n; i++) {
    json_t *eps = json_object_get(v[i], "endpoints");
    size_t k = json_array_size(eps);
    if (k == 0)
      printf("%-20s %-22s %-10s %-14s %-28s %9s %7s %10s\n", str(v[i], "name"),
             str(v[i], "id"), str(v[i], "version"), "-", "-", "-", "-", "-");
    for (size_t e = 0; e < k; e++) {
      json_t *ep = json_array_get(eps, e);
      char avg[32];
      format_ns(
          json_integer_value(json_object_get(ep, "average_processing_time")),
          avg, sizeof avg);
      printf("%-20s %-22s %-10s %-14s %-28s %9lld %7lld %10s\n",
             str(v[i], "name"), str(v[i], "id"), str(v[i], "version"),
             str(ep, "name"), str(ep, "subject"),
             (long long)json_integer_value(json_object_get(ep, "num_requests")),
             (long long)json_integer_value(json_object_get(ep, "num_errors")),
             avg);
    }
  }
  free(v);
}

int cmd_services(cli *c) {
  char subject[300];
  if (c->nargs == 1) {
    if (aiplat_subject_token_check(c->args[0]) != AIPLAT_OK)
      return cli_usage("'%.64s' is not a service name", c->args[0]);
    snprintf(subject, sizeof subject, "$SRV.STATS.%s", c->args[0]);
  } else {
    snprintf(subject, sizeof subject, "$SRV.STATS");
  }
  int rc = cli_connect(c);
  if (rc != CLI_OK) return rc;
  gather g = {.replies = json_array()};
  pthread_mutex_init(&g.mu, NULL);
  char inbox[32];
  cli_new_inbox(inbox);
  aiplat_bus_sub *sub = NULL;
  aiplat_status st =
      aiplat_bus_subscribe(c->bus, inbox, NULL, on_reply, &g, &sub);
  if (st == AIPLAT_OK) st = aiplat_bus_flush(c->bus, 5000);
  if (st == AIPLAT_OK)
    st = aiplat_bus_publish_request(c->bus, subject, inbox, NULL, 0, NULL);
  if (st != AIPLAT_OK) rc = cli_fail_last(st, "cannot ask for services");
  if (rc == CLI_OK) {
    int64_t wait = c->wait_ms > 0 ? c->wait_ms : DEFAULT_WAIT_MS;
    struct timespec ts = {wait / 1000, (long)(wait % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
    aiplat_bus_sub_unsubscribe(sub); /* no callback runs after this */
    if (json_array_size(g.replies) == 0) {
      rc = cli_fail(CLI_ENOREPLY, "no service answered on %s", subject);
    } else if (c->json) {
      size_t i;
      json_t *r;
      json_array_foreach(g.replies, i, r) {
        char *s = json_dumps(r, JSON_COMPACT);
        if (s) printf("%s\n", s);
        free(s);
      }
    } else {
      print_table(g.replies);
    }
    if (g.bad)
      fprintf(stderr,
              "aiplat: %zu replies were not micro STATS and were skipped\n",
              g.bad);
  }
  aiplat_bus_sub_destroy(sub);
  json_decref(g.replies);
  pthread_mutex_destroy(&g.mu);
  return rc;
}
