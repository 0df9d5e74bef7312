"""The v1 wire messages (aiplat/message.h), read and written by field name.

A :class:`Msg` owns its C message when it was created, decoded, parsed or
copied; a child (a nested message, an element of a repeated field, a
request's decoded message) is borrowed from its parent: the Python object
keeps the parent alive, and becomes unusable (``ValueError``) once the
parent was closed or the handler call that lent it returned. As in C,
clearing or replacing a field invalidates children taken from it earlier.
A message belongs to one thread at a time.
"""

import ctypes
import enum
import json
from collections.abc import Mapping
from typing import Any, Protocol

from ._lib import lib
from ._util import Buffer, Closing, Text, data, dec, enc, take_bytes, take_text, text
from .errors import HandleError, check


class MsgType(enum.IntEnum):
    """aiplat_msg_type; pinned numbers."""

    INVALID = 0
    CHAT_REQUEST = 1
    CHAT_RESPONSE = 2
    CHAT_CHUNK = 3
    VOICE_REQUEST = 4
    VOICE_RESPONSE = 5
    TRANSCRIBE_REQUEST = 6
    TRANSCRIBE_RESPONSE = 7
    SYNTHESIZE_REQUEST = 8
    SYNTHESIZE_RESPONSE = 9
    PIPELINE_TRIGGER = 10
    PIPELINE_STATUS = 11
    ERROR = 12
    SOURCE = 13
    USAGE = 14
    SEGMENT = 15


class FieldKind(enum.IntEnum):
    """aiplat_field_kind; pinned numbers."""

    NONE = 0
    STRING = 1
    BYTES = 2
    INT = 3
    UINT = 4
    DOUBLE = 5
    BOOL = 6
    ENUM = 7
    MESSAGE = 8
    MAP = 9


JSON_PRETTY = 1
JSON_ELIDE_BYTES = 2


def type_of(value: "MsgType | int | str") -> MsgType | int:
    """A MsgType from a MsgType, its number, or a full or short type name."""
    if isinstance(value, str):
        out = ctypes.c_int()
        check(lib.aiplat_msg_type_by_name(enc(value, "type name"), ctypes.byref(out)))
        value = out.value
    try:
        return MsgType(value)
    except ValueError:
        return int(value)  # a type newer than this package


def type_name(msg_type: "MsgType | int | str") -> str:
    """Full protobuf name, e.g. ``aiplat.messages.v1.ChatRequest``."""
    return text(lib.aiplat_msg_type_name(int(type_of(msg_type))))


def field_names(msg_type: "MsgType | int | str") -> list[str]:
    """The field names of a type, in field-number order."""
    t = int(type_of(msg_type))
    return [text(lib.aiplat_msg_type_field_name(t, i))
            for i in range(lib.aiplat_msg_type_field_count(t))]


# (kind, repeated, child type, number) of a field.
FieldInfo = tuple[FieldKind, bool, MsgType | int, int]

_info_cache: dict[tuple[int, str], FieldInfo] = {}


def field_info(msg_type: MsgType | int, field: str) -> FieldInfo:
    """(kind, repeated, child type, number) of a field."""
    key = (int(msg_type), field)
    hit = _info_cache.get(key)
    if hit is None:
        kind, rep = ctypes.c_int(), ctypes.c_bool()
        child, num = ctypes.c_int(), ctypes.c_uint32()
        check(lib.aiplat_msg_field_info(int(msg_type), enc(field, "field"), ctypes.byref(kind),
                                        ctypes.byref(rep), ctypes.byref(child),
                                        ctypes.byref(num)))
        hit = (FieldKind(kind.value), rep.value, type_of(child.value), num.value)
        _info_cache[key] = hit
    return hit


class _Owner(Protocol):
    def _valid(self) -> bool: ...


