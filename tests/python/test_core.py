"""Status and errors, configuration, the log callback, subjects."""

import os
import tempfile
import threading
import unittest

import aiplat
from aiplat import Status, log


class TestErrors(unittest.TestCase):
    def test_version(self):
        v = aiplat.version()
        self.assertRegex(v, r"^\d+\.\d+\.\d+$")
        major, minor, patch = (int(x) for x in v.split("."))
        self.assertEqual(aiplat.version_number(), (major << 16) | (minor << 8) | patch)

    def test_status_text_is_the_librarys(self):
        self.assertEqual(aiplat.status_str(Status.OK), "success")
        self.assertNotEqual(aiplat.status_str(Status.TIMEOUT), "")
        self.assertEqual(len(Status), 24)  # pinned numbers 0..23

    def test_bad_subject_raises_with_the_librarys_message(self):
        with self.assertRaises(aiplat.InvalidArgumentError) as cm:
            aiplat.subject.chat_user_message("alice.>")
        e = cm.exception
        self.assertEqual(e.status, Status.INVALID_ARGUMENT)
        self.assertIsInstance(e, ValueError)
        self.assertIn("subject", e.message)
        # The message is the library's own detail, not the generic text.
        self.assertNotEqual(e.message, aiplat.status_str(Status.INVALID_ARGUMENT))
        st, text = aiplat.last_error()
        self.assertEqual(st, Status.INVALID_ARGUMENT)
        self.assertEqual(text, e.message)

    def test_error_detail_is_per_call(self):
        with self.assertRaises(aiplat.InvalidArgumentError) as first:
            aiplat.subject.validate("a..b")
        with self.assertRaises(aiplat.NotFoundError) as second:
            aiplat.subject.token_at("ai.chat", 5)
        self.assertNotEqual(first.exception.message, second.exception.message)
        aiplat.clear_error()
        self.assertEqual(aiplat.last_error(), (Status.OK, ""))

    def test_error_classes(self):
        self.assertIsInstance(aiplat.error_for(Status.TIMEOUT), TimeoutError)
        self.assertIsInstance(aiplat.error_for(Status.NOT_FOUND), LookupError)
        e = aiplat.error_for(99, "from the future")
        self.assertEqual(e.status, 99)
        self.assertIn("from the future", str(e))

    def test_nul_in_a_string_is_refused_before_c_sees_it(self):
        with self.assertRaises(ValueError):
            aiplat.subject.validate("ai.chat\0.x")
        with self.assertRaises(TypeError):
            aiplat.subject.validate(42)


class TestSubjects(unittest.TestCase):
    def test_builders(self):
        self.assertEqual(aiplat.subject.chat_user_message("u-1"), "ai.chat.user.u-1.message")
        self.assertEqual(aiplat.subject.build("stt", "module", "transcribe"),
                         "ai.stt.module.transcribe")
        self.assertEqual(aiplat.subject.join("a", "b", "c"), "a.b.c")
        self.assertEqual(aiplat.subject.token_at("ai.chat.user.u1.message", 3), "u1")
        self.assertEqual(aiplat.subject.chat_user_message_filter(), "ai.chat.user.*.message")
        aiplat.subject.validate_filter("ai.>")
        for hostile in ("a b", "*", ">", "a.b", "", "x\ty"):
            with self.assertRaises(aiplat.InvalidArgumentError, msg=repr(hostile)):
                aiplat.subject.check_token(hostile)


