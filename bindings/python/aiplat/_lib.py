"""Loading libaiplat and the prototype of every C function the package calls.

Every function is declared here with its exact ``restype`` and ``argtypes``
before it can be called: the loaded library is wrapped in :class:`_Lib`,
which exposes only the functions of :data:`PROTOTYPES`, so a call to an
undeclared function fails with ``AttributeError`` instead of running with
ctypes' default ``int`` return type (which truncates pointers on 64-bit
machines). tests/python/test_prototypes.py checks this table against the
public headers: the number of parameters and which are pointers.

Library lookup (first found wins):

1. ``AIPLAT_LIBRARY``: a path or a soname given to the dynamic loader;
2. ``libaiplat.so.0``, the soname these prototypes are written for, as the
   dynamic loader finds it (the Debian package libaiplat0, ``make install``
   followed by ldconfig, or ``LD_LIBRARY_PATH``);
3. ``ctypes.util.find_library("aiplat")``: another installed libaiplat;
4. ``lib/.libs/libaiplat.so.0`` under ``AIPLAT_BUILD_DIR`` (an uninstalled
   build tree, as ``make check`` has).
"""

import ctypes
import ctypes.util
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from ctypes import (
    CFUNCTYPE,
    POINTER,
    c_bool,
    c_char,
    c_char_p,
    c_double,
    c_float,
    c_int,
    c_int64,
    c_size_t,
    c_uint,
    c_uint32,
    c_uint64,
    c_void_p,
)

# Shorthands for the table below.
P = c_void_p  # an opaque handle (aiplat_bus *, aiplat_msg *, ...)
PP = POINTER(c_void_p)  # a handle out-parameter (aiplat_bus **out)
S = c_char_p  # a NUL-terminated input string (const char *)
SOUT = POINTER(c_char_p)  # a borrowed string out-parameter (const char **)
DATA = c_char_p  # an input buffer (const void *data) with a separate length
BUF = POINTER(c_char)  # a caller's output buffer (char *buf, size_t buflen)
SZ = c_size_t
SZP = POINTER(c_size_t)
I64 = c_int64
U64 = c_uint64
ST = c_int  # aiplat_status and every other enum
B = c_bool

# Callback types (the typedefs of the headers). Every callback runs on a
# thread the library chooses; ctypes takes the GIL around the Python code.
# Typed Any: typeshed's CFUNCTYPE does not allow the no-argument call that
# makes a NULL function pointer.
LOG_FN: Any = CFUNCTYPE(None, c_int, c_void_p, c_size_t, c_void_p)
BUS_MSG_FN: Any = CFUNCTYPE(None, c_void_p, c_void_p)
BUS_EVENT_FN: Any = CFUNCTYPE(None, c_void_p, c_int, c_int, c_char_p, c_void_p)
HANDLER_FN: Any = CFUNCTYPE(c_int, c_void_p, c_void_p)
HEALTH_CHECK_FN: Any = CFUNCTYPE(c_bool, POINTER(c_char), c_size_t, c_void_p)
LLM_TOKEN_FN: Any = CFUNCTYPE(c_bool, c_void_p, c_size_t, c_void_p)
TTS_CHUNK_FN: Any = CFUNCTYPE(c_bool, c_void_p, c_size_t, c_void_p)

STRV = POINTER(c_char_p)  # const char *const * (an array of strings)

