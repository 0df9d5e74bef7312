"""Structured logging (aiplat/log.h): JSON lines, to stderr or a callback."""

import atexit
import ctypes
import enum
import json
import sys
import threading
from collections.abc import Callable
from typing import Any

from ._lib import LOG_FN, lib
from ._util import enc, strv
from .errors import check


class Level(enum.IntEnum):
    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40


def set_level(level: Level | int | str) -> None:
    """Minimum level written (a Level, its number or its name)."""
    lib.aiplat_log_set_level(int(parse_level(level) if isinstance(level, str) else level))


def reset_level() -> None:
    """Read the level from ``LOG_LEVEL`` again."""
    lib.aiplat_log_reset_level()


def get_level() -> Level:
    return Level(lib.aiplat_log_get_level())


def parse_level(name: str) -> Level:
    out = ctypes.c_int()
    check(lib.aiplat_log_level_parse(enc(name), ctypes.byref(out)))
    return Level(out.value)


def set_service(name: str | None) -> None:
    """The ``service`` field of every record; ``None`` clears it."""
    check(lib.aiplat_log_set_service(enc(name)))


# Every thunk ever installed stays referenced: a record being written on
# another thread may still be inside the previous callback when it is
# replaced, and freeing a ctypes thunk that C is executing crashes.
_thunks: list[Any] = []
_lock = threading.Lock()


def set_callback(
    fn: Callable[[Level | int, Any], object] | None, parse: bool = False
) -> None:
    """Send records to ``fn(level, record)`` instead of stderr; ``None``
    restores stderr.

    ``record`` is the JSON text (a dict when ``parse`` is true) and
    ``level`` a :class:`Level`. ``fn`` runs on whichever thread logged,
    library threads included, possibly on several at once; it must not log
    through this module itself (such records are dropped). An exception in
    ``fn`` is printed to stderr and the record dropped.
    """
    if fn is None:
        lib.aiplat_log_set_callback(LOG_FN(), None)
        return
    callback = fn

    def trampoline(level: int, record: int, length: int, user_data: int | None) -> None:
        try:
            text = ctypes.string_at(record, length).decode("utf-8", "replace")
            try:
                lvl: Level | int = Level(level)
            except ValueError:
                lvl = level
            callback(lvl, json.loads(text) if parse else text)
        except BaseException:  # never let an exception unwind into C
            try:
                sys.excepthook(*sys.exc_info())
            except BaseException:
                pass

    thunk = LOG_FN(trampoline)
    with _lock:
        _thunks.append(thunk)
    lib.aiplat_log_set_callback(thunk, None)


@atexit.register
def _restore_stderr() -> None:
    # Library threads may outlive the interpreter's finalisation; they must
    # not call into Python then.
    lib.aiplat_log_set_callback(LOG_FN(), None)


def log(level: Level | int | str, message: str, **fields: object) -> None:
    """Write one record; ``fields`` become extra keys (values str()'d,
    ``None`` is JSON null)."""
    number = int(parse_level(level) if isinstance(level, str) else level)
    if not fields:
        lib.aiplat_log(number, enc(message, "message"))
        return
    keys, n = strv(fields.keys(), "field name")
    values, _ = strv([None if v is None else str(v) for v in fields.values()], "field value")
    lib.aiplat_log_fields(number, enc(message, "message"), keys, values, n)


def debug(message: str, **fields: object) -> None:
    log(Level.DEBUG, message, **fields)


def info(message: str, **fields: object) -> None:
    log(Level.INFO, message, **fields)


def warning(message: str, **fields: object) -> None:
    log(Level.WARNING, message, **fields)


def error(message: str, **fields: object) -> None:
    log(Level.ERROR, message, **fields)


def set_thread_context(request_id: str | None = None, trace_id: str | None = None) -> None:
    """``request_id``/``trace_id`` fields on every record of this thread."""
    lib.aiplat_log_set_thread_context(enc(request_id), enc(trace_id))


def key_is_secret(key: str) -> bool:
    return bool(lib.aiplat_log_key_is_secret(enc(key)))
