/* Internal pieces of the service framework: W3C traceparent and the NATS
 * micro protocol bodies. */
#include <string.h>

#include <jansson.h>

#include "harness/testutil.h"
#include "micro.h"
#include "trace.h"

START_TEST(traceparent_parse_valid) {
  aip_trace t;
  ck_assert(aip_trace_parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", &t));
  ck_assert_str_eq(t.trace_id, "0af7651916cd43dd8448eb211c80319c");
  ck_assert_str_eq(t.parent_span_id, "b7ad6b7169203331");
  ck_assert_int_eq(t.flags, 1);
  /* a future version may append fields */
  ck_assert(aip_trace_parse("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-extra", &t));
}
END_TEST

START_TEST(traceparent_parse_rejects) {
  static const char *const bad[] = {
      "", "00", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
      "00-00000000000000000000000000000000-b7ad6b7169203331-01", /* zero trace */
      "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", /* zero span */
      "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", /* upper case */
      "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", /* version ff */
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x", /* 00 + extra */
      "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0z"};
  aip_trace t;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(!aip_trace_parse(bad[i], &t), "accepted: %s", bad[i]);
  ck_assert(!aip_trace_parse(NULL, &t));
}
END_TEST

START_TEST(traceparent_continue_and_start) {
  aip_trace t, u;
  char buf[64];
  aip_trace_continue("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", &t);
  ck_assert_str_eq(t.trace_id, "0af7651916cd43dd8448eb211c80319c");
  ck_assert_str_eq(t.parent_span_id, "b7ad6b7169203331");
  ck_assert_str_ne(t.span_id, "b7ad6b7169203331");
  aip_trace_format(&t, buf, sizeof buf);
  ck_assert_uint_eq(strlen(buf), AIP_TRACEPARENT_LEN);
  ck_assert(aip_trace_parse(buf, &u));
  ck_assert_str_eq(u.trace_id, t.trace_id);
  ck_assert_str_eq(u.parent_span_id, t.span_id);
  aip_trace_continue("garbage", &t);
  ck_assert_str_eq(t.parent_span_id, "");
  aip_trace_continue(NULL, &u);
  ck_assert_str_ne(t.trace_id, u.trace_id); /* fresh random ids */
  aip_trace_format(&t, buf, sizeof buf);
  ck_assert(aip_trace_parse(buf, &u));
}
END_TEST

START_TEST(micro_names_and_versions) {
  ck_assert(aip_micro_name_valid("chat-handler"));
  ck_assert(aip_micro_name_valid("stt_module2"));
  ck_assert(!aip_micro_name_valid(""));
  ck_assert(!aip_micro_name_valid("chat.handler"));
  ck_assert(!aip_micro_name_valid("a b"));
  ck_assert(!aip_micro_name_valid(NULL));
  static const char *const good[] = {"0.1.0", "1.0.0", "10.20.30", "1.0.0-alpha.1",
                                     "1.0.0+build.5", "1.0.0-rc.1+sha.abc", "1.0.0-0a"};
  static const char *const bad[] = {"", "1", "1.0", "01.0.0", "1.0.0-", "1.0.0-01",
                                    "1.0.0+", "v1.0.0", "1.0.0.0", "1.0.0-a..b"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    ck_assert_msg(aip_micro_version_valid(good[i]), "rejected %s", good[i]);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(!aip_micro_version_valid(bad[i]), "accepted %s", bad[i]);
  char a[AIP_MICRO_ID_LEN + 1], b[AIP_MICRO_ID_LEN + 1];
  aip_micro_new_id(a);
  aip_micro_new_id(b);
  ck_assert_uint_eq(strlen(a), AIP_MICRO_ID_LEN);
  ck_assert_str_ne(a, b);
  ck_assert(aip_micro_name_valid(a));
}
END_TEST

START_TEST(micro_bodies_follow_adr32) {
  aip_micro_identity id = {"echo", "ABC123", "1.2.3", "echoes \"things\""};
  aip_micro_endpoint eps[] = {{"echo", "demo.echo", "q", 4, 1, 4000, "boom"},
                              {"idle", "demo.idle", "q", 0, 0, 0, NULL}};
  json_error_t err;
  char *s = aip_micro_ping_json(&id);
  json_t *j = json_loads(s, 0, &err);
  ck_assert_ptr_nonnull(j);
  ck_assert_str_eq(json_string_value(json_object_get(j, "type")), "io.nats.micro.v1.ping_response");
  ck_assert_str_eq(json_string_value(json_object_get(j, "name")), "echo");
  ck_assert_str_eq(json_string_value(json_object_get(j, "id")), "ABC123");
  ck_assert_str_eq(json_string_value(json_object_get(j, "version")), "1.2.3");
  ck_assert(json_is_object(json_object_get(j, "metadata")));
  json_decref(j);
  free(s);

  s = aip_micro_info_json(&id, eps, 2);
  j = json_loads(s, 0, &err);
  ck_assert_str_eq(json_string_value(json_object_get(j, "type")), "io.nats.micro.v1.info_response");
  ck_assert_str_eq(json_string_value(json_object_get(j, "description")), "echoes \"things\"");
  json_t *e0 = json_array_get(json_object_get(j, "endpoints"), 0);
  ck_assert_str_eq(json_string_value(json_object_get(e0, "subject")), "demo.echo");
  ck_assert_str_eq(json_string_value(json_object_get(e0, "queue_group")), "q");
  ck_assert(json_is_object(json_object_get(e0, "metadata")));
  ck_assert_uint_eq(json_array_size(json_object_get(j, "endpoints")), 2);
  json_decref(j);
  free(s);

  s = aip_micro_stats_json(&id, 1764149400123LL, eps, 2);
  j = json_loads(s, 0, &err);
  ck_assert_str_eq(json_string_value(json_object_get(j, "type")), "io.nats.micro.v1.stats_response");
  ck_assert_str_eq(json_string_value(json_object_get(j, "started")), "2025-11-26T09:30:00.123Z");
  e0 = json_array_get(json_object_get(j, "endpoints"), 0);
  ck_assert_int_eq(json_integer_value(json_object_get(e0, "num_requests")), 4);
  ck_assert_int_eq(json_integer_value(json_object_get(e0, "num_errors")), 1);
  ck_assert_str_eq(json_string_value(json_object_get(e0, "last_error")), "boom");
  ck_assert_int_eq(json_integer_value(json_object_get(e0, "processing_time")), 4000);
  ck_assert_int_eq(json_integer_value(json_object_get(e0, "average_processing_time")), 1000);
  json_t *e1 = json_array_get(json_object_get(j, "endpoints"), 1);
  ck_assert_str_eq(json_string_value(json_object_get(e1, "last_error")), "");
  ck_assert_int_eq(json_integer_value(json_object_get(e1, "average_processing_time")), 0);
  json_decref(j);
  free(s);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("service-parts");
  TCase *tc = tcase_create("trace");
  tcase_add_test(tc, traceparent_parse_valid);
  tcase_add_test(tc, traceparent_parse_rejects);
  tcase_add_test(tc, traceparent_continue_and_start);
  suite_add_tcase(s, tc);
  tcase_add_test(tc, micro_names_and_versions);
  tcase_add_test(tc, micro_bodies_follow_adr32);
  return s;
}
