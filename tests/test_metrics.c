/* Metrics registry, internal API: the framework's endpoint metrics, NATS
 * counters, number formatting, UTF-8 validation, lock-free series. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "harness/testutil.h"
#include "metrics.h"

static aiplat_metrics *m;

static void setup(void) {
  ck_assert_int_eq(aip_metrics_new(&m), AIPLAT_OK);
}

static void teardown(void) {
  aip_metrics_free(m);
  m = NULL;
}

static char *render(void) {
  aip_buf b = {0};
  ck_assert(aip_metrics_render_buf(m, &b));
  return aip_buf_steal(&b, NULL);
}

static bool has_line(const char *text, const char *line) {
  size_t n = strlen(line);
  for (const char *p = text; (p = strstr(p, line)); p++)
    if ((p == text || p[-1] == '\n') && p[n] == '\n') return true;
  return false;
}

START_TEST(endpoint_metrics) {
  aip_endpoint_metrics chat, voice, again;
  ck_assert_int_eq(aip_metrics_endpoint(m, "ai.chat.user.*.message", &chat),
                   AIPLAT_OK);
  ck_assert_int_eq(aip_metrics_endpoint(m, "voice", &voice), AIPLAT_OK);
  ck_assert_int_eq(aip_metrics_endpoint(m, "voice", &again), AIPLAT_OK);
  ck_assert_ptr_eq(voice.requests, again.requests); /* same series */
  ck_assert_str_eq(chat.endpoint, "ai.chat.user.*.message");

  aip_endpoint_begin(&chat);
  aip_endpoint_begin(&chat);
  ck_assert_double_eq(aip_series_value(chat.in_flight), 2);
  aip_endpoint_end(&chat, AIPLAT_OK, 200 * 1000000LL);            /* 0.2 s */
  aip_endpoint_end(&chat, AIPLAT_ERR_TIMEOUT, 61 * 1000000000LL); /* 61 s */
  aip_endpoint_begin(&voice);
  aip_endpoint_end(&voice, AIPLAT_ERR_DECODE, -5); /* clock skew: 0 */
  aip_endpoint_begin(&voice);
  aip_endpoint_end(&voice, AIPLAT_ERR_DECODE, 1000);
  aip_endpoint_begin(&voice);
  aip_endpoint_end(&voice, (aiplat_status)999, 1000);
  aip_metrics_nats_reconnected(m);
  aip_metrics_nats_reconnected(m);
  aip_metrics_nats_disconnected(m);

  char *t = render();
  ck_assert_msg(
      has_line(t,
               "aiplat_requests_total{endpoint=\"ai.chat.user.*.message\"} 2"),
      "%s", t);
  ck_assert(has_line(t, "aiplat_requests_total{endpoint=\"voice\"} 3"));
  ck_assert(has_line(
      t, "aiplat_requests_in_flight{endpoint=\"ai.chat.user.*.message\"} 0"));
  ck_assert(has_line(t,
                     "aiplat_request_errors_total{endpoint=\"ai.chat.user.*."
                     "message\",error=\"timeout\"} 1"));
  ck_assert(has_line(
      t, "aiplat_request_errors_total{endpoint=\"voice\",error=\"decode\"} 2"));
  ck_assert(has_line(
      t,
      "aiplat_request_errors_total{endpoint=\"voice\",error=\"unknown\"} 1"));
  ck_assert(has_line(t,
                     "aiplat_request_duration_seconds_bucket{endpoint=\"ai."
                     "chat.user.*.message\",le=\"0.1\"} 0"));
  ck_assert(has_line(t,
                     "aiplat_request_duration_seconds_bucket{endpoint=\"ai."
                     "chat.user.*.message\",le=\"0.25\"} 1"));
  ck_assert(has_line(t,
                     "aiplat_request_duration_seconds_bucket{endpoint=\"ai."
                     "chat.user.*.message\",le=\"60\"} 1"));
  ck_assert(has_line(t,
                     "aiplat_request_duration_seconds_bucket{endpoint=\"ai."
                     "chat.user.*.message\",le=\"120\"} 2"));
  ck_assert(has_line(t,
                     "aiplat_request_duration_seconds_bucket{endpoint=\"ai."
                     "chat.user.*.message\",le=\"+Inf\"} 2"));
  ck_assert(has_line(t,
                     "aiplat_request_duration_seconds_sum{endpoint=\"ai.chat."
                     "user.*.message\"} 61.2"));
  ck_assert(has_line(t,
                     "aiplat_request_duration_seconds_bucket{endpoint="
                     "\"voice\",le=\"0.005\"} 3"));
  ck_assert(has_line(t, "aiplat_nats_reconnects_total 2"));
  ck_assert(has_line(t, "aiplat_nats_disconnects_total 1"));
  /* No error series for endpoints that had none. */
  ck_assert_ptr_null(strstr(t, "error=\"ok\""));
  free(t);
  /* NULL-safe for a framework that runs without metrics. */
  aip_endpoint_begin(NULL);
  aip_endpoint_end(NULL, AIPLAT_OK, 1);
  aip_metrics_nats_reconnected(NULL);
  ck_assert_int_eq(aip_metrics_endpoint(m, NULL, &again),
                   AIPLAT_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(nats_counters_need_registration) {
  aip_metrics_nats_reconnected(m); /* before register_std: ignored */
  char *t = render();
  ck_assert_ptr_null(strstr(t, "aiplat_nats_reconnects_total"));
  free(t);
  ck_assert_int_eq(aip_metrics_register_std(m), AIPLAT_OK);
  ck_assert_int_eq(aip_metrics_register_std(m), AIPLAT_OK); /* idempotent */
  aip_metrics_nats_reconnected(m);
  t = render();
  ck_assert(has_line(t, "aiplat_nats_reconnects_total 1"));
  ck_assert(has_line(t, "# TYPE aiplat_nats_reconnects_total counter"));
  free(t);
}
END_TEST

START_TEST(status_labels) {
  ck_assert_str_eq(aip_metrics_status_label(AIPLAT_OK), "ok");
  ck_assert_str_eq(aip_metrics_status_label(AIPLAT_ERR_RATE_LIMITED),
                   "rate_limited");
  ck_assert_str_eq(aip_metrics_status_label(AIPLAT_ERR_INTERNAL), "internal");
  ck_assert_str_eq(aip_metrics_status_label((aiplat_status)-1), "unknown");
  for (int a = 0; a <= AIPLAT_ERR_INTERNAL; a++) {
    const char *la = aip_metrics_status_label((aiplat_status)a);
    ck_assert_str_ne(la, "unknown");
    for (const char *p = la; *p; p++)
      ck_assert((*p >= 'a' && *p <= 'z') || *p == '_');
    for (int b = a + 1; b <= AIPLAT_ERR_INTERNAL; b++)
      ck_assert_str_ne(la, aip_metrics_status_label((aiplat_status)b));
  }
}
END_TEST

START_TEST(number_formatting) {
  aiplat_metric *g, *c, *h;
  const char *k[] = {"k"};
  ck_assert_int_eq(
      aip_metrics_register(m, AIP_METRIC_GAUGE, "g", "G.", k, 1, NULL, 0, &g),
      AIPLAT_OK);
  ck_assert_int_eq(aip_metrics_register(m, AIP_METRIC_COUNTER, "c_total", "C.",
                                        NULL, 0, NULL, 0, &c),
                   AIPLAT_OK);
  const double b[] = {1e-9, 0.1, 0.3, 1, 1e20};
  ck_assert_int_eq(aip_metrics_register(m, AIP_METRIC_HISTOGRAM, "h", "H.",
                                        NULL, 0, b, 5, &h),
                   AIPLAT_OK);
  static const struct {
    const char *label;
    double v;
    const char *text;
  } cases[] = {{"a", 0.1, "0.1"},
               {"b", -2, "-2"},
               {"c", 1e300, "1e+300"},
               {"d", NAN, "NaN"},
               {"e", INFINITY, "+Inf"},
               {"f", -INFINITY, "-Inf"},
               {"g", 1.0 / 3, "0.3333333333333333"},
               {"h", 123456789012, "123456789012"},
               {"i", 2.5e-7, "2.5e-07"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    aip_series_set(aip_metric_series(g, &cases[i].label, 1), cases[i].v);
  aip_series *cs = aip_metric_series(c, NULL, 0);
  aip_series_inc(cs, 3);
  aip_series_add(cs, 0.25);
  aip_series_add(cs, -1);    /* ignored: counters only go up */
  aip_series_add(cs, NAN);   /* ignored */
  aip_series_set(cs, 100);   /* ignored: not a gauge */
  aip_series_observe(cs, 1); /* ignored: not a histogram */
  aip_series *hs = aip_metric_series(h, NULL, 0);
  aip_series_observe(hs, NAN); /* ignored */
  aip_series_observe(hs, 0.2);
  aip_series_observe(hs, -5); /* first bucket */
  char *t = render();
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char line[128];
    snprintf(line, sizeof line, "g{k=\"%s\"} %s", cases[i].label,
             cases[i].text);
    ck_assert_msg(has_line(t, line), "missing %s in\n%s", line, t);
  }
  ck_assert(has_line(t, "c_total 3.25"));
  ck_assert(has_line(t, "h_bucket{le=\"1e-09\"} 1"));
  ck_assert(has_line(t, "h_bucket{le=\"0.1\"} 1"));
  ck_assert(has_line(t, "h_bucket{le=\"0.3\"} 2"));
  ck_assert(has_line(t, "h_bucket{le=\"1e+20\"} 2"));
  ck_assert(has_line(t, "h_sum -4.8"));
  ck_assert(has_line(t, "h_count 2"));
  ck_assert_double_eq(aip_series_value(hs), 2);
  ck_assert_double_eq(aip_series_value(cs), 3.25);
  free(t);
}
END_TEST

START_TEST(series_in_creation_order) {
  aiplat_metric *c;
  const char *k[] = {"k"};
  ck_assert_int_eq(aip_metrics_register(m, AIP_METRIC_COUNTER, "o_total", "", k,
                                        1, NULL, 0, &c),
                   AIPLAT_OK);
  const char *names[] = {"zeta", "alpha", "mid"};
  for (int i = 0; i < 3; i++)
    aip_series_inc(aip_metric_series(c, &names[i], 1), 1);
  char *t = render();
  char *z = strstr(t, "k=\"zeta\""), *a = strstr(t, "k=\"alpha\""),
       *mi = strstr(t, "k=\"mid\"");
  ck_assert(z && a && mi && z < a && a < mi);
  /* Label tuples that concatenate alike are still different series. */
  aiplat_metric *two;
  const char *kk[] = {"a", "b"};
  ck_assert_int_eq(aip_metrics_register(m, AIP_METRIC_COUNTER, "p_total", "",
                                        kk, 2, NULL, 0, &two),
                   AIPLAT_OK);
  const char *x[] = {"a", "bc"}, *y[] = {"ab", "c"};
  ck_assert_ptr_ne(aip_metric_series(two, x, 2), aip_metric_series(two, y, 2));
  free(t);
}
END_TEST

START_TEST(utf8_validation) {
  ck_assert(aip_utf8_valid("", 0));
  ck_assert(aip_utf8_valid("plain", 5));
  ck_assert(aip_utf8_valid("caf\xc3\xa9", 5));
  ck_assert(aip_utf8_valid("\xe2\x82\xac", 3));      /* euro */
  ck_assert(aip_utf8_valid("\xf0\x9f\x98\x80", 4));  /* emoji */
  ck_assert(!aip_utf8_valid("\xc3", 1));             /* truncated */
  ck_assert(!aip_utf8_valid("\xc0\xaf", 2));         /* overlong */
  ck_assert(!aip_utf8_valid("\xe0\x80\xaf", 3));     /* overlong */
  ck_assert(!aip_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
  ck_assert(!aip_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
  ck_assert(!aip_utf8_valid("\xff", 1));
  ck_assert(!aip_utf8_valid("a\x80", 2)); /* lone continuation */
}
END_TEST

#define RACERS 8
#define VALUES 200

typedef struct racer {
  aiplat_metric *family;
  aip_series *cached;
  int n;
} racer;

/* Every thread asks for the same VALUES series at once: each must exist
 * exactly once and count every increment. */
static void *race_create(void *arg) {
  racer *r = arg;
  for (int i = 0; i < VALUES; i++) {
    char v[16];
    snprintf(v, sizeof v, "v%d", i);
    const char *vals[] = {v};
    aip_series_inc(aip_metric_series(r->family, vals, 1), 1);
  }
  return NULL;
}

static void *race_inc(void *arg) {
  racer *r = arg;
  for (int i = 0; i < r->n; i++) aip_series_inc(r->cached, 1);
  return NULL;
}

START_TEST(lock_free_series_under_contention) {
  aiplat_metric *c;
  const char *k[] = {"k"};
  ck_assert_int_eq(aip_metrics_register(m, AIP_METRIC_COUNTER, "race_total", "",
                                        k, 1, NULL, 0, &c),
                   AIPLAT_OK);
  pthread_t t[RACERS];
  racer r = {.family = c};
  for (int i = 0; i < RACERS; i++)
    ck_assert_int_eq(pthread_create(&t[i], NULL, race_create, &r), 0);
  for (int i = 0; i < RACERS; i++) pthread_join(t[i], NULL);
  char *text = render();
  int lines = 0;
  for (const char *p = text; (p = strstr(p, "race_total{")); p++) {
    lines++;
    const char *sp = strchr(p, ' ');
    ck_assert_msg(strncmp(sp, " 8\n", 3) == 0, "%.40s", p);
  }
  ck_assert_int_eq(lines, VALUES);
  free(text);

  const char *hot[] = {"hot"};
  racer hr = {.cached = aip_metric_series(c, hot, 1), .n = 200000};
  for (int i = 0; i < RACERS; i++)
    ck_assert_int_eq(pthread_create(&t[i], NULL, race_inc, &hr), 0);
  for (int i = 0; i < RACERS; i++) pthread_join(t[i], NULL);
  ck_assert_double_eq(aip_series_value(hr.cached), RACERS * 200000.0);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("metrics");
  TCase *t = tcase_create("registry");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_set_timeout(t, 30);
  tcase_add_test(t, endpoint_metrics);
  tcase_add_test(t, nats_counters_need_registration);
  tcase_add_test(t, status_labels);
  tcase_add_test(t, number_formatting);
  tcase_add_test(t, series_in_creation_order);
  tcase_add_test(t, utf8_validation);
  tcase_add_test(t, lock_free_series_under_contention);
  suite_add_tcase(s, t);
  return s;
}