# name: (restype, [argtypes])
PROTOTYPES = {
    # common.h
    "aiplat_status_str": (c_char_p, [ST]),
    "aiplat_status_name": (c_char_p, [ST]),
    "aiplat_error_last": (ST, [BUF, SZ]),
    "aiplat_error_clear": (None, []),
    "aiplat_free": (None, [c_void_p]),
    "aiplat_version_string": (c_char_p, []),
    "aiplat_version_number": (c_uint32, []),
    "aiplat_init": (ST, []),
    "aiplat_cleanup": (None, []),
    # log.h
    "aiplat_log_set_level": (None, [c_int]),
    "aiplat_log_reset_level": (None, []),
    "aiplat_log_get_level": (c_int, []),
    "aiplat_log_level_parse": (ST, [S, POINTER(c_int)]),
    "aiplat_log_set_service": (ST, [S]),
    "aiplat_log_set_callback": (None, [LOG_FN, c_void_p]),
    "aiplat_log": (None, [c_int, S]),
    "aiplat_log_fields": (None, [c_int, S, STRV, STRV, SZ]),
    "aiplat_log_set_thread_context": (None, [S, S]),
    "aiplat_log_key_is_secret": (B, [S]),
    # config.h
    "aiplat_config_create": (ST, [PP]),
    "aiplat_config_destroy": (None, [P]),
    "aiplat_config_set": (ST, [P, S, S]),
    "aiplat_config_is_set": (B, [P, S]),
    "aiplat_config_get_string": (ST, [P, S, SOUT]),
    "aiplat_config_require": (ST, [P, S, SOUT]),
    "aiplat_config_get_int": (ST, [P, S, I64, I64, POINTER(I64)]),
    "aiplat_config_get_double": (ST, [P, S, c_double, c_double, POINTER(c_double)]),
    "aiplat_config_get_bool": (ST, [P, S, POINTER(B)]),
    "aiplat_config_get_duration_ms": (ST, [P, S, POINTER(I64)]),
    "aiplat_config_get_url": (ST, [P, S, SOUT]),
    "aiplat_config_validate": (ST, [P]),
    "aiplat_config_last_error": (ST, [P, BUF, SZ]),
    "aiplat_duration_parse_ms": (ST, [S, POINTER(I64)]),
    "aiplat_config_setting_count": (SZ, []),
    "aiplat_config_setting_name": (c_char_p, [SZ]),
    "aiplat_config_setting_default": (c_char_p, [SZ]),
    "aiplat_config_setting_description": (c_char_p, [SZ]),
    "aiplat_config_is_secret": (B, [S]),
    # subject.h
    "aiplat_subject_token_check": (ST, [S]),
    "aiplat_subject_validate": (ST, [S]),
    "aiplat_subject_validate_filter": (ST, [S]),
    "aiplat_subject_join": (ST, [PP, STRV, SZ]),
    "aiplat_subject_build": (ST, [PP, S, S, S]),
    "aiplat_subject_chat_user_message": (ST, [PP, S]),
    "aiplat_subject_chat_response": (ST, [PP, S]),
    "aiplat_subject_voice_user_request": (ST, [PP, S]),
    "aiplat_subject_voice_response": (ST, [PP, S]),
    "aiplat_subject_pipeline_status": (ST, [PP, S]),
    "aiplat_subject_pipeline_trigger": (c_char_p, []),
    "aiplat_subject_chat_user_message_filter": (c_char_p, []),
    "aiplat_subject_voice_user_request_filter": (c_char_p, []),
    "aiplat_subject_token_at": (ST, [PP, S, SZ]),
    # message.h
    "aiplat_msg_create": (ST, [PP, c_int]),
    "aiplat_msg_create_by_name": (ST, [PP, S]),
    "aiplat_msg_destroy": (None, [P]),
    "aiplat_msg_copy": (ST, [PP, P]),
    "aiplat_msg_last_error": (ST, [P, BUF, SZ]),
    "aiplat_msg_get_type": (c_int, [P]),
    "aiplat_msg_type_name": (c_char_p, [c_int]),
    "aiplat_msg_type_by_name": (ST, [S, POINTER(c_int)]),
    "aiplat_msg_type_field_count": (SZ, [c_int]),
    "aiplat_msg_type_field_name": (c_char_p, [c_int, SZ]),
    "aiplat_msg_field_info": (
        ST,
        [c_int, S, POINTER(c_int), POINTER(B), POINTER(c_int), POINTER(c_uint32)],
    ),
    "aiplat_msg_has": (B, [P, S]),
    "aiplat_msg_clear_field": (ST, [P, S]),
    "aiplat_msg_get_string": (ST, [P, S, SOUT]),
    "aiplat_msg_set_string": (ST, [P, S, S]),
    "aiplat_msg_get_bytes": (ST, [P, S, PP, SZP]),
    "aiplat_msg_set_bytes": (ST, [P, S, DATA, SZ]),
    "aiplat_msg_get_int64": (ST, [P, S, POINTER(I64)]),
    "aiplat_msg_set_int64": (ST, [P, S, I64]),
    "aiplat_msg_get_uint64": (ST, [P, S, POINTER(U64)]),
    "aiplat_msg_set_uint64": (ST, [P, S, U64]),
    "aiplat_msg_get_double": (ST, [P, S, POINTER(c_double)]),
    "aiplat_msg_set_double": (ST, [P, S, c_double]),
    "aiplat_msg_get_bool": (ST, [P, S, POINTER(B)]),
    "aiplat_msg_set_bool": (ST, [P, S, B]),
    "aiplat_msg_get_message": (ST, [P, S, PP]),
    "aiplat_msg_mutable_message": (ST, [P, S, PP]),
    "aiplat_msg_count": (ST, [P, S, SZP]),
    "aiplat_msg_get_item": (ST, [P, S, SZ, PP]),
    "aiplat_msg_add_item": (ST, [P, S, PP]),
    "aiplat_msg_remove_item": (ST, [P, S, SZ]),
    "aiplat_msg_map_key": (ST, [P, S, SZ, SOUT]),
    "aiplat_msg_map_value": (ST, [P, S, SZ, SOUT]),
    "aiplat_msg_map_get": (ST, [P, S, S, SOUT]),
    "aiplat_msg_map_set": (ST, [P, S, S, S]),
    "aiplat_msg_map_remove": (ST, [P, S, S]),
    "aiplat_msg_encode": (ST, [P, PP, SZP]),
    "aiplat_msg_encoded_size": (ST, [P, SZP]),
    "aiplat_msg_decode": (ST, [PP, c_int, DATA, SZ]),
    "aiplat_msg_decode_max": (ST, [PP, c_int, DATA, SZ, SZ]),
    "aiplat_msg_to_json": (ST, [P, PP]),
    "aiplat_msg_to_json_flags": (ST, [P, c_uint32, PP]),
    "aiplat_msg_from_json": (ST, [PP, c_int, S]),
    # bus.h
    "aiplat_bus_create": (ST, [PP, P]),
    "aiplat_bus_set_event_callback": (ST, [P, BUS_EVENT_FN, c_void_p]),
    "aiplat_bus_set_send_asap": (ST, [P, B]),
    "aiplat_bus_set_retry_on_failed_connect": (ST, [P, B]),
    "aiplat_bus_connect": (ST, [P]),
    "aiplat_bus_is_connected": (B, [P]),
    "aiplat_bus_reconnect_count": (U64, [P]),
    "aiplat_bus_async_error_count": (U64, [P]),
    "aiplat_bus_max_payload": (I64, [P]),
    "aiplat_bus_close": (None, [P]),
    "aiplat_bus_destroy": (None, [P]),
    "aiplat_bus_last_error": (ST, [P, BUF, SZ]),
    "aiplat_headers_create": (ST, [PP]),
    "aiplat_headers_destroy": (None, [P]),
    "aiplat_headers_set": (ST, [P, S, S]),
    "aiplat_headers_add": (ST, [P, S, S]),
    "aiplat_headers_get": (ST, [P, S, SOUT]),
    "aiplat_headers_count": (SZ, [P]),
    "aiplat_headers_key_at": (c_char_p, [P, SZ]),
    "aiplat_headers_value_at": (c_char_p, [P, SZ]),
    "aiplat_headers_last_error": (ST, [P, BUF, SZ]),
    "aiplat_bus_publish": (ST, [P, S, DATA, SZ, P]),
    "aiplat_bus_publish_request": (ST, [P, S, S, DATA, SZ, P]),
    "aiplat_bus_request": (ST, [P, S, DATA, SZ, P, I64, PP]),
    # aiplat/client.h (typed requests; the blocking form only)
    "aiplat_client_create": (ST, [PP, P]),
    "aiplat_client_destroy": (None, [P]),
    "aiplat_client_set_timeout_ms": (ST, [P, I64]),
    "aiplat_client_in_flight": (SZ, [P]),
    "aiplat_client_options_create": (ST, [PP]),
    "aiplat_client_options_destroy": (None, [P]),
    "aiplat_client_options_set_timeout_ms": (ST, [P, I64]),
    "aiplat_client_options_set_request_id": (ST, [P, S]),
    "aiplat_client_options_set_traceparent": (ST, [P, S]),
    "aiplat_client_options_add_header": (ST, [P, S, S]),
    "aiplat_client_options_set_dedup": (ST, [P, B]),
    "aiplat_client_request": (ST, [P, S, P, c_int, P, PP]),
    "aiplat_bus_flush": (ST, [P, I64]),
    "aiplat_bus_drain": (ST, [P, I64]),
    "aiplat_bus_msg_subject": (c_char_p, [P]),
    "aiplat_bus_msg_reply": (c_char_p, [P]),
    "aiplat_bus_msg_data": (c_void_p, [P]),
    "aiplat_bus_msg_len": (SZ, [P]),
    "aiplat_bus_msg_header": (ST, [P, S, SOUT]),
    "aiplat_bus_msg_headers": (ST, [P, PP]),
    "aiplat_bus_msg_respond": (ST, [P, DATA, SZ, P]),
    "aiplat_bus_msg_retain": (c_void_p, [P]),
    "aiplat_bus_msg_destroy": (None, [P]),
    "aiplat_bus_msg_last_error": (ST, [P, BUF, SZ]),
    "aiplat_bus_msg_is_jetstream": (B, [P]),
    "aiplat_bus_msg_ack": (ST, [P]),
    "aiplat_bus_msg_ack_sync": (ST, [P, I64]),
    "aiplat_bus_msg_nak": (ST, [P]),
    "aiplat_bus_msg_nak_with_delay": (ST, [P, I64]),
    "aiplat_bus_msg_term": (ST, [P]),
    "aiplat_bus_msg_in_progress": (ST, [P]),
    "aiplat_bus_msg_delivery_count": (ST, [P, POINTER(U64)]),
    "aiplat_bus_subscribe": (ST, [P, S, S, BUS_MSG_FN, c_void_p, PP]),
    "aiplat_bus_sub_unsubscribe": (ST, [P]),
    "aiplat_bus_sub_drain": (ST, [P, I64]),
    "aiplat_bus_sub_dropped_count": (U64, [P]),
    "aiplat_bus_sub_destroy": (None, [P]),
    "aiplat_bus_sub_last_error": (ST, [P, BUF, SZ]),
    "aiplat_bus_stream_ensure": (ST, [P, S, STRV, SZ, I64, c_int]),
    "aiplat_bus_stream_delete": (ST, [P, S]),
    "aiplat_bus_js_publish": (ST, [P, S, DATA, SZ, P, POINTER(U64)]),
    "aiplat_bus_js_subscribe": (
        ST,
        [P, S, S, S, I64, I64, c_int, BUS_MSG_FN, c_void_p, PP],
    ),
    "aiplat_kv_open": (ST, [PP, P, S, I64, c_int]),
    "aiplat_kv_put": (ST, [P, S, DATA, SZ, POINTER(U64)]),
    "aiplat_kv_get": (ST, [P, S, PP, SZP]),
    "aiplat_kv_delete": (ST, [P, S]),
    "aiplat_kv_destroy": (None, [P]),
    "aiplat_kv_last_error": (ST, [P, BUF, SZ]),
    # health.h (what a service needs)
    "aiplat_health_port": (c_int, [P]),
    "aiplat_health_add_check": (ST, [P, S, HEALTH_CHECK_FN, c_void_p]),
    "aiplat_health_set_ready": (ST, [P, B, S]),
    "aiplat_health_set_live": (ST, [P, B, S]),
    # service.h
    "aiplat_service_create": (ST, [PP, P, S, S, S]),
    "aiplat_service_destroy": (None, [P]),
    "aiplat_service_last_error": (ST, [P, BUF, SZ]),
    "aiplat_service_set_workers": (ST, [P, c_uint]),
    "aiplat_service_set_request_timeout_ms": (ST, [P, I64]),
    "aiplat_service_set_shutdown_grace_ms": (ST, [P, I64]),
    "aiplat_service_set_handle_signals": (ST, [P, B]),
    "aiplat_service_add_endpoint": (ST, [P, S, S, S, c_int, c_int, HANDLER_FN, c_void_p]),
    "aiplat_service_add_js_endpoint": (
        ST,
        [P, S, S, S, S, c_int, c_int, HANDLER_FN, c_void_p],
    ),
    "aiplat_service_add_check": (ST, [P, S, HEALTH_CHECK_FN, c_void_p]),
    "aiplat_service_start": (ST, [P]),
    "aiplat_service_run": (ST, [P]),
    "aiplat_service_stop": (None, [P]),
    "aiplat_service_bus": (c_void_p, [P]),
    "aiplat_service_health": (c_void_p, [P]),
    "aiplat_service_config": (c_void_p, [P]),
    "aiplat_service_id": (c_char_p, [P]),
    "aiplat_request_subject": (c_char_p, [P]),
    "aiplat_request_endpoint": (c_char_p, [P]),
    "aiplat_request_data": (c_void_p, [P, SZP]),
    "aiplat_request_header": (c_char_p, [P, S]),
    "aiplat_request_message": (c_void_p, [P]),
    "aiplat_request_id": (c_char_p, [P]),
    "aiplat_request_trace_id": (c_char_p, [P]),
    "aiplat_request_traceparent": (c_char_p, [P]),
    "aiplat_request_time_left_ms": (I64, [P]),
    "aiplat_request_has_reply": (B, [P]),
    "aiplat_request_respond": (ST, [P, P]),
    "aiplat_request_respond_bytes": (ST, [P, DATA, SZ]),
    "aiplat_request_fail": (ST, [P, ST, S]),
    "aiplat_request_publish": (ST, [P, S, P]),
    "aiplat_request_in_progress": (ST, [P]),
    # llm.h
    "aiplat_llm_create": (ST, [PP, P]),
    "aiplat_llm_destroy": (None, [P]),
    "aiplat_llm_set_url": (ST, [P, S]),
    "aiplat_llm_set_model": (ST, [P, S]),
    "aiplat_llm_set_api_key": (ST, [P, S]),
    "aiplat_llm_set_timeout_ms": (ST, [P, I64]),
    "aiplat_llm_set_connect_timeout_ms": (ST, [P, I64]),
    "aiplat_llm_set_stream_idle_timeout_ms": (ST, [P, I64]),
    "aiplat_llm_set_max_retries": (ST, [P, c_int]),
    "aiplat_llm_health": (ST, [P]),
    "aiplat_llm_cancel": (None, [P]),
    "aiplat_llm_last_error": (ST, [P, BUF, SZ]),
    "aiplat_llm_complete": (ST, [P, P, PP]),
    "aiplat_llm_stream": (ST, [P, P, LLM_TOKEN_FN, c_void_p, PP]),
    "aiplat_llm_request_create": (ST, [PP]),
    "aiplat_llm_request_destroy": (None, [P]),
    "aiplat_llm_request_add_message": (ST, [P, S, S]),
    "aiplat_llm_request_clear_messages": (None, [P]),
    "aiplat_llm_request_message_count": (SZ, [P]),
    "aiplat_llm_request_set_model": (ST, [P, S]),
    "aiplat_llm_request_set_max_tokens": (ST, [P, ctypes.c_int32]),
    "aiplat_llm_request_set_temperature": (ST, [P, c_double]),
    "aiplat_llm_request_set_top_p": (ST, [P, c_double]),
    "aiplat_llm_request_add_stop": (ST, [P, S]),
    "aiplat_llm_request_set_seed": (ST, [P, I64]),
    "aiplat_llm_request_last_error": (ST, [P, BUF, SZ]),
    "aiplat_llm_result_destroy": (None, [P]),
    "aiplat_llm_result_text": (c_void_p, [P]),
    "aiplat_llm_result_text_len": (SZ, [P]),
    "aiplat_llm_result_finish_reason": (c_char_p, [P]),
    "aiplat_llm_result_model": (c_char_p, [P]),
    "aiplat_llm_result_prompt_tokens": (I64, [P]),
    "aiplat_llm_result_completion_tokens": (I64, [P]),
    "aiplat_llm_result_total_tokens": (I64, [P]),
    # embeddings.h
    "aiplat_embeddings_create": (ST, [PP, P]),
    "aiplat_embeddings_destroy": (None, [P]),
    "aiplat_embeddings_set_url": (ST, [P, S]),
    "aiplat_embeddings_set_model": (ST, [P, S]),
    "aiplat_embeddings_set_api_key": (ST, [P, S]),
    "aiplat_embeddings_set_timeout_ms": (ST, [P, I64]),
    "aiplat_embeddings_set_connect_timeout_ms": (ST, [P, I64]),
    "aiplat_embeddings_set_max_retries": (ST, [P, c_int]),
    "aiplat_embeddings_set_expected_dimension": (ST, [P, SZ]),
    "aiplat_embeddings_set_batch_size": (ST, [P, SZ]),
    "aiplat_embeddings_health": (ST, [P]),
    "aiplat_embeddings_cancel": (None, [P]),
    "aiplat_embeddings_last_error": (ST, [P, BUF, SZ]),
    "aiplat_embeddings_embed": (ST, [P, STRV, SZ, PP]),
    "aiplat_embeddings_result_destroy": (None, [P]),
    "aiplat_embeddings_result_count": (SZ, [P]),
    "aiplat_embeddings_result_dimension": (SZ, [P]),
    "aiplat_embeddings_result_vector": (POINTER(c_float), [P, SZ]),
    "aiplat_embeddings_result_data": (POINTER(c_float), [P]),
    "aiplat_embeddings_result_prompt_tokens": (I64, [P]),
    # reranker.h
    "aiplat_reranker_create": (ST, [PP, P]),
    "aiplat_reranker_destroy": (None, [P]),
    "aiplat_reranker_set_url": (ST, [P, S]),
    "aiplat_reranker_set_model": (ST, [P, S]),
    "aiplat_reranker_set_api_key": (ST, [P, S]),
    "aiplat_reranker_set_timeout_ms": (ST, [P, I64]),
    "aiplat_reranker_set_connect_timeout_ms": (ST, [P, I64]),
    "aiplat_reranker_set_max_retries": (ST, [P, c_int]),
    "aiplat_reranker_set_api": (ST, [P, c_int]),
    "aiplat_reranker_get_api": (c_int, [P]),
    "aiplat_reranker_health": (ST, [P]),
    "aiplat_reranker_cancel": (None, [P]),
    "aiplat_reranker_last_error": (ST, [P, BUF, SZ]),
    "aiplat_reranker_rerank": (ST, [P, S, STRV, SZ, SZ, PP]),
    "aiplat_reranker_result_destroy": (None, [P]),
    "aiplat_reranker_result_count": (SZ, [P]),
    "aiplat_reranker_result_index": (SZ, [P, SZ]),
    "aiplat_reranker_result_score": (c_double, [P, SZ]),
    # stt.h
    "aiplat_stt_create": (ST, [PP, P]),
    "aiplat_stt_destroy": (None, [P]),
    "aiplat_stt_set_url": (ST, [P, S]),
    "aiplat_stt_set_model": (ST, [P, S]),
    "aiplat_stt_set_api_key": (ST, [P, S]),
    "aiplat_stt_set_timeout_ms": (ST, [P, I64]),
    "aiplat_stt_set_connect_timeout_ms": (ST, [P, I64]),
    "aiplat_stt_set_max_retries": (ST, [P, c_int]),
    "aiplat_stt_set_api": (ST, [P, c_int]),
    "aiplat_stt_set_response_format": (ST, [P, c_int]),
    "aiplat_stt_set_language": (ST, [P, S]),
    "aiplat_stt_health": (ST, [P]),
    "aiplat_stt_cancel": (None, [P]),
    "aiplat_stt_last_error": (ST, [P, BUF, SZ]),
    "aiplat_stt_transcribe": (ST, [P, DATA, SZ, S, S, PP]),
    "aiplat_stt_result_destroy": (None, [P]),
    "aiplat_stt_result_text": (c_char_p, [P]),
    "aiplat_stt_result_language": (c_char_p, [P]),
    "aiplat_stt_result_duration": (c_double, [P]),
    "aiplat_stt_result_segment_count": (SZ, [P]),
    "aiplat_stt_result_segment_start": (c_double, [P, SZ]),
    "aiplat_stt_result_segment_end": (c_double, [P, SZ]),
    "aiplat_stt_result_segment_text": (c_char_p, [P, SZ]),
    # tts.h
    "aiplat_tts_create": (ST, [PP, P]),
    "aiplat_tts_destroy": (None, [P]),
    "aiplat_tts_set_url": (ST, [P, S]),
    "aiplat_tts_set_model": (ST, [P, S]),
    "aiplat_tts_set_api_key": (ST, [P, S]),
    "aiplat_tts_set_timeout_ms": (ST, [P, I64]),
    "aiplat_tts_set_connect_timeout_ms": (ST, [P, I64]),
    "aiplat_tts_set_stream_idle_timeout_ms": (ST, [P, I64]),
    "aiplat_tts_set_max_retries": (ST, [P, c_int]),
    "aiplat_tts_set_voice": (ST, [P, S]),
    "aiplat_tts_set_format": (ST, [P, S]),
    "aiplat_tts_set_speed": (ST, [P, c_double]),
    "aiplat_tts_health": (ST, [P]),
    "aiplat_tts_cancel": (None, [P]),
    "aiplat_tts_last_error": (ST, [P, BUF, SZ]),
    "aiplat_tts_synthesize": (ST, [P, S, S, PP, SZP, PP]),
    "aiplat_tts_synthesize_stream": (ST, [P, S, S, TTS_CHUNK_FN, c_void_p, PP]),
}

