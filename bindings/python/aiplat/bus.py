"""The NATS bus (aiplat/bus.h): publish, request, subscribe, headers,
JetStream and Key-Value.

Callbacks (subscriptions, connection events) run on library threads, one at
a time per subscription; ctypes takes the GIL for them. A message handed to
a callback is usable during the call only, unless the callback keeps it
with :meth:`BusMessage.retain`. The ctypes thunks of a bus's callbacks stay
referenced until :meth:`Bus.close`, so a callback that closes its own
subscription cannot free the code it is running.
"""

import ctypes
import enum
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Self

from ._lib import BUS_EVENT_FN, BUS_MSG_FN, lib
from ._util import Buffer, Closing, Text, data, dec, enc, strv, take_bytes, text
from .config import Config
from .errors import HandleError, Status, check
from .message import Msg


class Event(enum.IntEnum):
    CONNECTED = 1
    DISCONNECTED = 2
    RECONNECTED = 3
    CLOSED = 4
    ERROR = 5
    LAME_DUCK = 6


class Retention(enum.IntEnum):
    LIMITS = 0
    WORK_QUEUE = 1
    INTEREST = 2


# Headers as a mapping (a value may be a list of values) or (key, value) pairs.
Headers = Mapping[str, Text | Sequence[Text]] | Iterable[tuple[str, Text]]


def _pairs(headers: Headers | None) -> list[tuple[str, Text]]:
    """Headers as a list of (key, value): from a dict (a value may be a
    list of values) or an iterable of pairs."""
    if headers is None:
        return []
    items: Iterable[tuple[str, Any]] = (
        headers.items() if isinstance(headers, Mapping) else headers
    )
    out: list[tuple[str, Text]] = []
    for key, value in items:
        if isinstance(value, (list, tuple)):
            out.extend((key, v) for v in value)
        else:
            out.append((key, value))
    return out


class _CHeaders:
    """A temporary ``aiplat_headers`` built from Python headers."""

    def __init__(self, headers: Headers | None) -> None:
        self.ptr = ctypes.c_void_p()
        pairs = _pairs(headers)
        if not pairs:
            return
        check(lib.aiplat_headers_create(ctypes.byref(self.ptr)))
        try:
            for key, value in pairs:
                check(lib.aiplat_headers_add(self.ptr, enc(key, "header key"),
                                             enc(value, "header value")),
                      (lib.aiplat_headers_last_error, self.ptr))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.ptr:
            lib.aiplat_headers_destroy(self.ptr)
            self.ptr = ctypes.c_void_p()

    def __enter__(self) -> ctypes.c_void_p | None:
        return self.ptr if self.ptr else None

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_headers(hptr: ctypes.c_void_p) -> list[tuple[str, str]]:
    out = []
    for i in range(lib.aiplat_headers_count(hptr)):
        out.append((text(lib.aiplat_headers_key_at(hptr, i)),
                    text(lib.aiplat_headers_value_at(hptr, i))))
    return out


