"""Platform subjects (aiplat/subject.h): build and validate them so that a
user-supplied token can never add a level or a wildcard."""

import ctypes
from collections.abc import Callable

from ._lib import lib
from ._util import enc, strv, take_string, take_text, text
from .errors import check


def _built(fn: Callable[..., int], *args: object) -> str:
    out = ctypes.c_void_p()
    check(fn(ctypes.byref(out), *args))
    return take_text(out)


def check_token(token: str) -> None:
    """Raise InvalidArgumentError (with the reason) unless ``token`` may be
    one level of a subject."""
    check(lib.aiplat_subject_token_check(enc(token, "token")))


def validate(subject: str) -> None:
    """Raise unless ``subject`` is a valid subject to publish on."""
    check(lib.aiplat_subject_validate(enc(subject, "subject")))


def validate_filter(subject: str) -> None:
    """Raise unless ``subject`` is a valid subscription filter."""
    check(lib.aiplat_subject_validate_filter(enc(subject, "subject")))


def join(*tokens: str) -> str:
    arr, n = strv(tokens, "token")
    return _built(lib.aiplat_subject_join, arr, n)


def build(domain: str, scope: str, action: str) -> str:
    """``ai.{domain}.{scope}.{action}``."""
    return _built(lib.aiplat_subject_build, enc(domain), enc(scope), enc(action))


def chat_user_message(user_id: str) -> str:
    return _built(lib.aiplat_subject_chat_user_message, enc(user_id, "user id"))


def chat_response(request_id: str) -> str:
    return _built(lib.aiplat_subject_chat_response, enc(request_id, "request id"))


def voice_user_request(user_id: str) -> str:
    return _built(lib.aiplat_subject_voice_user_request, enc(user_id, "user id"))


def voice_response(request_id: str) -> str:
    return _built(lib.aiplat_subject_voice_response, enc(request_id, "request id"))


def pipeline_status(run_id: str) -> str:
    return _built(lib.aiplat_subject_pipeline_status, enc(run_id, "run id"))


def pipeline_trigger() -> str:
    return text(lib.aiplat_subject_pipeline_trigger())


def chat_user_message_filter() -> str:
    return text(lib.aiplat_subject_chat_user_message_filter())


def voice_user_request_filter() -> str:
    return text(lib.aiplat_subject_voice_user_request_filter())


def token_at(subject: str, index: int) -> str | None:
    out = ctypes.c_void_p()
    check(lib.aiplat_subject_token_at(ctypes.byref(out), enc(subject, "subject"), index))
    return take_string(out)
