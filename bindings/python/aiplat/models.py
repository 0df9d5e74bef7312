"""Model clients: chat completions (plain and streamed), embeddings,
reranking, speech-to-text and text-to-speech (aiplat/llm.h, embeddings.h,
reranker.h, stt.h, tts.h).

Each client is configured from a :class:`~aiplat.Config` or the environment
(``VLLM_URL``, ``EMBEDDINGS_URL``, ...) and keyword overrides. Calls run on
the calling thread with the GIL released; streamed pieces are handed to the
Python callback on that same thread. A client may be shared by threads;
:meth:`cancel` (from another thread) stops a call in progress.
"""

import ctypes
import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

from ._lib import LLM_TOKEN_FN, TTS_CHUNK_FN, lib
from ._util import Buffer, Closing, data, dec, enc, strv, take_bytes, take_string, text
from .config import Config
from .errors import HandleError, check


class _Client(Closing):
    """Shared parts: create from config, setters, health, cancel, close."""

    _prefix: str = ""  # "aiplat_llm", ...
    _url_var: str = ""  # "VLLM_URL", ...

    def __init__(self, config: Config | None = None, **settings: Any) -> None:
        """``config``: a Config (read at creation, not kept) or None for the
        environment; keyword settings call the ``set_*`` methods, e.g.
        ``LLM(url="http://127.0.0.1:8000", model="m", timeout_ms=30000)``."""
        self._ptr = ctypes.c_void_p()
        create = getattr(lib, self._prefix + "_create")
        temp = None
        if config is None and settings.get("url") is not None:
            # The URL may be required at creation (the reranker's is).
            temp = config = Config({self._url_var: settings["url"]})
        try:
            check(create(ctypes.byref(self._ptr), config.handle if config is not None else None))
        finally:
            if temp is not None:
                temp.close()
        for name, value in settings.items():
            setter = getattr(self, "set_" + name, None)
            if setter is None:
                self.close()
                raise TypeError("%s has no setting %r" % (type(self).__name__, name))
            setter(value)

    def _fn(self, verb: str) -> Any:
        return getattr(lib, "%s_%s" % (self._prefix, verb))

    def _err(self) -> HandleError:
        return (self._fn("last_error"), self._ptr)

    @property
    def handle(self) -> ctypes.c_void_p:
        if not self._ptr:
            raise ValueError("%s: closed" % type(self).__name__)
        return self._ptr

    def _set(self, verb: str, value: object) -> None:
        check(self._fn("set_" + verb)(self.handle, value), self._err())

    def set_url(self, url: str) -> None:
        self._set("url", enc(url, "url"))

    def set_model(self, model: str | None) -> None:
        self._set("model", enc(model, "model"))

    def set_api_key(self, key: str | None) -> None:
        self._set("api_key", enc(key, "api key"))

    def set_timeout_ms(self, ms: int) -> None:
        self._set("timeout_ms", int(ms))

    def set_connect_timeout_ms(self, ms: int) -> None:
        self._set("connect_timeout_ms", int(ms))

    def set_max_retries(self, n: int) -> None:
        self._set("max_retries", int(n))

    def health(self) -> None:
        """Readiness probe; raises when the server is not ready."""
        check(self._fn("health")(self.handle), self._err())

    def cancel(self) -> None:
        """Stop every call on this client in progress (any thread)."""
        self._fn("cancel")(self.handle)

    def close(self) -> None:
        """Destroy the client; no call may be running on it."""
        if self._ptr:
            self._fn("destroy")(self._ptr)
            self._ptr = ctypes.c_void_p()



# ---- chat completions ---------------------------------------------------------

# One user message, or (role, content) pairs or {"role", "content"} dicts.
Messages = str | Iterable[tuple[str, str] | Mapping[str, str]]


@dataclass
class LlmResult:
    text: str
    finish_reason: str | None = None
    model: str | None = None
    prompt_tokens: int = -1
    completion_tokens: int = -1
    total_tokens: int = -1


def _llm_result(ptr: ctypes.c_void_p) -> LlmResult:
    p = lib.aiplat_llm_result_text(ptr)
    n = lib.aiplat_llm_result_text_len(ptr)
    return LlmResult(
        text=ctypes.string_at(p, n).decode("utf-8", "replace") if p and n else "",
        finish_reason=dec(lib.aiplat_llm_result_finish_reason(ptr)),
        model=dec(lib.aiplat_llm_result_model(ptr)),
        prompt_tokens=lib.aiplat_llm_result_prompt_tokens(ptr),
        completion_tokens=lib.aiplat_llm_result_completion_tokens(ptr),
        total_tokens=lib.aiplat_llm_result_total_tokens(ptr),
    )


