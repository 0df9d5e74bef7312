"""Conversions shared by the modules: Python strings and buffers to C."""

import ctypes
from collections.abc import Iterable
from typing import Any, Self, overload

from ._lib import lib

# What the wrappers accept as text for a ``const char *``.
Text = str | bytes | bytearray | memoryview
# What they accept as a payload for ``const void *, size_t``.
Buffer = str | bytes | bytearray | memoryview


@overload
def enc(value: None, what: str = ...) -> None: ...
@overload
def enc(value: Text, what: str = ...) -> bytes: ...
def enc(value: Text | None, what: str = "string") -> bytes | None:
    """A str (UTF-8) or bytes as NUL-terminated bytes for a ``const char *``.

    ``None`` stays ``None`` (NULL). A NUL inside is refused: C would stop
    reading there, silently cutting the value.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = value.encode("utf-8")
    elif isinstance(value, (bytearray, memoryview)):
        value = bytes(value)
    elif not isinstance(value, bytes):
        raise TypeError("%s must be str or bytes, not %s" % (what, type(value).__name__))
    if b"\0" in value:
        raise ValueError("%s contains a NUL character" % what)
    return value


def data(value: Buffer | None) -> tuple[bytes | None, int]:
    """Bytes-like payload as (bytes, length) for ``const void *, size_t``."""
    if value is None:
        return None, 0
    if isinstance(value, str):
        value = value.encode("utf-8")
    elif not isinstance(value, bytes):
        value = bytes(value)  # bytearray, memoryview, array, ...
    return value, len(value)


def dec(value: bytes | None) -> str | None:
    """A C string returned by the library (bytes or None) as str."""
    if value is None:
        return None
    return value.decode("utf-8", "replace")


def text(value: bytes | None) -> str:
    """As :func:`dec` for a string the library always returns on success
    ("" for NULL)."""
    return "" if value is None else value.decode("utf-8", "replace")


def strv(values: Iterable[Text | None], what: str = "strings") -> tuple[Any, int]:
    """A list of strings as a ``const char *const *`` array (kept alive by
    the returned object while the call runs)."""
    items = [enc(v, what) for v in values]
    arr = (ctypes.c_char_p * max(len(items), 1))(*items)
    return arr, len(items)


def take_text(ptr: ctypes.c_void_p | int | None) -> str:
    """As :func:`take_string` for a string a successful call always
    returns ("" for NULL)."""
    return take_string(ptr) or ""


def take_string(ptr: ctypes.c_void_p | int | None) -> str | None:
    """Copy a library-allocated NUL-terminated string and aiplat_free() it."""
    if not ptr:
        return None
    try:
        return ctypes.string_at(ptr).decode("utf-8", "replace")
    finally:
        lib.aiplat_free(ptr)


def take_bytes(ptr: ctypes.c_void_p | int | None, length: int) -> bytes:
    """Copy a library-allocated buffer and aiplat_free() it."""
    try:
        return ctypes.string_at(ptr, length) if ptr and length else b""
    finally:
        lib.aiplat_free(ptr)


class Closing:
    """Context manager and finaliser for a handle released by ``close()``."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
