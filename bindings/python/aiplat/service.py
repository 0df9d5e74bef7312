"""The service framework (aiplat/service.h) with handlers written in Python.

::

    svc = aiplat.Service("echo", "1.0.0", "echoes chat messages")

    @svc.endpoint("echo", "demo.echo", MsgType.CHAT_REQUEST, MsgType.CHAT_RESPONSE)
    def echo(req):
        text = req.message["message"]
        if not text:
            raise aiplat.BadRequestError(Status.BAD_REQUEST, "message is empty")
        return Msg(MsgType.CHAT_RESPONSE, request_id=req.id, text=text)

    svc.run()  # until SIGTERM / SIGINT / svc.stop()

A handler runs on one of the service's worker threads (``WORKERS``, default
4); ctypes takes the GIL for it, so Python handlers run one at a time unless
they release it (blocking I/O, time.sleep, calls into libaiplat do). It
answers by returning a :class:`~aiplat.Msg` or bytes, or by calling
``req.respond()`` / ``req.fail()`` itself. An exception becomes an error
reply: an :class:`~aiplat.AiplatError` with its own status and message,
anything else ``INTERNAL`` with the exception's type and text (and the
traceback in the log). Nothing a handler does can unwind into C.
"""

import ctypes
import signal
import threading
import traceback
from collections.abc import Callable
from typing import Any, Self

from ._lib import HANDLER_FN, HEALTH_CHECK_FN, lib
from ._util import Buffer, Closing, data, dec, enc, text
from .config import Config
from .errors import AiplatError, HandleError, Status, check
from .log import Level, log
from .message import Msg, MsgType


class Request:
    """One request being handled; usable only during the handler call."""

    def __init__(self, ptr: int | None) -> None:
        self._ptr = ctypes.c_void_p(ptr)
        self._active = True
        self._answered = False
        self._message: Msg | None = None

    def _valid(self) -> bool:
        return self._active

    @property
    def handle(self) -> ctypes.c_void_p:
        if not self._active:
            raise ValueError("request: used after its handler returned")
        return self._ptr

    @property
    def subject(self) -> str:
        return text(lib.aiplat_request_subject(self.handle))

    @property
    def endpoint(self) -> str:
        return text(lib.aiplat_request_endpoint(self.handle))

    @property
    def data(self) -> bytes:
        """The raw payload (bytes)."""
        n = ctypes.c_size_t()
        p = lib.aiplat_request_data(self.handle, ctypes.byref(n))
        return ctypes.string_at(p, n.value) if p and n.value else b""

    def header(self, key: str, default: str | None = None) -> str | None:
        v = lib.aiplat_request_header(self.handle, enc(key, "header key"))
        return default if v is None else dec(v)

    @property
    def message(self) -> Msg | None:
        """The decoded request (a borrowed Msg), or None for raw endpoints."""
        if self._message is None:
            p = lib.aiplat_request_message(self.handle)
            if p:
                self._message = Msg._adopt(ctypes.c_void_p(p), self)
        return self._message

    @property
    def id(self) -> str | None:
        return dec(lib.aiplat_request_id(self.handle))

    @property
    def trace_id(self) -> str | None:
        return dec(lib.aiplat_request_trace_id(self.handle))

    @property
    def traceparent(self) -> str | None:
        return dec(lib.aiplat_request_traceparent(self.handle))

    @property
    def time_left_ms(self) -> int:
        left: int = lib.aiplat_request_time_left_ms(self.handle)
        return left

    @property
    def has_reply(self) -> bool:
        return bool(lib.aiplat_request_has_reply(self.handle))

    def respond(self, reply: Msg | Buffer) -> None:
        """Reply with a Msg (encoded) or bytes/str (sent as they are)."""
        if isinstance(reply, Msg):
            st = lib.aiplat_request_respond(self.handle, reply.handle)
        else:
            buf, n = data(reply)
            st = lib.aiplat_request_respond_bytes(self.handle, buf, n)
        self._answered = True
        check(st)

    def fail(self, status: Status | int, message: str = "") -> None:
        """Send the error reply now (the reply type with ``error`` set)."""
        self._answered = True
        st = lib.aiplat_request_fail(self.handle, int(status), enc(message or None, "message"))
        if st != int(status):
            check(st)

    def publish(self, subject: str, msg: Msg) -> None:
        """Publish a Msg on behalf of the request (with its traceparent)."""
        check(lib.aiplat_request_publish(self.handle, enc(subject, "subject"), msg.handle))

    def in_progress(self) -> None:
        check(lib.aiplat_request_in_progress(self.handle))