class Msg(Closing):
    """One message of the v1 schema.

    ``Msg("ChatRequest", user_id="u1", message="hi")`` creates and fills
    one; nested messages take dicts, repeated ones lists of dicts, maps
    dicts of strings. ``msg["field"]`` reads and writes like
    :meth:`get` / :meth:`set`.
    """

    def __init__(self, msg_type: MsgType | int | str, **fields: Any) -> None:
        self._ptr = ctypes.c_void_p()
        self._owner: _Owner | None = None  # None: we own _ptr
        check(lib.aiplat_msg_create(ctypes.byref(self._ptr), int(type_of(msg_type))))
        self._type = type_of(lib.aiplat_msg_get_type(self._ptr))
        for name, value in fields.items():
            self.set(name, value)

    @classmethod
    def _adopt(cls, ptr: ctypes.c_void_p | int, owner: _Owner | None = None) -> "Msg":
        """Wrap ``ptr``: owned when ``owner`` is None, else borrowed from
        ``owner`` (a Msg, or anything with a ``_valid()`` method)."""
        self = cls.__new__(cls)
        self._ptr = ptr if isinstance(ptr, ctypes.c_void_p) else ctypes.c_void_p(ptr)
        self._owner = owner
        self._type = type_of(lib.aiplat_msg_get_type(self._ptr))
        return self

    # ---- lifetime ----------------------------------------------------------

    def _valid(self) -> bool:
        if not self._ptr:
            return False
        return self._owner is None or self._owner._valid()

    @property
    def handle(self) -> ctypes.c_void_p:
        """The raw ``aiplat_msg *`` (borrowed from this object)."""
        if not self._valid():
            raise ValueError("message: used after it was closed or its owner went away")
        return self._ptr

    def close(self) -> None:
        """Destroy an owned message now (children become unusable); a
        borrowed one is only forgotten."""
        if self._ptr and self._owner is None:
            lib.aiplat_msg_destroy(self._ptr)
        self._ptr = ctypes.c_void_p()

    def _err(self) -> HandleError:
        return (lib.aiplat_msg_last_error, self._ptr)

    # ---- types ---------------------------------------------------------------

    @property
    def type(self) -> MsgType | int:
        return self._type

    @property
    def type_name(self) -> str:
        return type_name(self._type)

    def __repr__(self) -> str:
        if not self._valid():
            return "<Msg %s (closed)>" % getattr(self._type, "name", self._type)
        return "<Msg %s %s>" % (self.type_name, self.to_json(elide_bytes=True))

    # ---- generic access ------------------------------------------------------

    def has(self, field: str) -> bool:
        """Whether the field is present (see aiplat_msg_has())."""
        field_info(self._type, field)  # unknown names raise
        return bool(lib.aiplat_msg_has(self.handle, enc(field, "field")))

    def clear(self, field: str) -> None:
        check(lib.aiplat_msg_clear_field(self.handle, enc(field, "field")), self._err())

    def get(self, field: str) -> Any:
        """The value by the field's kind: str, bytes, int, float, bool; a
        child Msg or None; a list of child Msgs; a dict for a map."""
        kind, repeated, _, _ = field_info(self._type, field)
        if kind == FieldKind.MAP:
            return self.map(field)
        if kind == FieldKind.MESSAGE:
            return self.items(field) if repeated else self.message(field)
        getter: Any = {
            FieldKind.STRING: self.get_string,
            FieldKind.BYTES: self.get_bytes,
            FieldKind.INT: self.get_int,
            FieldKind.ENUM: self.get_int,
            FieldKind.UINT: self.get_uint,
            FieldKind.DOUBLE: self.get_float,
            FieldKind.BOOL: self.get_bool,
        }[kind]
        return getter(field)

    def set(self, field: str, value: Any) -> None:
        """Set a field from a Python value (see the class comment). ``None``
        clears it."""
        kind, repeated, _, _ = field_info(self._type, field)
        if value is None:
            self.clear(field)
        elif kind == FieldKind.MAP:
            self.clear(field)
            for k, v in dict(value).items():
                self.map_set(field, k, v)
        elif kind == FieldKind.MESSAGE and repeated:
            self.clear(field)
            for item in value:
                self.add(field, item)
        elif kind == FieldKind.MESSAGE:
            self.clear(field)
            child = self.message(field, create=True)
            assert child is not None  # create=True makes it present
            if isinstance(value, Msg):
                value = {k: value.get(k) for k in field_names(value.type) if value.has(k)}
            for k, v in dict(value).items():
                child.set(k, v)
        elif kind == FieldKind.STRING:
            self.set_string(field, value)
        elif kind == FieldKind.BYTES:
            self.set_bytes(field, value)
        elif kind in (FieldKind.INT, FieldKind.ENUM):
            self.set_int(field, value)
        elif kind == FieldKind.UINT:
            self.set_uint(field, value)
        elif kind == FieldKind.DOUBLE:
            self.set_float(field, value)
        elif kind == FieldKind.BOOL:
            self.set_bool(field, value)
        else:
            raise ValueError("message: field %s has no settable kind" % field)

    __getitem__ = get
    __setitem__ = set

    # ---- typed access --------------------------------------------------------

    def get_string(self, field: str) -> str:
        out = ctypes.c_char_p()
        check(lib.aiplat_msg_get_string(self.handle, enc(field, "field"), ctypes.byref(out)),
              self._err())
        return dec(out.value) or ""

    def set_string(self, field: str, value: Text) -> None:
        check(lib.aiplat_msg_set_string(self.handle, enc(field, "field"), enc(value, field)),
              self._err())

    def get_bytes(self, field: str) -> bytes:
        ptr, n = ctypes.c_void_p(), ctypes.c_size_t()
        check(lib.aiplat_msg_get_bytes(self.handle, enc(field, "field"), ctypes.byref(ptr),
                                       ctypes.byref(n)), self._err())
        return ctypes.string_at(ptr, n.value) if ptr.value and n.value else b""

    def set_bytes(self, field: str, value: Buffer) -> None:
        buf, n = data(value)
        check(lib.aiplat_msg_set_bytes(self.handle, enc(field, "field"), buf, n), self._err())

    def get_int(self, field: str) -> int:
        out = ctypes.c_int64()
        check(lib.aiplat_msg_get_int64(self.handle, enc(field, "field"), ctypes.byref(out)),
              self._err())
        return out.value

    def set_int(self, field: str, value: int) -> None:
        number = int(value)
        if not -(2**63) <= number < 2**63:
            raise OverflowError("message: %s: %d does not fit int64" % (field, number))
        check(lib.aiplat_msg_set_int64(self.handle, enc(field, "field"), number), self._err())

    def get_uint(self, field: str) -> int:
        out = ctypes.c_uint64()
        check(lib.aiplat_msg_get_uint64(self.handle, enc(field, "field"), ctypes.byref(out)),
              self._err())
        return out.value

    def set_uint(self, field: str, value: int) -> None:
        number = int(value)
        if not 0 <= number < 2**64:
            raise OverflowError("message: %s: %d does not fit uint64" % (field, number))
        check(lib.aiplat_msg_set_uint64(self.handle, enc(field, "field"), number), self._err())

    def get_float(self, field: str) -> float:
        out = ctypes.c_double()
        check(lib.aiplat_msg_get_double(self.handle, enc(field, "field"), ctypes.byref(out)),
              self._err())
        return out.value

    def set_float(self, field: str, value: float) -> None:
        check(lib.aiplat_msg_set_double(self.handle, enc(field, "field"), float(value)),
              self._err())

    def get_bool(self, field: str) -> bool:
        out = ctypes.c_bool()
        check(lib.aiplat_msg_get_bool(self.handle, enc(field, "field"), ctypes.byref(out)),
              self._err())
        return out.value

    def set_bool(self, field: str, value: object) -> None:
        check(lib.aiplat_msg_set_bool(self.handle, enc(field, "field"), bool(value)),
              self._err())

    # ---- nested, repeated, maps ----------------------------------------------

    def message(self, field: str, create: bool = False) -> "Msg | None":
        """The child message of a single message field (borrowed); None
        when absent, unless ``create`` makes it present."""
        out = ctypes.c_void_p()
        fn = lib.aiplat_msg_mutable_message if create else lib.aiplat_msg_get_message
        check(fn(self.handle, enc(field, "field"), ctypes.byref(out)), self._err())
        return Msg._adopt(out, self) if out.value else None

    def count(self, field: str) -> int:
        out = ctypes.c_size_t()
        check(lib.aiplat_msg_count(self.handle, enc(field, "field"), ctypes.byref(out)),
              self._err())
        return out.value

    def item(self, field: str, index: int) -> "Msg":
        out = ctypes.c_void_p()
        check(lib.aiplat_msg_get_item(self.handle, enc(field, "field"), index,
                                      ctypes.byref(out)), self._err())
        return Msg._adopt(out, self)

    def items(self, field: str) -> list["Msg"]:
        """The elements of a repeated message field (borrowed)."""
        return [self.item(field, i) for i in range(self.count(field))]

    def add(self, field: str, values: "Mapping[str, Any] | Msg | None" = None) -> "Msg":
        """Append an element (filled from a dict) and return it."""
        out = ctypes.c_void_p()
        check(lib.aiplat_msg_add_item(self.handle, enc(field, "field"), ctypes.byref(out)),
              self._err())
        child = Msg._adopt(out, self)
        if isinstance(values, Msg):
            values = {k: values.get(k) for k in field_names(values.type) if values.has(k)}
        for k, v in dict(values or {}).items():
            child.set(k, v)
        return child

    def remove(self, field: str, index: int) -> None:
        check(lib.aiplat_msg_remove_item(self.handle, enc(field, "field"), index), self._err())

    def map(self, field: str) -> dict[str, str]:
        """A map field as a dict (a copy)."""
        out: dict[str, str] = {}
        key, value = ctypes.c_char_p(), ctypes.c_char_p()
        f = enc(field, "field")
        for i in range(self.count(field)):
            check(lib.aiplat_msg_map_key(self.handle, f, i, ctypes.byref(key)), self._err())
            check(lib.aiplat_msg_map_value(self.handle, f, i, ctypes.byref(value)), self._err())
            out[text(key.value)] = text(value.value)
        return out

    def map_get(self, field: str, key: str, default: str | None = None) -> str | None:
        out = ctypes.c_char_p()
        st = lib.aiplat_msg_map_get(self.handle, enc(field, "field"), enc(key, "key"),
                                    ctypes.byref(out))
        if st == 4:  # NOT_FOUND
            return default
        check(st, self._err())
        return dec(out.value)

    def map_set(self, field: str, key: str, value: Text) -> None:
        check(lib.aiplat_msg_map_set(self.handle, enc(field, "field"), enc(key, "key"),
                                     enc(value, "value")), self._err())

    def map_remove(self, field: str, key: str) -> None:
        check(lib.aiplat_msg_map_remove(self.handle, enc(field, "field"), enc(key, "key")),
              self._err())

    # ---- wire format and JSON ------------------------------------------------

    def encode(self) -> bytes:
        """The protobuf wire bytes."""
        out, n = ctypes.c_void_p(), ctypes.c_size_t()
        check(lib.aiplat_msg_encode(self.handle, ctypes.byref(out), ctypes.byref(n)),
              self._err())
        return take_bytes(out, n.value)

    def encoded_size(self) -> int:
        out = ctypes.c_size_t()
        check(lib.aiplat_msg_encoded_size(self.handle, ctypes.byref(out)), self._err())
        return out.value

    @classmethod
    def decode(
        cls, msg_type: MsgType | int | str, payload: Buffer, max_size: int | None = None
    ) -> "Msg":
        """Decode wire bytes (at most 8 MiB unless ``max_size``); raises
        DecodeError or TooLargeError with the library's message."""
        out = ctypes.c_void_p()
        buf, n = data(payload)
        t = int(type_of(msg_type))
        if max_size is None:
            check(lib.aiplat_msg_decode(ctypes.byref(out), t, buf, n))
        else:
            check(lib.aiplat_msg_decode_max(ctypes.byref(out), t, buf, n, max_size))
        return cls._adopt(out)

    def to_json(self, pretty: bool = False, elide_bytes: bool = False) -> str:
        """The protobuf JSON mapping, with .proto field names."""
        flags = (JSON_PRETTY if pretty else 0) | (JSON_ELIDE_BYTES if elide_bytes else 0)
        out = ctypes.c_void_p()
        check(lib.aiplat_msg_to_json_flags(self.handle, flags, ctypes.byref(out)), self._err())
        return take_text(out)

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.to_json())
        return result

    @classmethod
    def from_json(
        cls, msg_type: MsgType | int | str, text: str | bytes | Mapping[str, Any]
    ) -> "Msg":
        """Parse the protobuf JSON mapping (text, or a dict to serialise)."""
        doc = text if isinstance(text, (str, bytes)) else json.dumps(text)
        out = ctypes.c_void_p()
        check(lib.aiplat_msg_from_json(ctypes.byref(out), int(type_of(msg_type)),
                                       enc(doc, "json")))
        return cls._adopt(out)

    def copy(self) -> "Msg":
        """A deep copy, owned by the caller."""
        out = ctypes.c_void_p()
        check(lib.aiplat_msg_copy(ctypes.byref(out), self.handle), self._err())
        return Msg._adopt(out)