class BusMessage:
    """A received message: ``subject``, ``reply``, ``data`` (bytes) and
    ``headers`` (a list of (key, value) pairs) are copies; acks and
    :meth:`respond` need the live C message (inside the callback, or
    after :meth:`retain`)."""

    subject: str
    reply: str | None
    data: bytes
    headers: list[tuple[str, str]]
    is_jetstream: bool

    def __init__(self, ptr: ctypes.c_void_p | int | None, live: bool) -> None:
        self._ptr = ptr if isinstance(ptr, ctypes.c_void_p) else ctypes.c_void_p(ptr)
        self._live = live
        self._retained = False
        self.subject = text(lib.aiplat_bus_msg_subject(self._ptr))
        self.reply = dec(lib.aiplat_bus_msg_reply(self._ptr))
        n = lib.aiplat_bus_msg_len(self._ptr)
        p = lib.aiplat_bus_msg_data(self._ptr)
        self.data = ctypes.string_at(p, n) if p and n else b""
        hp = ctypes.c_void_p()
        check(lib.aiplat_bus_msg_headers(self._ptr, ctypes.byref(hp)))
        self.headers = _read_headers(hp)
        self.is_jetstream = bool(lib.aiplat_bus_msg_is_jetstream(self._ptr))

    def header(self, key: str, default: str | None = None) -> str | None:
        """The first value of ``key`` (case-sensitive), or ``default``."""
        for k, v in self.headers:
            if k == key:
                return v
        return default

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return "<BusMessage %s %d bytes>" % (self.subject, len(self.data))

    # ---- live operations -----------------------------------------------------

    @property
    def handle(self) -> ctypes.c_void_p:
        if not self._ptr:
            raise ValueError("bus message: no longer valid (retain() it inside the callback "
                             "to answer or ack it later)")
        return self._ptr

    def _err(self) -> HandleError:
        return (lib.aiplat_bus_msg_last_error, self._ptr)

    def retain(self) -> Self:
        """Keep the C message after the callback returns (to respond or ack
        later, from any thread); release it with :meth:`release`."""
        if not self._retained:
            lib.aiplat_bus_msg_retain(self.handle)
            self._retained = True
        return self

    def release(self) -> None:
        if self._retained and self._ptr:
            lib.aiplat_bus_msg_destroy(self._ptr)
        self._retained = False
        self._ptr = ctypes.c_void_p()

    def _end_callback(self) -> None:
        if not self._retained:
            self._ptr = ctypes.c_void_p()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:
            pass

    def respond(self, payload: Buffer, headers: Headers | None = None) -> None:
        """Publish a reply on the message's reply subject."""
        buf, n = data(payload)
        with _CHeaders(headers) as h:
            check(lib.aiplat_bus_msg_respond(self.handle, buf, n, h), self._err())

    def ack(self, sync_timeout_ms: int | None = None) -> None:
        if sync_timeout_ms is None:
            check(lib.aiplat_bus_msg_ack(self.handle), self._err())
        else:
            check(lib.aiplat_bus_msg_ack_sync(self.handle, sync_timeout_ms), self._err())

    def nak(self, delay_ms: int | None = None) -> None:
        if delay_ms is None:
            check(lib.aiplat_bus_msg_nak(self.handle), self._err())
        else:
            check(lib.aiplat_bus_msg_nak_with_delay(self.handle, delay_ms), self._err())

    def term(self) -> None:
        check(lib.aiplat_bus_msg_term(self.handle), self._err())

    def in_progress(self) -> None:
        check(lib.aiplat_bus_msg_in_progress(self.handle), self._err())

    def delivery_count(self) -> int:
        out = ctypes.c_uint64()
        check(lib.aiplat_bus_msg_delivery_count(self.handle, ctypes.byref(out)), self._err())
        return out.value


def _report(where: str) -> None:
    """Print an exception raised by a Python callback (it must not unwind
    into C)."""
    try:
        sys.stderr.write("aiplat: exception in %s\n" % where)
        sys.excepthook(*sys.exc_info())
    except BaseException:
        pass