# A handler: returns the reply (a Msg, bytes or str), or None when it
# answered itself (or the endpoint has no reply).
Handler = Callable[[Request], Msg | Buffer | None]


def _make_handler(fn: Handler, name: str) -> Any:
    def trampoline(req_ptr: int | None, user_data: int | None) -> int:
        req = Request(req_ptr)
        try:
            result = fn(req)
            if result is not None:
                if req._answered:
                    raise RuntimeError("handler answered and also returned a reply")
                if not isinstance(result, (Msg, bytes, bytearray, memoryview, str)):
                    raise TypeError("handler returned %s; return a Msg, bytes or None"
                                    % type(result).__name__)
                req.respond(result)
            return Status.OK
        except BaseException as e:  # everything, KeyboardInterrupt included
            return _fail(req, name, e)
        finally:
            req._active = False

    return HANDLER_FN(trampoline)


def _fail(req: Request, endpoint: str, exc: BaseException) -> int:
    if isinstance(exc, AiplatError):
        status, message = int(exc.status), exc.message
    else:
        status = int(Status.INTERNAL)
        message = "%s: %s" % (type(exc).__name__, exc) if str(exc) else type(exc).__name__
    try:
        log(Level.ERROR, "python handler failed", endpoint=endpoint, error=message,
            traceback="".join(traceback.format_exception(exc)).rstrip())
        if not req._answered:
            req.fail(status, message)
    except BaseException:
        pass  # the framework still answers from the returned status
    return status or int(Status.INTERNAL)


# A readiness check: ok, or (ok, why not).
Check = Callable[[], bool | tuple[bool, str]]


def _make_check(fn: Check) -> Any:
    def trampoline(buf: Any, size: int, user_data: int | None) -> bool:
        try:
            result = fn()
            ok, why = result if isinstance(result, tuple) else (result, "")
            if why:
                raw = str(why).encode("utf-8", "replace")[: size - 1]
                ctypes.memmove(buf, raw, len(raw))
                buf[len(raw)] = b"\0"
            return bool(ok)
        except BaseException as e:
            raw = ("check raised %s" % type(e).__name__).encode()[: size - 1]
            ctypes.memmove(buf, raw, len(raw))
            buf[len(raw)] = b"\0"
            return False

    return HEALTH_CHECK_FN(trampoline)


