"""The service framework with handlers written in Python, against a real
nats-server and the C example programs: a Python handler answering the C
requester, a Python requester talking to the C echo_service, errors in
handlers becoming error replies, handlers on worker threads (the GIL)."""

import json
import queue
import signal
import subprocess
import threading
import unittest
import urllib.error
import urllib.request

import aiplat
import support
from aiplat import Msg, MsgType, Status

REQUESTER = support.build_path("examples", "requester")
ECHO_SERVICE = support.build_path("examples", "echo_service")


def error_of(reply_bytes):
    r = Msg.decode(MsgType.CHAT_RESPONSE, reply_bytes)
    e = r["error"]
    return (e["code"], e["message"]) if e is not None else None


class ServiceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.nats = support.NatsServer()

    @classmethod
    def tearDownClass(cls):
        cls.nats.stop()

    def setUp(self):
        self.cfg = aiplat.Config({"NATS_URL": self.nats.url, "HEALTH_PORT": 0,
                                  "HEALTH_BIND": "127.0.0.1"})
        self.svc = aiplat.Service("pytest", "1.0.0", "python handlers", config=self.cfg,
                                  workers=4, shutdown_grace_ms=2000)
        self.bus = aiplat.Bus(self.cfg).connect()

    def tearDown(self):
        self.bus.close()
        self.svc.close()
        self.cfg.close()

    def env(self):
        return support.child_env(NATS_URL=self.nats.url, LOG_LEVEL="WARNING")

    def requester(self, subject, text):
        return subprocess.run([REQUESTER, subject, text, "5000"], env=self.env(),
                              capture_output=True, text=True, timeout=30)

    # ---- Python handler, C requester ------------------------------------------

    def test_python_handler_answers_the_c_requester(self):
        threads = queue.Queue()

        @self.svc.endpoint("upper", "py.svc.upper", MsgType.CHAT_REQUEST,
                           MsgType.CHAT_RESPONSE)
        def upper(req):
            threads.put(threading.get_ident())
            self.assertEqual(req.subject, "py.svc.upper")
            self.assertEqual(req.endpoint, "upper")
            self.assertTrue(req.has_reply)
            self.assertRegex(req.trace_id, r"^[0-9a-f]{32}$")
            self.assertGreater(req.time_left_ms, 0)
            text = req.message["message"]
            return Msg(MsgType.CHAT_RESPONSE, request_id=req.id, text=text.upper())

        self.svc.start()
        out = self.requester("py.svc.upper", "hello from c \u00e9")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, "HELLO FROM C \u00c9\n")
        self.assertNotEqual(threads.get(timeout=1), threading.get_ident())

    def test_python_handler_that_raises_gives_the_c_requester_an_error_reply(self):
        def broken(req):
            raise ValueError("kaboom in python")

        self.svc.endpoint("broken", "py.svc.broken", handler=broken)
        self.svc.start()
        out = self.requester("py.svc.broken", "x")
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)  # an error reply
        self.assertIn("INTERNAL: ", out.stderr)  # the error code by name
        self.assertIn("ValueError: kaboom in python", out.stderr)
        # The service is still alive and answering.
        out = self.requester("py.svc.broken", "again")
        self.assertEqual(out.returncode, 1)

    # ---- Python requester, C service ------------------------------------------

    def test_python_client_sends_typed_requests_to_the_c_echo_service(self):
        env = dict(self.env(), HEALTH_PORT="0", HEALTH_BIND="127.0.0.1")
        proc = subprocess.Popen([ECHO_SERVICE], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            with aiplat.Client(self.bus) as client:
                ping = Msg(MsgType.CHAT_REQUEST, user_id="py", message="ping")

                def answered():
                    try:
                        return client.request("demo.echo", ping, MsgType.CHAT_RESPONSE,
                                              timeout_ms=2000, request_id="py-client-1")
                    except aiplat.UnavailableError:
                        return None  # not subscribed yet

                reply = support.wait_for(answered, 20, "echo_service to subscribe")
                self.assertEqual(reply["text"], "ping")
                self.assertEqual(reply["request_id"], "py-client-1")
                # the reply's error is the exception, the reply rides along
                empty = Msg(MsgType.CHAT_REQUEST, user_id="py", message="")
                with self.assertRaises(aiplat.InvalidArgumentError) as cm:
                    client.request("demo.echo", empty, MsgType.CHAT_RESPONSE, timeout_ms=5000)
                self.assertIn("INVALID_ARGUMENT", str(cm.exception))
                self.assertIsNotNone(cm.exception.reply)
                with self.assertRaises(aiplat.UnavailableError):
                    client.request("nobody.listens", ping, MsgType.CHAT_RESPONSE,
                                   timeout_ms=2000)
                self.assertEqual(client.in_flight, 0)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)

    def test_python_requester_talks_to_the_c_echo_service(self):
        env = dict(self.env(), HEALTH_PORT="0", HEALTH_BIND="127.0.0.1")
        proc = subprocess.Popen([ECHO_SERVICE], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            ping = Msg(MsgType.CHAT_REQUEST, user_id="py", message="ping \u2713",
                       request_id="py-req-1")

            def answered():
                try:
                    return self.bus.request("demo.echo", ping, timeout_ms=2000)
                except aiplat.UnavailableError:
                    return None  # not subscribed yet

            reply = support.wait_for(answered, 20, "echo_service to subscribe")
            r = Msg.decode(MsgType.CHAT_RESPONSE, reply.data)
            self.assertEqual(r["text"], "ping \u2713")
            self.assertEqual(r["request_id"], "py-req-1")
            self.assertIsNone(r["error"])
            self.assertTrue(reply.header("traceparent"))

            empty = Msg(MsgType.CHAT_REQUEST, user_id="py", message="")
            reply = self.bus.request("demo.echo", empty, timeout_ms=5000)
            self.assertEqual(error_of(reply.data), (Status.INVALID_ARGUMENT, "message is empty"))
            self.assertEqual(reply.header("Nats-Service-Error-Code"), "400")

            reply = self.bus.request("demo.echo", b"\xff\xff not protobuf", timeout_ms=5000)
            code, message = error_of(reply.data)
            self.assertEqual(code, Status.DECODE)
            self.assertIn("ChatRequest", message)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 0, err.decode(errors="replace"))

    # ---- errors and edge cases -------------------------------------------------

    def test_handler_errors_become_error_replies(self):
        def bad_request(req):
            raise aiplat.BadRequestError(Status.BAD_REQUEST, "no such user")

        def wrong_type(req):
            return 42

        def silent(req):
            return None

        def fails_itself(req):
            req.fail(Status.RATE_LIMITED, "slow down")

        def respond_then_raise(req):
            req.respond(Msg(MsgType.CHAT_RESPONSE, text="sent"))
            raise RuntimeError("after the reply")

        for name, fn in [("bad", bad_request), ("wrongtype", wrong_type), ("silent", silent),
                         ("failsitself", fails_itself), ("late", respond_then_raise)]:
            self.svc.endpoint(name, "py.svc.err." + name, handler=fn)
        self.svc.start()
        req = Msg(MsgType.CHAT_REQUEST, message="x")

        def ask(name):
            return self.bus.request("py.svc.err." + name, req, timeout_ms=5000)

        reply = ask("bad")
        self.assertEqual(error_of(reply.data), (Status.BAD_REQUEST, "no such user"))
        self.assertEqual(reply.header("Nats-Service-Error-Code"), "400")
        code, message = error_of(ask("wrongtype").data)
        self.assertEqual(code, Status.INTERNAL)
        self.assertIn("TypeError", message)
        code, message = error_of(ask("silent").data)
        self.assertEqual(code, Status.INTERNAL)
        self.assertIn("without a reply", message)
        self.assertEqual(error_of(ask("failsitself").data), (Status.RATE_LIMITED, "slow down"))
        r = Msg.decode(MsgType.CHAT_RESPONSE, ask("late").data)
        self.assertEqual(r["text"], "sent")

    def test_undecodable_request_never_reaches_python(self):
        called = []
        self.svc.endpoint("strict", "py.svc.strict", handler=lambda r: called.append(r))
        self.svc.start()
        reply = self.bus.request("py.svc.strict", b"\x0a\xff", timeout_ms=5000)
        self.assertEqual(error_of(reply.data)[0], Status.DECODE)
        self.assertEqual(called, [])

    def test_raw_endpoint_and_borrowed_request(self):
        kept = []

        def raw(req):
            kept.append(req)
            self.assertIsNone(req.message)
            return b"got:" + req.data + b":" + req.header("X-Tag", "").encode()

        self.svc.endpoint("raw", "py.svc.raw", MsgType.INVALID, MsgType.INVALID, handler=raw)
        self.svc.start()
        reply = self.bus.request("py.svc.raw", b"\x00\x01", headers={"X-Tag": "t"},
                                 timeout_ms=5000)
        self.assertEqual(reply.data, b"got:\x00\x01:t")
        # The reply may arrive before the handler call has returned; once it
        # has, the request is gone and using it raises instead of crashing.
        support.wait_for(lambda: not kept[0]._valid(), 5, "the handler to return")
        with self.assertRaises(ValueError):
            kept[0].data

    def test_handlers_run_concurrently_on_worker_threads(self):
        # Three handlers must be inside Python at the same time to pass the
        # barrier: the GIL is released while each waits, and every library
        # thread takes it for its own callback. The requests come from this
        # process too, from threads blocked in C (the GIL released there).
        # One endpoint each: an endpoint's requests are spread over its
        # workers by the server, so only distinct endpoints are sure to be
        # on distinct threads.
        barrier = threading.Barrier(3, timeout=10)
        threads = set()
        lock = threading.Lock()

        def meet(req):
            with lock:
                threads.add(threading.get_ident())
            barrier.wait()
            return Msg(MsgType.CHAT_RESPONSE, text="met")

        for i in range(3):
            self.svc.endpoint("meet%d" % i, "py.svc.meet.%d" % i, handler=meet)
        self.svc.start()
        results = queue.Queue()

        def ask(i):
            try:
                r = self.bus.request("py.svc.meet.%d" % i, Msg(MsgType.CHAT_REQUEST, message="m"),
                                     timeout_ms=15000)
                results.put(Msg.decode(MsgType.CHAT_RESPONSE, r.data)["text"])
            except Exception as e:  # reported below
                results.put(repr(e))

        askers = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
        for t in askers:
            t.start()
        for t in askers:
            t.join(30)
        self.assertEqual(sorted(results.get() for _ in range(3)), ["met"] * 3)
        self.assertEqual(len(threads), 3)
        self.assertNotIn(threading.get_ident(), threads)

    def test_readiness_check_in_python_and_run_until_stop(self):
        state = {"ready": False}
        self.svc.endpoint("noop", "py.svc.noop",
                          handler=lambda r: Msg(MsgType.CHAT_RESPONSE, text="ok"))
        self.svc.add_check("python", lambda: (state["ready"], "warming up"))
        self.svc.start()
        port = self.svc.health_port
        self.assertGreater(port, 0)

        def ready():
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/ready" % port, timeout=5) as r:
                    return r.status, json.load(r)
            except urllib.error.HTTPError as e:
                return e.code, json.load(e)

        status, body = ready()
        self.assertEqual(status, 503)
        self.assertEqual(body["checks"]["python"], {"ok": False, "message": "warming up"})
        state["ready"] = True
        self.assertEqual(ready()[0], 200)
        self.assertTrue(self.svc.id)

        threading.Timer(0.2, lambda: self.svc.stop(wait=False)).start()
        self.svc.run()  # returns after the graceful shutdown
        with self.assertRaises(aiplat.UnavailableError):
            self.bus.request("py.svc.noop", Msg(MsgType.CHAT_REQUEST), timeout_ms=2000)

    def test_configuration_errors(self):
        with self.assertRaises(aiplat.InvalidArgumentError):
            aiplat.Service("bad name!", "1.0.0", config=self.cfg)
        with self.assertRaises(aiplat.InvalidArgumentError):
            self.svc.endpoint("x", "py.bad subject", handler=lambda r: None)
        with self.assertRaises(aiplat.StateError):
            self.svc.start()  # no endpoint yet


if __name__ == "__main__":
    unittest.main()