# rag.h (docs/decisions/0015): optional, see OPTIONAL below.
RAG_PROTOTYPES = {
    "aiplat_rag_create": (ST, [PP, P]),
    "aiplat_rag_create_with": (ST, [PP, P, P, P]),
    "aiplat_rag_destroy": (None, [P]),
    "aiplat_rag_last_error": (ST, [P, BUF, SZ]),
    "aiplat_rag_store_backend": (c_char_p, [P]),
    "aiplat_rag_reranks": (B, [P]),
    "aiplat_rag_set_top_k": (ST, [P, SZ]),
    "aiplat_rag_set_candidates": (ST, [P, SZ]),
    "aiplat_rag_set_min_score": (ST, [P, c_double]),
    "aiplat_rag_set_context_chars": (ST, [P, SZ]),
    "aiplat_rag_set_chunking": (ST, [P, SZ, SZ]),
    "aiplat_rag_set_rerank": (ST, [P, B]),
    "aiplat_rag_query": (ST, [P, S, PP]),
    "aiplat_rag_query_filtered": (ST, [P, S, SZ, S, PP]),
    "aiplat_rag_context": (ST, [P, S, PP]),
    "aiplat_rag_results_destroy": (None, [P]),
    "aiplat_rag_results_count": (SZ, [P]),
    "aiplat_rag_results_reranked": (B, [P]),
    "aiplat_rag_results_id": (c_char_p, [P, SZ]),
    "aiplat_rag_results_text": (c_char_p, [P, SZ]),
    "aiplat_rag_results_source": (c_char_p, [P, SZ]),
    "aiplat_rag_results_metadata": (c_char_p, [P, SZ]),
    "aiplat_rag_results_score": (c_double, [P, SZ]),
    "aiplat_rag_results_vector_score": (c_double, [P, SZ]),
    "aiplat_rag_results_context": (ST, [P, SZ, PP]),
    "aiplat_rag_ingest": (ST, [P, S, DATA, SZ, S, SZP, POINTER(c_int)]),
    "aiplat_rag_ingest_file": (ST, [P, S, S, SZP, POINTER(c_int)]),
    "aiplat_rag_delete_source": (ST, [P, S]),
    "aiplat_rag_count": (ST, [P, POINTER(U64)]),
}
PROTOTYPES.update(RAG_PROTOTYPES)

