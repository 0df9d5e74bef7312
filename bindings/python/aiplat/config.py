"""Settings (aiplat/config.h): environment variables with the platform's
defaults, overridable per handle."""

import ctypes
from collections.abc import Mapping

from ._lib import lib
from ._util import Closing, dec, enc, text
from .errors import HandleError, check


class Config(Closing):
    """An ``aiplat_config`` handle reading the process environment.

    Values set with :meth:`set` take precedence over the environment for
    this handle only. A handle may be shared by threads.
    """

    def __init__(self, values: Mapping[str, object] | None = None) -> None:
        self._ptr = ctypes.c_void_p()
        check(lib.aiplat_config_create(ctypes.byref(self._ptr)))
        for name, value in (values or {}).items():
            self.set(name, value)

    @property
    def handle(self) -> ctypes.c_void_p:
        """The raw ``aiplat_config *`` (for other wrappers)."""
        if not self._ptr:
            raise ValueError("config: closed")
        return self._ptr

    def _err(self) -> HandleError:
        return (lib.aiplat_config_last_error, self._ptr)

    def close(self) -> None:
        """Destroy the handle. Anything created from it copied its values,
        except a Service, which borrows it: close the service first."""
        if self._ptr:
            lib.aiplat_config_destroy(self._ptr)
            self._ptr = ctypes.c_void_p()

    def set(self, name: str, value: object) -> None:
        """Set ``name`` for this handle; ``None`` removes the override. A
        bool is written as ``true``/``false``, a number in decimal."""
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float)):
            value = str(value)
        elif value is not None and not isinstance(value, (str, bytes)):
            raise TypeError("value must be str, bytes, bool or a number, not %s"
                            % type(value).__name__)
        check(lib.aiplat_config_set(self.handle, enc(name, "name"), enc(value, "value")),
              self._err())

    def is_set(self, name: str) -> bool:
        return bool(lib.aiplat_config_is_set(self.handle, enc(name, "name")))

    def get(self, name: str) -> str | None:
        """The value or the default, or ``None`` when there is neither."""
        out = ctypes.c_char_p()
        check(lib.aiplat_config_get_string(self.handle, enc(name, "name"), ctypes.byref(out)),
              self._err())
        return dec(out.value)

    def require(self, name: str) -> str:
        """The value; a missing or empty one raises ConfigError."""
        out = ctypes.c_char_p()
        check(lib.aiplat_config_require(self.handle, enc(name, "name"), ctypes.byref(out)),
              self._err())
        return text(out.value)

    def get_int(self, name: str, min: int = -(2**63), max: int = 2**63 - 1) -> int:  # noqa: A002
        out = ctypes.c_int64()
        check(lib.aiplat_config_get_int(self.handle, enc(name, "name"), min, max,
                                        ctypes.byref(out)), self._err())
        return out.value

    def get_float(
        self, name: str, min: float = float("-inf"), max: float = float("inf")
    ) -> float:  # noqa: A002
        out = ctypes.c_double()
        check(lib.aiplat_config_get_double(self.handle, enc(name, "name"), min, max,
                                           ctypes.byref(out)), self._err())
        return out.value

    def get_bool(self, name: str) -> bool:
        out = ctypes.c_bool()
        check(lib.aiplat_config_get_bool(self.handle, enc(name, "name"), ctypes.byref(out)),
              self._err())
        return out.value

    def get_duration_ms(self, name: str) -> int:
        out = ctypes.c_int64()
        check(lib.aiplat_config_get_duration_ms(self.handle, enc(name, "name"),
                                                ctypes.byref(out)), self._err())
        return out.value

    def get_url(self, name: str) -> str:
        out = ctypes.c_char_p()
        check(lib.aiplat_config_get_url(self.handle, enc(name, "name"), ctypes.byref(out)),
              self._err())
        return text(out.value)

    def validate(self) -> None:
        """Check every known setting that has a value; raise the first
        failure (ConfigError naming the variable)."""
        check(lib.aiplat_config_validate(self.handle), self._err())


def parse_duration_ms(text: str) -> int:
    """``"1h30m"`` -> 5400000, as the library parses durations."""
    out = ctypes.c_int64()
    check(lib.aiplat_duration_parse_ms(enc(text), ctypes.byref(out)))
    return out.value


def is_secret(name: str) -> bool:
    """True when the setting holds a secret (never logged or echoed)."""
    return bool(lib.aiplat_config_is_secret(enc(name, "name")))


def settings() -> list[tuple[str, str | None, str]]:
    """The table of known settings: a list of (name, default, description)."""
    out = []
    for i in range(lib.aiplat_config_setting_count()):
        out.append((text(lib.aiplat_config_setting_name(i)),
                    dec(lib.aiplat_config_setting_default(i)),
                    text(lib.aiplat_config_setting_description(i))))
    return out