class _LlmRequest:
    """A temporary aiplat_llm_request built from Python arguments."""

    def __init__(
        self,
        messages: "Messages",
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: str | Iterable[str] | None = None,
        seed: int | None = None,
    ) -> None:
        self.ptr = ctypes.c_void_p()
        check(lib.aiplat_llm_request_create(ctypes.byref(self.ptr)))
        err = (lib.aiplat_llm_request_last_error, self.ptr)
        try:
            if isinstance(messages, str):
                messages = [("user", messages)]
            for m in messages:
                role, content = (m["role"], m["content"]) if isinstance(m, dict) else m
                check(lib.aiplat_llm_request_add_message(self.ptr, enc(role, "role"),
                                                         enc(content, "content")), err)
            if model is not None:
                check(lib.aiplat_llm_request_set_model(self.ptr, enc(model, "model")), err)
            if max_tokens is not None:
                check(lib.aiplat_llm_request_set_max_tokens(self.ptr, int(max_tokens)), err)
            if temperature is not None:
                check(lib.aiplat_llm_request_set_temperature(self.ptr, float(temperature)), err)
            if top_p is not None:
                check(lib.aiplat_llm_request_set_top_p(self.ptr, float(top_p)), err)
            for s in [stop] if isinstance(stop, str) else (stop or []):
                check(lib.aiplat_llm_request_add_stop(self.ptr, enc(s, "stop")), err)
            if seed is not None:
                check(lib.aiplat_llm_request_set_seed(self.ptr, int(seed)), err)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.ptr:
            lib.aiplat_llm_request_destroy(self.ptr)
            self.ptr = ctypes.c_void_p()

    def __enter__(self) -> ctypes.c_void_p:
        return self.ptr

    def __exit__(self, *exc: object) -> None:
        self.close()


class LLM(_Client):
    """Chat completions (``VLLM_URL``, ``LLM_MODEL``, ...).

    ``messages`` is a string (one user message), or a list of
    ``(role, content)`` pairs or ``{"role", "content"}`` dicts.
    """

    _prefix = "aiplat_llm"
    _url_var = "VLLM_URL"

    def set_stream_idle_timeout_ms(self, ms: int) -> None:
        self._set("stream_idle_timeout_ms", int(ms))

    def complete(self, messages: "Messages", **params: Any) -> LlmResult:
        """Wait for the whole answer; returns an :class:`LlmResult`."""
        out = ctypes.c_void_p()
        with _LlmRequest(messages, **params) as req:
            check(lib.aiplat_llm_complete(self.handle, req, ctypes.byref(out)), self._err())
        try:
            return _llm_result(out)
        finally:
            lib.aiplat_llm_result_destroy(out)

    def stream(
        self, messages: "Messages", on_token: Callable[[str], object], **params: Any
    ) -> LlmResult:
        """Stream the answer: ``on_token(text)`` gets each piece as it
        arrives, on this thread; it may return ``False`` to stop (then
        CancelledError). An exception in it stops the stream and is raised
        here. Returns the :class:`LlmResult` of the whole text."""
        raised: list[BaseException] = []

        def trampoline(delta: Any, length: int, user_data: Any) -> bool:
            try:
                text = ctypes.string_at(delta, length).decode("utf-8", "replace")
                return on_token(text) is not False
            except BaseException as e:
                raised.append(e)
                return False

        thunk = LLM_TOKEN_FN(trampoline)  # alive for the whole call
        out = ctypes.c_void_p()
        with _LlmRequest(messages, **params) as req:
            st = lib.aiplat_llm_stream(self.handle, req, thunk, None, ctypes.byref(out))
        try:
            if raised:
                raise raised[0]
            check(st, self._err())
            return _llm_result(out)
        finally:
            lib.aiplat_llm_result_destroy(out)


# ---- embeddings -----------------------------------------------------------------


class Embeddings(_Client):
    """Embeddings (``EMBEDDINGS_URL``, ``EMBEDDINGS_MODEL``, ...)."""

    _prefix = "aiplat_embeddings"
    _url_var = "EMBEDDINGS_URL"

    def set_expected_dimension(self, dim: int) -> None:
        self._set("expected_dimension", int(dim))

    def set_batch_size(self, n: int) -> None:
        self._set("batch_size", int(n))

    @overload
    def embed(self, texts: str) -> list[float]: ...  # type: ignore[misc]

    @overload
    def embed(self, texts: Iterable[str]) -> list[list[float]]: ...

    def embed(self, texts: str | Iterable[str]) -> list[float] | list[list[float]]:
        """One vector (a list of floats) per input string, in input order.
        A single string gives a single vector."""
        single = isinstance(texts, str)
        arr, n = strv([texts] if isinstance(texts, str) else list(texts), "text")
        out = ctypes.c_void_p()
        check(lib.aiplat_embeddings_embed(self.handle, arr, n, ctypes.byref(out)), self._err())
        try:
            count = lib.aiplat_embeddings_result_count(out)
            dim = lib.aiplat_embeddings_result_dimension(out)
            flat = lib.aiplat_embeddings_result_data(out)
            vectors: list[list[float]] = [flat[i * dim:(i + 1) * dim] for i in range(count)]
        finally:
            lib.aiplat_embeddings_result_destroy(out)
        return vectors[0] if single else vectors


# ---- reranker -------------------------------------------------------------------


class RerankerApi(enum.IntEnum):
    AUTO = 0
    COHERE = 1
    TEI = 2