# Functions that a libaiplat may lack (an older build, or an API still on
# its way to main): declared only when the loaded library exports them;
# the wrapper checks lib.has(name) and says what is missing.
OPTIONAL = set(RAG_PROTOTYPES)


# The library's SONAME: the ABI the table above describes.
SONAME = "libaiplat.so.0"


def candidates(environ: Mapping[str, str] | None = None) -> list[str]:
    """The library names tried, in order (for the loader and its test)."""
    env = os.environ if environ is None else environ
    out: list[str] = []
    explicit = env.get("AIPLAT_LIBRARY")
    if explicit:
        return [explicit]  # an explicit choice is never second-guessed
    out.append(SONAME)
    found = ctypes.util.find_library("aiplat")
    if found and found != SONAME:
        out.append(found)
    build = env.get("AIPLAT_BUILD_DIR")
    if build:
        out.append(os.path.join(build, "lib", ".libs", "libaiplat.so.0"))
    return out


class LibraryNotFound(OSError):
    """No libaiplat could be loaded."""


class _Lib:
    """The loaded library, exposing only the declared functions."""

    def __init__(self, cdll: ctypes.CDLL, path: str) -> None:
        self.path = path
        self.missing: list[str] = []
        for name, (restype, argtypes) in PROTOTYPES.items():
            try:
                fn = getattr(cdll, name)
            except AttributeError:
                if name in OPTIONAL:
                    self.missing.append(name)
                    continue
                raise LibraryNotFound(
                    "%s does not export %s: an older libaiplat?" % (path, name)
                ) from None
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)

    def has(self, name: str) -> bool:
        return name in self.__dict__

    if TYPE_CHECKING:
        # The functions are set per name from PROTOTYPES at load time.
        def __getattr__(self, name: str) -> Any: ...


def load(environ: Mapping[str, str] | None = None) -> _Lib:
    """Load libaiplat (see the module comment) and declare every function."""
    tried: list[str] = []
    for name in candidates(environ):
        try:
            # CDLL (not PyDLL): the GIL is released during every call, so
            # library threads can run Python callbacks meanwhile.
            return _Lib(ctypes.CDLL(name), name)
        except OSError as e:
            if isinstance(e, LibraryNotFound):
                raise
            tried.append("%s (%s)" % (name, e))
    raise LibraryNotFound(
        "libaiplat not found; set AIPLAT_LIBRARY to its path"
        + (": tried " + "; ".join(tried) if tried else "")
    )


lib = load()
