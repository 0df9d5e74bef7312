"""Conversions shared by the modules: Python strings and buffers to C."""

import ctypes

from ._lib import lib


def enc(value, what="string"):
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


def data(value):
    """Bytes-like payload as (bytes, length) for ``const void *, size_t``."""
    if value is None:
        return None, 0
    if isinstance(value, str):
        value = value.encode("utf-8")
    elif not isinstance(value, bytes):
        value = bytes(value)  # bytearray, memoryview, array, ...
    return value, len(value)


def dec(value):
    """A C string returned by the library (bytes or None) as str."""
    if value is None:
        return None
    return value.decode("utf-8", "replace")


def strv(values, what="strings"):
    """A list of strings as a ``const char *const *`` array (kept alive by
    the returned object while the call runs)."""
    items = [enc(v, what) for v in values]
    arr = (ctypes.c_char_p * max(len(items), 1))(*items)
    return arr, len(items)


def take_string(ptr):
    """Copy a library-allocated NUL-terminated string and aiplat_free() it."""
    if not ptr:
        return None
    try:
        return ctypes.string_at(ptr).decode("utf-8", "replace")
    finally:
        lib.aiplat_free(ptr)


def take_bytes(ptr, length):
    """Copy a library-allocated buffer and aiplat_free() it."""
    try:
        return ctypes.string_at(ptr, length) if ptr and length else b""
    finally:
        lib.aiplat_free(ptr)


class Closing:
    """Context manager and finaliser for a handle released by ``close()``."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
