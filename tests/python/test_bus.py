"""The bus against a real nats-server: publish/subscribe with a Python
callback, request/reply, headers, errors, JetStream, Key-Value."""

import queue
import threading
import unittest

import aiplat
import support
from aiplat import Status, log


class BusTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.nats = support.NatsServer()

    @classmethod
    def tearDownClass(cls):
        cls.nats.stop()

    def setUp(self):
        self.cfg = aiplat.Config({"NATS_URL": self.nats.url})
        self.bus = aiplat.Bus(self.cfg).connect()

    def tearDown(self):
        self.bus.close()
        self.cfg.close()

    def test_publish_subscribe_with_headers(self):
        got = queue.Queue()
        main = threading.get_ident()

        def on_msg(msg):
            got.put((msg.subject, msg.data, msg.header("X-Kind"),
                     [v for k, v in msg.headers if k == "X-Multi"],
                     threading.get_ident()))

        sub = self.bus.subscribe("py.events.*", on_msg)
        self.bus.publish("py.events.one", b"\x00binary\xff",
                         headers={"X-Kind": "test", "X-Multi": ["a", "b"]})
        self.bus.publish("py.events.two", "text")
        first = got.get(timeout=5)
        second = got.get(timeout=5)
        self.assertEqual(first[:4], ("py.events.one", b"\x00binary\xff", "test", ["a", "b"]))
        self.assertEqual(second[:3], ("py.events.two", b"text", None))
        self.assertNotEqual(first[4], main)  # a library thread ran Python
        sub.close()
        sub.close()

    def test_request_reply_through_a_python_responder(self):
        def responder(msg):
            msg.respond(msg.data.upper(), headers={"X-Echo": msg.header("X-In", "")})

        self.bus.subscribe("py.upper", responder)
        reply = self.bus.request("py.upper", b"shout", headers={"X-In": "v"}, timeout_ms=5000)
        self.assertEqual(reply.data, b"SHOUT")
        self.assertEqual(reply.header("X-Echo"), "v")
        with self.assertRaises(ValueError):
            reply.respond(b"no")  # a reply is a copy, not a live message

    def test_retained_message_answered_from_another_thread(self):
        def responder(msg):
            msg.retain()
            threading.Timer(0.05, lambda: (msg.respond(b"later"), msg.release())).start()

        self.bus.subscribe("py.later", responder)
        self.assertEqual(self.bus.request("py.later", b"", timeout_ms=5000).data, b"later")

    def test_message_is_invalid_after_the_callback(self):
        kept = queue.Queue()
        self.bus.subscribe("py.keep", kept.put)
        self.bus.publish("py.keep", b"x")
        msg = kept.get(timeout=5)
        self.assertEqual(msg.data, b"x")  # the copies stay
        support.wait_for(lambda: not msg._ptr, 5, "the callback to return")
        with self.assertRaises(ValueError):
            msg.respond(b"too late")

    def test_exception_in_a_callback_does_not_kill_the_subscription(self):
        seen = queue.Queue()

        def flaky(msg):
            seen.put(msg.data)
            if msg.data == b"boom":
                raise RuntimeError("callback failure (expected by the test)")

        import io
        import sys
        saved, sys.stderr = sys.stderr, io.StringIO()
        try:
            self.bus.subscribe("py.flaky", flaky)
            self.bus.publish("py.flaky", b"boom")
            self.bus.publish("py.flaky", b"after")
            self.assertEqual(seen.get(timeout=5), b"boom")
            self.assertEqual(seen.get(timeout=5), b"after")
            printed = sys.stderr.getvalue()
        finally:
            sys.stderr = saved
        self.assertIn("callback failure", printed)

    def test_bad_subject_raises_the_librarys_message(self):
        for bad in ("py.bad subject", "py..x", "py.*", ""):
            with self.assertRaises(aiplat.InvalidArgumentError, msg=bad) as cm:
                self.bus.publish(bad, b"x")
            self.assertIn("subject", cm.exception.message)
            self.assertNotEqual(cm.exception.message,
                                aiplat.status_str(Status.INVALID_ARGUMENT))

    def test_no_responder_and_timeout(self):
        with self.assertRaises(aiplat.UnavailableError):
            self.bus.request("py.nobody.home", b"x", timeout_ms=2000)
        self.bus.subscribe("py.silent", lambda m: None)
        with self.assertRaises(aiplat.TimeoutError) as cm:
            self.bus.request("py.silent", b"x", timeout_ms=200)
        self.assertEqual(cm.exception.status, Status.TIMEOUT)

    def test_header_injection_is_refused(self):
        with self.assertRaises(aiplat.InvalidArgumentError):
            self.bus.publish("py.h", b"", headers={"X-Bad": "a\r\nInjected: 1"})

    def test_oversized_payload(self):
        too_big = b"x" * (self.bus.max_payload + 1)
        with self.assertRaises(aiplat.TooLargeError):
            self.bus.publish("py.big", too_big)

    def test_closed_bus(self):
        bus = aiplat.Bus(self.cfg).connect()
        self.assertTrue(bus.is_connected)
        bus.close()
        with self.assertRaises(ValueError):
            bus.publish("py.x", b"")

    def test_connection_refused(self):
        cfg = aiplat.Config({"NATS_URL": "nats://127.0.0.1:1", "NATS_CONNECT_TIMEOUT": "1s",
                             "NATS_MAX_RECONNECTS": "0"})
        bus = aiplat.Bus(cfg)
        with self.assertRaises(aiplat.ConnectionFailedError) as cm:
            bus.connect()
        self.assertTrue(cm.exception.message)
        bus.close()

    def test_library_log_records_from_library_threads(self):
        records = queue.Queue()
        log.set_callback(lambda lvl, rec: records.put((rec, threading.get_ident())),
                         parse=True)
        events = queue.Queue()
        log.set_level(log.Level.INFO)
        try:
            bus = aiplat.Bus(self.cfg)
            bus.set_event_callback(lambda ev, st, detail: events.put((ev, threading.get_ident())))
            bus.connect()
            bus.close()
            seen = [events.get(timeout=5) for _ in range(2)]
            self.assertEqual([ev for ev, _ in seen],
                             [aiplat.Event.DISCONNECTED, aiplat.Event.CLOSED])
            main = threading.get_ident()
            self.assertTrue(all(t != main for _, t in seen))  # the NATS client's thread
            got = []
            while not records.empty():
                got.append(records.get())
            msgs = [rec["msg"] for rec, _ in got]
            self.assertIn("nats connected", msgs)
            self.assertIn("nats connection closed", msgs)
            self.assertTrue(any(t != main for _, t in got), got)
        finally:
            log.set_callback(None)
            log.reset_level()

    def test_jetstream_and_kv(self):
        self.bus.stream_ensure("PYJOBS", ["py.jobs.>"], retention=aiplat.Retention.WORK_QUEUE)
        seqs = [self.bus.js_publish("py.jobs.a", b"job-%d" % i) for i in range(3)]
        self.assertEqual(seqs, sorted(seqs))
        got = queue.Queue()

        def worker(msg):
            self.assertTrue(msg.is_jetstream)
            if msg.data == b"job-1" and msg.delivery_count() == 1:
                msg.nak()  # delivered again
                return
            got.put(msg.data)
            msg.ack()

        sub = self.bus.js_subscribe("PYJOBS", "pyworker", worker, ack_wait_ms=5000)
        done = sorted(got.get(timeout=10) for _ in range(3))
        self.assertEqual(done, [b"job-0", b"job-1", b"job-2"])
        sub.close()
        self.bus.stream_delete("PYJOBS")
        with self.assertRaises(aiplat.NotFoundError):
            self.bus.stream_delete("PYJOBS")

        kv = self.bus.kv("pybucket")
        r1 = kv.put("greeting", b"hi")
        r2 = kv.put("greeting", "hello")
        self.assertGreater(r2, r1)
        self.assertEqual(kv.get("greeting"), b"hello")
        kv.delete("greeting")
        self.assertIsNone(kv.get("greeting"))
        with self.assertRaises(aiplat.InvalidArgumentError):
            kv.put("bad key with spaces", b"")
        kv.close()


if __name__ == "__main__":
    unittest.main()
