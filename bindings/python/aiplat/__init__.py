"""Python bindings of libaiplat (ctypes, standard library only).

The package wraps the public C API (include/aiplat/*.h) for Python
services: errors become exceptions, handles become objects with
``close()`` and context managers, callbacks are Python callables. See
docs/decisions/0018-ffi-bindings.md for threads, the GIL and lifetimes.
"""

from . import log, rag, subject
from ._lib import lib as _clib
from .bus import Bus, BusMessage, Event, KeyValue, Retention, Subscription
from .client import Client
from .config import Config, is_secret, parse_duration_ms, settings
from .errors import (
    AiplatError,
    AuthError,
    BadRequestError,
    CancelledError,
    ClosedError,
    ConfigError,
    ConnectionFailedError,
    DecodeError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    NotSupportedError,
    ProtocolError,
    RateLimitedError,
    ServerError,
    StateError,
    Status,
    TimeoutError,
    TooLargeError,
    UnavailableError,
    clear_error,
    error_for,
    last_error,
    status_name,
    status_str,
)
from .log import Level
from .message import FieldKind, Msg, MsgType, field_info, field_names, type_name
from .models import (
    LLM,
    STT,
    TTS,
    Embeddings,
    LlmResult,
    Reranker,
    RerankerApi,
    Segment,
    SttApi,
    SttFormat,
    Transcript,
)
from .rag import RAG, IngestOutcome, Passage
from .service import Request, Service

# The version of these bindings: the libaiplat release they come with.
__version__ = "0.1.0"


def version() -> str:
    """The run-time library version, "MAJOR.MINOR.PATCH"."""
    text: bytes = _clib.aiplat_version_string()
    return text.decode()


def version_number() -> int:
    number: int = _clib.aiplat_version_number()
    return number


def library_path() -> str:
    """The libaiplat file or soname that was loaded."""
    path: str = _clib.path
    return path


__all__ = [n for n in dir() if not n.startswith("_")]