class TestConfig(unittest.TestCase):
    def test_defaults_and_overrides(self):
        with aiplat.Config() as cfg:
            self.assertEqual(cfg.get("HEALTH_PORT"), "8080")
            cfg.set("HEALTH_PORT", 9090)
            self.assertEqual(cfg.get_int("HEALTH_PORT", 0, 65535), 9090)
            self.assertTrue(cfg.is_set("HEALTH_PORT"))
            cfg.set("HEALTH_PORT", None)
            self.assertEqual(cfg.get("HEALTH_PORT"), "8080")
            self.assertIsNone(cfg.get("AIPLAT_PY_TEST_NEVER_SET"))

    def test_typed_getters(self):
        cfg = aiplat.Config({"X_BOOL": True, "X_DUR": "1h30m", "X_F": 0.25,
                             "X_URL": "http://127.0.0.1:8000/v1"})
        self.assertIs(cfg.get_bool("X_BOOL"), True)
        self.assertEqual(cfg.get_duration_ms("X_DUR"), 5400000)
        self.assertEqual(cfg.get_float("X_F", 0, 1), 0.25)
        self.assertEqual(cfg.get_url("X_URL"), "http://127.0.0.1:8000/v1")
        self.assertEqual(aiplat.parse_duration_ms("500ms"), 500)
        cfg.close()
        cfg.close()  # idempotent
        with self.assertRaises(ValueError):
            cfg.get("X_BOOL")

    def test_invalid_values_name_the_variable(self):
        cfg = aiplat.Config({"WORKERS": "many", "X_DUR": "10"})
        with self.assertRaises(aiplat.ConfigError) as cm:
            cfg.get_int("WORKERS", 1, 1024)
        self.assertIn("WORKERS", cm.exception.message)
        with self.assertRaises(aiplat.ConfigError) as cm:
            cfg.get_duration_ms("X_DUR")
        self.assertIn("X_DUR", cm.exception.message)
        with self.assertRaises(aiplat.ConfigError) as cm:
            cfg.validate()
        self.assertIn("WORKERS", cm.exception.message)
        with self.assertRaises(aiplat.ConfigError):
            cfg.require("AIPLAT_PY_TEST_NEVER_SET")

    def test_secret_from_file_is_never_echoed(self):
        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write("s3cret-value\n")
        os.environ["LLM_API_KEY_FILE"] = f.name
        try:
            cfg = aiplat.Config()
            self.assertEqual(cfg.get("LLM_API_KEY"), "s3cret-value")
            self.assertTrue(aiplat.is_secret("LLM_API_KEY"))
        finally:
            del os.environ["LLM_API_KEY_FILE"]
            os.unlink(f.name)

    def test_settings_table(self):
        names = [n for n, _, _ in aiplat.settings()]
        self.assertIn("NATS_URL", names)
        self.assertIn("LOG_LEVEL", names)


class TestLog(unittest.TestCase):
    def setUp(self):
        self.records = []
        self.threads = set()

        def sink(level, record):
            self.records.append((level, record))
            self.threads.add(threading.current_thread().name)

        log.set_callback(sink, parse=True)
        log.set_level("DEBUG")

    def tearDown(self):
        log.set_callback(None)
        log.reset_level()
        log.set_service(None)

    def test_records_reach_the_callback_as_json(self):
        log.set_service("py-test")
        log.info("hello", user_id="u1", api_key="k", nothing=None)
        self.assertEqual(len(self.records), 1)
        level, rec = self.records[0]
        self.assertEqual(level, log.Level.INFO)
        self.assertEqual(rec["msg"], "hello")
        self.assertEqual(rec["service"], "py-test")
        self.assertEqual(rec["user_id"], "u1")
        self.assertEqual(rec["api_key"], "[REDACTED]")
        self.assertIsNone(rec["nothing"])

    def test_level_filter(self):
        log.set_level(log.Level.WARNING)
        self.assertEqual(log.get_level(), log.Level.WARNING)
        log.info("dropped")
        log.error("kept")
        self.assertEqual([r["msg"] for _, r in self.records], ["kept"])
        with self.assertRaises(aiplat.ConfigError):
            log.parse_level("LOUD")

    def test_thread_context(self):
        log.set_thread_context("req-1", "0af7651916cd43dd8448eb211c80319c")
        try:
            log.warning("inside")
        finally:
            log.set_thread_context(None, None)
        rec = self.records[0][1]
        self.assertEqual(rec["request_id"], "req-1")
        self.assertEqual(rec["trace_id"], "0af7651916cd43dd8448eb211c80319c")

    def test_callback_from_many_threads(self):
        # The barrier keeps all four alive at once: a thread id can be
        # reused once its thread ends, so names tell the callers apart.
        start = threading.Barrier(4)

        def worker(i):
            start.wait()
            for j in range(50):
                log.debug("t", i=i, j=j)

        threads = [
            threading.Thread(target=worker, args=(i,), name=f"log-worker-{i}")
            for i in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(self.records), 200)
        self.assertEqual(self.threads, {f"log-worker-{i}" for i in range(4)})

    def test_exception_in_callback_is_contained(self):
        def bad(level, record):
            raise RuntimeError("sink broke")

        log.set_callback(bad)
        import io
        import sys
        saved = sys.stderr
        sys.stderr = io.StringIO()
        try:
            log.info("x")  # must not raise into C or here
            printed = sys.stderr.getvalue()
        finally:
            sys.stderr = saved
        self.assertIn("sink broke", printed)


if __name__ == "__main__":
    unittest.main()
