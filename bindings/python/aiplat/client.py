"""The client half of the platform's protocol (aiplat/client.h): send a
typed request to a service and get its typed reply.

The library encodes the request, checks it against the server's
max_payload, sends the protocol's headers (``Aiplat-Request-Id``,
``Aiplat-Deadline``, ``traceparent`` and, with ``dedup``, ``Nats-Msg-Id``),
waits, decodes the reply and turns the reply's ``error {code, message}``
into the raised exception, whose ``reply`` attribute holds the decoded
reply.

>>> with aiplat.Client(bus) as client:
...     reply = client.request("ai.chat.user.u1.message",
...                            Msg(MsgType.CHAT_REQUEST, message="hello"),
...                            MsgType.CHAT_RESPONSE, timeout_ms=30000)
"""

import ctypes
from collections.abc import Mapping

from ._lib import lib
from ._util import Closing, enc
from .bus import Bus
from .errors import AiplatError, check, error_for, last_error
from .message import Msg, MsgType, type_of

__all__ = ["Client"]


class Client(Closing):
    """Typed requests on a bus (the bus must stay open while it is used).
    One client serves any number of threads; each call waits for its own
    reply."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus  # kept alive while the client is
        out = ctypes.c_void_p()
        check(lib.aiplat_client_create(ctypes.byref(out), bus.handle))
        self._ptr: ctypes.c_void_p = out

    def close(self) -> None:
        """Release the client (calls still running end with ClosedError)."""
        ptr = getattr(self, "_ptr", None)
        if ptr:
            self._ptr = ctypes.c_void_p()
            lib.aiplat_client_destroy(ptr)

    @property
    def in_flight(self) -> int:
        """Calls in flight now."""
        return int(lib.aiplat_client_in_flight(self._ptr)) if self._ptr else 0

    def request(
        self,
        subject: str,
        message: Msg,
        reply_type: MsgType | int | str,
        *,
        timeout_ms: int | None = None,
        request_id: str | None = None,
        traceparent: str | None = None,
        dedup: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> Msg:
        """Send ``message`` on ``subject`` and return the reply decoded as
        ``reply_type``. A reply with ``error`` raises the exception of its
        code (``exc.reply`` holds the reply); no listener raises
        UnavailableError, no reply in time TimeoutError, a reply of another
        type DecodeError. ``request_id`` (default: the message's
        ``request_id`` field, else a new one) is written into the message."""
        if not self._ptr:
            raise error_for(17, "client: closed")
        opts = ctypes.c_void_p()
        check(lib.aiplat_client_options_create(ctypes.byref(opts)))
        try:
            if timeout_ms is not None:
                check(lib.aiplat_client_options_set_timeout_ms(opts, int(timeout_ms)))
            if request_id is not None:
                check(lib.aiplat_client_options_set_request_id(opts, enc(request_id, "request_id")))
            if traceparent is not None:
                check(lib.aiplat_client_options_set_traceparent(
                    opts, enc(traceparent, "traceparent")))
            if dedup:
                check(lib.aiplat_client_options_set_dedup(opts, True))
            for key, value in (headers or {}).items():
                check(lib.aiplat_client_options_add_header(
                    opts, enc(key, "header name"), enc(value, "header value")))
            out = ctypes.c_void_p()
            st = lib.aiplat_client_request(self._ptr, enc(subject, "subject"), message.handle,
                                           int(type_of(reply_type)), opts, ctypes.byref(out))
            reply = Msg._adopt(out) if out else None
            if st == 0 and reply is not None:
                return reply
            code, text = last_error()
            exc: AiplatError = error_for(st, text if code == st else "")
            exc.reply = reply  # type: ignore[attr-defined]
            raise exc
        finally:
            lib.aiplat_client_options_destroy(opts)
