"""Status codes and the exceptions that carry them.

Every C call returning ``aiplat_status`` goes through :func:`check`: a
non-zero status becomes an :class:`AiplatError` subclass holding the status
and the library's detail message (``aiplat_error_last()``, read on the same
thread right after the failing call, so it is the message of that call).
"""

import builtins
import ctypes
import enum
from collections.abc import Callable
from typing import Any

from ._lib import lib

_ERRBUF = 1024


class Status(enum.IntEnum):
    """aiplat_status; the numbers are pinned by the C ABI."""

    OK = 0
    INVALID_ARGUMENT = 1
    NO_MEMORY = 2
    CONFIG = 3
    NOT_FOUND = 4
    IO = 5
    TIMEOUT = 6
    CONNECTION = 7
    PROTOCOL = 8
    DECODE = 9
    TOO_LARGE = 10
    BAD_REQUEST = 11
    AUTH = 12
    RATE_LIMITED = 13
    SERVER = 14
    UNAVAILABLE = 15
    CANCELLED = 16
    CLOSED = 17
    STATE = 18
    BUFFER_TOO_SMALL = 19
    NOT_SUPPORTED = 20
    CORRUPT = 21
    EXISTS = 22
    INTERNAL = 23


def status_str(status: int) -> str:
    """The library's static text for a status code."""
    text: bytes = lib.aiplat_status_str(int(status))
    return text.decode()


def status_name(status: int) -> str:
    """The library's name of a status code, as the protocol's ErrorCode
    names it without its prefix: ``"TIMEOUT"``, ``"OK"``, ``"UNKNOWN"`` for
    a number that is not a status."""
    name: bytes = lib.aiplat_status_name(int(status))
    return name.decode()


class AiplatError(Exception):
    """A libaiplat call failed.

    ``status`` is a :class:`Status` (or the bare int for a code newer than
    this package), ``message`` the library's detail text.
    """

    status: Status | int = Status.INTERNAL
    message: str

    def __init__(self, status: int, message: str = "") -> None:
        try:
            self.status = Status(status)
        except ValueError:
            self.status = status
        self.message = message or status_str(status)
        super().__init__("%s: %s" % (status_name(status), self.message))


class InvalidArgumentError(AiplatError, ValueError):
    pass


class NoMemoryError(AiplatError, MemoryError):
    pass


class ConfigError(AiplatError):
    pass


class NotFoundError(AiplatError, LookupError):
    pass


class IOFailedError(AiplatError, OSError):
    pass


class TimeoutError(AiplatError, builtins.TimeoutError):  # noqa: A001 (also the builtin)
    pass


class ConnectionFailedError(AiplatError, ConnectionError):
    pass


class ProtocolError(AiplatError):
    pass


class DecodeError(AiplatError, ValueError):
    pass


class TooLargeError(AiplatError, ValueError):
    pass


class BadRequestError(AiplatError):
    pass


class AuthError(AiplatError, PermissionError):
    pass


class RateLimitedError(AiplatError):
    pass


class ServerError(AiplatError):
    pass


class UnavailableError(AiplatError):
    pass


class CancelledError(AiplatError):
    pass


class ClosedError(AiplatError):
    pass


class StateError(AiplatError):
    pass


class NotSupportedError(AiplatError):
    pass


class InternalError(AiplatError):
    pass


_BY_STATUS: dict[int, type[AiplatError]] = {
    Status.INVALID_ARGUMENT: InvalidArgumentError,
    Status.NO_MEMORY: NoMemoryError,
    Status.CONFIG: ConfigError,
    Status.NOT_FOUND: NotFoundError,
    Status.IO: IOFailedError,
    Status.TIMEOUT: TimeoutError,
    Status.CONNECTION: ConnectionFailedError,
    Status.PROTOCOL: ProtocolError,
    Status.DECODE: DecodeError,
    Status.TOO_LARGE: TooLargeError,
    Status.BAD_REQUEST: BadRequestError,
    Status.AUTH: AuthError,
    Status.RATE_LIMITED: RateLimitedError,
    Status.SERVER: ServerError,
    Status.UNAVAILABLE: UnavailableError,
    Status.CANCELLED: CancelledError,
    Status.CLOSED: ClosedError,
    Status.STATE: StateError,
    Status.NOT_SUPPORTED: NotSupportedError,
    Status.INTERNAL: InternalError,
}


def error_for(status: int, message: str = "") -> AiplatError:
    """The exception for a status and message (not raised)."""
    cls = _BY_STATUS.get(status, AiplatError)
    return cls(status, message)


def last_error() -> tuple[int, str]:
    """(status, message) of the calling thread's last failure."""
    buf = ctypes.create_string_buffer(_ERRBUF)
    st: int = lib.aiplat_error_last(buf, _ERRBUF)
    return st, buf.value.decode("utf-8", "replace")


def clear_error() -> None:
    """Forget the calling thread's last failure."""
    lib.aiplat_error_clear()


# A handle's ``*_last_error`` function and the handle, for :func:`check`.
HandleError = tuple[Callable[..., int], Any]


def check(status: int, handle_error: HandleError | None = None) -> None:
    """Raise for a non-OK status, with the library's detail message.

    ``handle_error`` is the handle's ``*_last_error`` function and handle,
    as ``(fn, handle)``; it is asked when the thread record does not match
    (a failure the library recorded only in the handle).
    """
    if status == 0:
        return
    st, message = last_error()
    if st != status:
        message = ""  # the thread's record is of an earlier failure
    if not message and handle_error is not None:
        fn, handle = handle_error
        buf = ctypes.create_string_buffer(_ERRBUF)
        if fn(handle, buf, _ERRBUF) == status:
            message = buf.value.decode("utf-8", "replace")
    raise error_for(status, message)