class Reranker(_Client):
    """Reranking (``RERANKER_URL``, required)."""

    _prefix = "aiplat_reranker"
    _url_var = "RERANKER_URL"

    def set_api(self, api: "RerankerApi | int") -> None:
        self._set("api", int(api))

    @property
    def api(self) -> "RerankerApi":
        return RerankerApi(lib.aiplat_reranker_get_api(self.handle))

    def rerank(
        self, query: str, documents: Iterable[str], top_n: int = 0
    ) -> list[tuple[int, float]]:
        """``[(index, score), ...]`` best first; ``top_n`` 0 keeps all."""
        arr, n = strv(documents, "document")
        out = ctypes.c_void_p()
        check(lib.aiplat_reranker_rerank(self.handle, enc(query, "query"), arr, n, top_n,
                                         ctypes.byref(out)), self._err())
        try:
            return [(lib.aiplat_reranker_result_index(out, i),
                     lib.aiplat_reranker_result_score(out, i))
                    for i in range(lib.aiplat_reranker_result_count(out))]
        finally:
            lib.aiplat_reranker_result_destroy(out)


# ---- speech-to-text -------------------------------------------------------------


class SttApi(enum.IntEnum):
    OPENAI = 0
    WHISPER_CPP = 1


class SttFormat(enum.IntEnum):
    JSON = 0
    VERBOSE_JSON = 1
    TEXT = 2


@dataclass
class Segment:
    start: float
    end: float
    text: str


@dataclass
class Transcript:
    text: str
    language: str | None = None
    duration: float = -1.0
    segments: list[Segment] = field(default_factory=list)


class STT(_Client):
    """Speech-to-text (``STT_URL``, ...)."""

    _prefix = "aiplat_stt"
    _url_var = "STT_URL"

    def set_api(self, api: SttApi | int) -> None:
        self._set("api", int(api))

    def set_response_format(self, fmt: SttFormat | int) -> None:
        self._set("response_format", int(fmt))

    def set_language(self, language: str | None) -> None:
        self._set("language", enc(language, "language"))

    def transcribe(
        self, audio: Buffer, mime_type: str | None = None, language: str | None = None
    ) -> Transcript:
        """Transcribe audio bytes; returns a :class:`Transcript`."""
        buf, n = data(audio)
        out = ctypes.c_void_p()
        check(lib.aiplat_stt_transcribe(self.handle, buf, n, enc(mime_type, "mime type"),
                                        enc(language, "language"), ctypes.byref(out)),
              self._err())
        try:
            segs = [Segment(lib.aiplat_stt_result_segment_start(out, i),
                            lib.aiplat_stt_result_segment_end(out, i),
                            text(lib.aiplat_stt_result_segment_text(out, i)))
                    for i in range(lib.aiplat_stt_result_segment_count(out))]
            return Transcript(text(lib.aiplat_stt_result_text(out)),
                              dec(lib.aiplat_stt_result_language(out)),
                              lib.aiplat_stt_result_duration(out), segs)
        finally:
            lib.aiplat_stt_result_destroy(out)


# ---- text-to-speech -------------------------------------------------------------


class TTS(_Client):
    """Text-to-speech (``TTS_URL``, ``TTS_VOICE``, ...)."""

    _prefix = "aiplat_tts"
    _url_var = "TTS_URL"

    def set_stream_idle_timeout_ms(self, ms: int) -> None:
        self._set("stream_idle_timeout_ms", int(ms))

    def set_voice(self, voice: str | None) -> None:
        self._set("voice", enc(voice, "voice"))

    def set_format(self, fmt: str | None) -> None:
        self._set("format", enc(fmt, "format"))

    def set_speed(self, speed: float) -> None:
        self._set("speed", float(speed))

    def synthesize(self, text: str, voice: str | None = None) -> tuple[bytes, str | None]:
        """``(audio bytes, content type)``."""
        audio, n, ctype = ctypes.c_void_p(), ctypes.c_size_t(), ctypes.c_void_p()
        check(lib.aiplat_tts_synthesize(self.handle, enc(text, "text"), enc(voice, "voice"),
                                        ctypes.byref(audio), ctypes.byref(n),
                                        ctypes.byref(ctype)), self._err())
        content_type = take_string(ctype)
        return take_bytes(audio, n.value), content_type

    def synthesize_stream(
        self, text: str, on_chunk: Callable[[bytes], object], voice: str | None = None
    ) -> str | None:
        """Hand the audio to ``on_chunk(bytes)`` as it arrives (this
        thread); ``False`` stops it. Returns the content type."""
        raised: list[BaseException] = []

        def trampoline(ptr: Any, length: int, user_data: Any) -> bool:
            try:
                return on_chunk(ctypes.string_at(ptr, length)) is not False
            except BaseException as e:
                raised.append(e)
                return False

        thunk = TTS_CHUNK_FN(trampoline)
        ctype = ctypes.c_void_p()
        st = lib.aiplat_tts_synthesize_stream(self.handle, enc(text, "text"),
                                              enc(voice, "voice"), thunk, None,
                                              ctypes.byref(ctype))
        content_type = take_string(ctype)
        if raised:
            raise raised[0]
        check(st, self._err())
        return content_type