class Subscription:
    """A subscription; close it (or the bus) to stop it."""

    def __init__(self, bus: "Bus", ptr: ctypes.c_void_p, subject: str) -> None:
        self._bus = bus
        self._ptr = ptr
        self.subject = subject

    def _err(self) -> HandleError:
        return (lib.aiplat_bus_sub_last_error, self._ptr)

    @property
    def handle(self) -> ctypes.c_void_p:
        if not self._ptr:
            raise ValueError("subscription: closed")
        return self._ptr

    def unsubscribe(self) -> None:
        """Stop now; returns when no callback of it runs any more (so not
        from its own callback: StateError)."""
        check(lib.aiplat_bus_sub_unsubscribe(self.handle), self._err())

    def drain(self, timeout_ms: int = 5000) -> None:
        check(lib.aiplat_bus_sub_drain(self.handle, timeout_ms), self._err())

    @property
    def dropped_count(self) -> int:
        count: int = lib.aiplat_bus_sub_dropped_count(self.handle)
        return count

    def close(self) -> None:
        """Unsubscribe and release (allowed from its own callback)."""
        if self._ptr:
            lib.aiplat_bus_sub_destroy(self._ptr)
            self._ptr = ctypes.c_void_p()
            self._bus._forget(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class KeyValue:
    """A JetStream Key-Value bucket."""

    def __init__(self, bus: "Bus", ptr: ctypes.c_void_p) -> None:
        self._bus = bus
        self._ptr = ptr

    def _err(self) -> HandleError:
        return (lib.aiplat_kv_last_error, self._ptr)

    @property
    def handle(self) -> ctypes.c_void_p:
        if not self._ptr:
            raise ValueError("kv: closed")
        return self._ptr

    def put(self, key: str, value: Buffer) -> int:
        """Store ``value``; returns the new revision."""
        buf, n = data(value)
        rev = ctypes.c_uint64()
        check(lib.aiplat_kv_put(self.handle, enc(key, "key"), buf, n, ctypes.byref(rev)),
              self._err())
        return rev.value

    def get(self, key: str, default: bytes | None = None) -> bytes | None:
        """The latest value (bytes), or ``default`` when absent."""
        out, n = ctypes.c_void_p(), ctypes.c_size_t()
        st = lib.aiplat_kv_get(self.handle, enc(key, "key"), ctypes.byref(out), ctypes.byref(n))
        if st == Status.NOT_FOUND:
            return default
        check(st, self._err())
        return take_bytes(out, n.value)

    def delete(self, key: str) -> None:
        check(lib.aiplat_kv_delete(self.handle, enc(key, "key")), self._err())

    def close(self) -> None:
        if self._ptr:
            lib.aiplat_kv_destroy(self._ptr)
            self._ptr = ctypes.c_void_p()
            self._bus._forget(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Bus(Closing):
    """A NATS connection configured from a :class:`~aiplat.Config` (or the
    environment): ``NATS_URL`` and the other ``NATS_*`` settings.

    ``Bus(cfg).connect()``; use as a context manager or call :meth:`close`.
    """

    def __init__(self, config: Config | None = None) -> None:
        self._ptr = ctypes.c_void_p()
        self._thunks: list[Any] = []  # every callback thunk, alive until close()
        # Subscriptions and KV handles, closed first.
        self._children: list[Subscription | KeyValue] = []
        self._lock = threading.Lock()
        check(lib.aiplat_bus_create(ctypes.byref(self._ptr),
                                    config.handle if config is not None else None))

    @property
    def handle(self) -> ctypes.c_void_p:
        if not self._ptr:
            raise ValueError("bus: closed")
        return self._ptr

    def _err(self) -> HandleError:
        return (lib.aiplat_bus_last_error, self._ptr)

    def _keep(self, thunk: Any) -> None:
        with self._lock:
            self._thunks.append(thunk)

    def _forget(self, child: "Subscription | KeyValue") -> None:
        with self._lock:
            if child in self._children:
                self._children.remove(child)

    # ---- connection ----------------------------------------------------------

    def set_event_callback(
        self, fn: Callable[[Event | int, Status | int, str], object] | None
    ) -> None:
        """``fn(event, status, detail)`` for connection events, on the NATS
        client's callback thread; before connect()."""
        if fn is None:
            check(lib.aiplat_bus_set_event_callback(self.handle, BUS_EVENT_FN(), None), self._err())
            return
        callback = fn

        def trampoline(
            bus: int | None, event: int, status: int, detail: bytes | None, user_data: int | None
        ) -> None:
            try:
                try:
                    ev: Event | int = Event(event)
                except ValueError:
                    ev = event
                try:
                    st: Status | int = Status(status)
                except ValueError:
                    st = status
                callback(ev, st, dec(detail) or "")
            except BaseException:
                _report("bus event callback")

        thunk = BUS_EVENT_FN(trampoline)
        self._keep(thunk)
        check(lib.aiplat_bus_set_event_callback(self.handle, thunk, None), self._err())

    def set_send_asap(self, on: bool) -> None:
        check(lib.aiplat_bus_set_send_asap(self.handle, bool(on)), self._err())

    def set_retry_on_failed_connect(self, on: bool) -> None:
        check(lib.aiplat_bus_set_retry_on_failed_connect(self.handle, bool(on)), self._err())

    def connect(self) -> Self:
        check(lib.aiplat_bus_connect(self.handle), self._err())
        return self

    @property
    def is_connected(self) -> bool:
        return bool(lib.aiplat_bus_is_connected(self.handle))

    @property
    def max_payload(self) -> int:
        size: int = lib.aiplat_bus_max_payload(self.handle)
        return size

    @property
    def reconnect_count(self) -> int:
        count: int = lib.aiplat_bus_reconnect_count(self.handle)
        return count

    def flush(self, timeout_ms: int = 5000) -> None:
        check(lib.aiplat_bus_flush(self.handle, timeout_ms), self._err())

    def drain(self, timeout_ms: int = 5000) -> None:
        check(lib.aiplat_bus_drain(self.handle, timeout_ms), self._err())

    def close(self) -> None:
        """Close subscriptions and KV handles, then the connection, and
        release everything. Idempotent."""
        with self._lock:
            children = list(self._children)
        for child in children:
            child.close()
        if self._ptr:
            lib.aiplat_bus_destroy(self._ptr)
            self._ptr = ctypes.c_void_p()
        with self._lock:
            self._thunks = []

    # ---- publish and request -------------------------------------------------

    def publish(
        self,
        subject: str,
        payload: "Buffer | Msg" = b"",
        headers: Headers | None = None,
        reply: str | None = None,
    ) -> None:
        """Publish bytes (a str is sent as UTF-8, a Msg encoded)."""
        buf, n = data(_payload(payload))
        with _CHeaders(headers) as h:
            if reply is None:
                st = lib.aiplat_bus_publish(self.handle, enc(subject, "subject"), buf, n, h)
            else:
                st = lib.aiplat_bus_publish_request(self.handle, enc(subject, "subject"),
                                                    enc(reply, "reply"), buf, n, h)
            check(st, self._err())

    def request(
        self,
        subject: str,
        payload: "Buffer | Msg" = b"",
        headers: Headers | None = None,
        timeout_ms: int = 5000,
    ) -> BusMessage:
        """Send a request and wait for the first reply (a BusMessage).
        UnavailableError when nobody listens, TimeoutError after
        ``timeout_ms``."""
        buf, n = data(_payload(payload))
        out = ctypes.c_void_p()
        with _CHeaders(headers) as h:
            check(lib.aiplat_bus_request(self.handle, enc(subject, "subject"), buf, n, h,
                                         timeout_ms, ctypes.byref(out)), self._err())
        try:
            msg = BusMessage(out, live=False)
            msg._ptr = ctypes.c_void_p()  # a copy: the C reply is released below
            return msg
        finally:
            lib.aiplat_bus_msg_destroy(out)

    # ---- subscriptions -------------------------------------------------------

    def _msg_thunk(self, fn: Callable[[BusMessage], object], where: str) -> Any:
        def trampoline(msg_ptr: int | None, user_data: int | None) -> None:
            try:
                msg = BusMessage(msg_ptr, live=True)
            except BaseException:
                _report(where)
                return
            try:
                fn(msg)
            except BaseException:
                _report(where)
            finally:
                msg._end_callback()

        thunk = BUS_MSG_FN(trampoline)
        self._keep(thunk)
        return thunk

    def subscribe(
        self, subject: str, callback: Callable[[BusMessage], object], queue: str | None = None
    ) -> Subscription:
        """Call ``callback(msg)`` for each message on ``subject``
        (wildcards allowed), optionally in a queue group. Runs on the
        subscription's delivery thread."""
        thunk = self._msg_thunk(callback, "subscription callback for %s" % subject)
        out = ctypes.c_void_p()
        check(lib.aiplat_bus_subscribe(self.handle, enc(subject, "subject"), enc(queue, "queue"),
                                       thunk, None, ctypes.byref(out)), self._err())
        sub = Subscription(self, out, subject)
        with self._lock:
            self._children.append(sub)
        return sub

    # ---- JetStream -----------------------------------------------------------

    def stream_ensure(
        self,
        name: str,
        subjects: Iterable[str],
        max_age_ms: int = 0,
        retention: Retention | int = Retention.LIMITS,
    ) -> None:
        arr, n = strv(subjects, "subject")
        check(lib.aiplat_bus_stream_ensure(self.handle, enc(name, "stream"), arr, n,
                                           max_age_ms, int(retention)), self._err())

    def stream_delete(self, name: str) -> None:
        check(lib.aiplat_bus_stream_delete(self.handle, enc(name, "stream")), self._err())

    def js_publish(
        self, subject: str, payload: "Buffer | Msg" = b"", headers: Headers | None = None
    ) -> int:
        """Publish to a stream; returns the stream sequence."""
        buf, n = data(_payload(payload))
        seq = ctypes.c_uint64()
        with _CHeaders(headers) as h:
            check(lib.aiplat_bus_js_publish(self.handle, enc(subject, "subject"), buf, n, h,
                                            ctypes.byref(seq)), self._err())
        return seq.value

    def js_subscribe(
        self,
        stream: str,
        durable: str,
        callback: Callable[[BusMessage], object],
        filter_subject: str | None = None,
        ack_wait_ms: int = 30000,
        max_deliver: int = -1,
        max_in_flight: int = 64,
    ) -> Subscription:
        """Consume through a durable pull consumer; ``callback(msg)`` must
        ack, nak or term each message (or retain it and do so later)."""
        thunk = self._msg_thunk(callback, "JetStream callback for %s" % durable)
        out = ctypes.c_void_p()
        check(lib.aiplat_bus_js_subscribe(self.handle, enc(stream, "stream"),
                                          enc(durable, "durable"),
                                          enc(filter_subject, "subject"), ack_wait_ms,
                                          max_deliver, max_in_flight, thunk, None,
                                          ctypes.byref(out)), self._err())
        sub = Subscription(self, out, filter_subject or stream)
        with self._lock:
            self._children.append(sub)
        return sub

    def kv(self, bucket: str, ttl_ms: int = 0, history: int = 1) -> KeyValue:
        """Open (or create) a Key-Value bucket."""
        out = ctypes.c_void_p()
        check(lib.aiplat_kv_open(ctypes.byref(out), self.handle, enc(bucket, "bucket"),
                                 ttl_ms, history))
        kv = KeyValue(self, out)
        with self._lock:
            self._children.append(kv)
        return kv


def _payload(payload: "Buffer | Msg") -> Buffer:
    if isinstance(payload, (str, bytes, bytearray, memoryview)):
        return payload
    return payload.encode()  # a Msg