class Service(Closing):
    """A service: endpoints with Python handlers, health, NATS micro
    discovery and graceful shutdown. Settings come from ``config`` (a
    :class:`~aiplat.Config`, which must outlive the service) or from the
    environment."""

    def __init__(
        self,
        name: str,
        version: str = "0.0.0",
        description: str = "",
        config: Config | None = None,
        workers: int | None = None,
        request_timeout_ms: int | None = None,
        shutdown_grace_ms: int | None = None,
    ) -> None:
        self._own_config = config is None
        self._config = Config() if config is None else config
        self._ptr = ctypes.c_void_p()
        self._thunks: list[Any] = []  # handler and check thunks, alive until close()
        self._stop_event = threading.Event()
        self._state = "new"
        check(lib.aiplat_service_create(ctypes.byref(self._ptr), self._config.handle,
                                        enc(name, "name"), enc(version, "version"),
                                        enc(description, "description")))
        # Python owns signal handling (run() installs handlers on the main
        # thread); the library must not block SIGINT/SIGTERM.
        check(lib.aiplat_service_set_handle_signals(self._ptr, False), self._err())
        if workers is not None:
            check(lib.aiplat_service_set_workers(self._ptr, workers), self._err())
        if request_timeout_ms is not None:
            check(lib.aiplat_service_set_request_timeout_ms(self._ptr, request_timeout_ms),
                  self._err())
        if shutdown_grace_ms is not None:
            check(lib.aiplat_service_set_shutdown_grace_ms(self._ptr, shutdown_grace_ms),
                  self._err())

    @property
    def handle(self) -> ctypes.c_void_p:
        if not self._ptr:
            raise ValueError("service: closed")
        return self._ptr

    def _err(self) -> HandleError:
        return (lib.aiplat_service_last_error, self._ptr)

    def endpoint(
        self,
        name: str,
        subject: str,
        request_type: MsgType | int = MsgType.CHAT_REQUEST,
        reply_type: MsgType | int = MsgType.CHAT_RESPONSE,
        handler: Handler | None = None,
        queue_group: str | None = None,
    ) -> Any:
        """Add a request/reply endpoint; usable as a decorator. Use
        ``MsgType.INVALID`` for raw bytes in or out."""
        def add(fn: Handler) -> Handler:
            thunk = _make_handler(fn, name)
            self._thunks.append(thunk)
            check(lib.aiplat_service_add_endpoint(
                self.handle, enc(name, "name"), enc(subject, "subject"),
                enc(queue_group, "queue group"), int(request_type), int(reply_type), thunk,
                None), self._err())
            return fn

        return add(handler) if handler is not None else add

    def js_endpoint(
        self,
        name: str,
        stream: str,
        durable: str,
        subject: str,
        request_type: MsgType | int,
        reply_type: MsgType | int,
        handler: Handler | None = None,
    ) -> Any:
        """Add a JetStream endpoint (durable consumer, acks by outcome)."""
        def add(fn: Handler) -> Handler:
            thunk = _make_handler(fn, name)
            self._thunks.append(thunk)
            check(lib.aiplat_service_add_js_endpoint(
                self.handle, enc(name, "name"), enc(stream, "stream"),
                enc(durable, "durable"), enc(subject, "subject"), int(request_type),
                int(reply_type), thunk, None), self._err())
            return fn

        return add(handler) if handler is not None else add

    def add_check(self, name: str, fn: Check) -> None:
        """A readiness check ``fn() -> bool or (bool, why)``, run on the
        health server's thread at every /ready: it must not block."""
        thunk = _make_check(fn)
        self._thunks.append(thunk)
        check(lib.aiplat_service_add_check(self.handle, enc(name, "name"), thunk, None),
              self._err())

    def start(self) -> Self:
        """Connect, start health, subscribe; returns once requests flow."""
        check(lib.aiplat_service_start(self.handle), self._err())
        self._state = "started"
        return self

    def stop(self, wait: bool = True) -> None:
        """Shut down gracefully: stop taking requests, let in-flight ones
        finish within the grace period, drain. With ``wait`` (from any
        thread but a handler's) it returns when done."""
        self._stop_event.set()
        if self._ptr:
            lib.aiplat_service_stop(self._ptr)
        if wait and self._state == "started":
            self._state = "stopping"
            st = lib.aiplat_service_run(self._ptr)  # returns after the shutdown
            self._state = "stopped"
            check(st, self._err())

    def run(self, install_signal_handlers: bool = True) -> None:
        """Start (if needed) and serve until SIGTERM/SIGINT or stop()."""
        if self._state == "new":
            self.start()
        previous: dict[signal.Signals, Any] = {}
        if install_signal_handlers and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, lambda *_: self._stop_event.set())
        try:
            while not self._stop_event.wait(0.2):
                pass
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
            if self._state == "started":
                self.stop()

    @property
    def id(self) -> str:
        return text(lib.aiplat_service_id(self.handle))

    @property
    def health_port(self) -> int:
        """The health server's port (useful with HEALTH_PORT=0)."""
        port: int = lib.aiplat_health_port(lib.aiplat_service_health(self.handle))
        return port

    def close(self) -> None:
        """Stop (if running) and release the service."""
        if self._ptr:
            if self._state == "started":
                self.stop()
            lib.aiplat_service_destroy(self._ptr)
            self._ptr = ctypes.c_void_p()
        self._thunks = []
        if self._own_config:
            self._config.close()

