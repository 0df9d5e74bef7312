"""Retrieval-augmented generation (aiplat/rag.h): ingest documents into the
vector store, query the passages that answer a question, format them as
numbered prompt context.

Available when the loaded libaiplat has the RAG API (``aiplat.rag.available()``);
creating a :class:`RAG` otherwise raises NotSupportedError.
"""

import ctypes
import enum
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._lib import lib
from ._util import Closing, data, dec, enc, take_text, text
from .config import Config
from .errors import HandleError, NotSupportedError, Status, check
from .models import Embeddings, Reranker


def available() -> bool:
    """True when the loaded library exports the RAG API."""
    return lib.has("aiplat_rag_create")


class IngestOutcome(enum.IntEnum):
    NEW = 1
    UNCHANGED = 2
    REPLACED = 3
    EMPTY = 4


@dataclass
class Passage:
    id: str
    text: str
    source: str
    metadata: dict[str, Any]
    score: float
    vector_score: float


class Results(list[Passage], Closing):
    """The passages a query found, best first (a list of :class:`Passage`);
    ``reranked`` tells whether a reranker ordered them, ``context(max)``
    formats them as the library does."""

    def __init__(self, passages: Iterable[Passage], reranked: bool, ptr: ctypes.c_void_p) -> None:
        super().__init__(passages)
        self.reranked = reranked
        self._ptr = ptr

    def context(self, max_chars: int) -> str:
        if not self._ptr:
            raise ValueError("rag results: closed")
        out = ctypes.c_void_p()
        check(lib.aiplat_rag_results_context(self._ptr, max_chars, ctypes.byref(out)))
        return take_text(out)

    def close(self) -> None:
        if self._ptr:
            lib.aiplat_rag_results_destroy(self._ptr)
            self._ptr = ctypes.c_void_p()


class RAG(Closing):
    """Embeddings client + vector store (+ reranker when ``RERANKER_URL``
    is set), configured from a :class:`~aiplat.Config` or the environment
    (``EMBEDDINGS_*``, ``VECTOR_STORE*``, ``MILVUS_*``, ``RAG_*``). Keyword
    settings call the ``set_*`` methods. A handle may be shared by threads.
    With ``embeddings`` (and ``reranker``) clients of this package, the
    handle borrows them: keep them open while the RAG is."""

    def __init__(
        self,
        config: Config | None = None,
        embeddings: Embeddings | None = None,
        reranker: Reranker | None = None,
        **settings: Any,
    ) -> None:
        if not available():
            raise NotSupportedError(Status.NOT_SUPPORTED,
                                    "this libaiplat has no RAG API (include/aiplat/rag.h)")
        self._ptr = ctypes.c_void_p()
        # Kept alive while we are.
        self._borrowed: tuple[Embeddings | None, Reranker | None] = (embeddings, reranker)
        cfg = config.handle if config is not None else None
        if embeddings is None:
            if reranker is not None:
                raise TypeError("rag: a reranker needs an embeddings client too")
            check(lib.aiplat_rag_create(ctypes.byref(self._ptr), cfg))
        else:
            check(lib.aiplat_rag_create_with(ctypes.byref(self._ptr), cfg, embeddings.handle,
                                             reranker.handle if reranker is not None else None))
        for name, value in settings.items():
            setter = getattr(self, "set_" + name, None)
            if setter is None:
                self.close()
                raise TypeError("RAG has no setting %r" % name)
            setter(*value) if isinstance(value, tuple) else setter(value)

    @property
    def handle(self) -> ctypes.c_void_p:
        if not self._ptr:
            raise ValueError("rag: closed")
        return self._ptr

    def _err(self) -> HandleError:
        return (lib.aiplat_rag_last_error, self._ptr)

    def close(self) -> None:
        """Destroy the handle; no call may be running on it."""
        if self._ptr:
            lib.aiplat_rag_destroy(self._ptr)
            self._ptr = ctypes.c_void_p()
        self._borrowed = (None, None)

    # ---- settings ----------------------------------------------------------

    @property
    def store_backend(self) -> str:
        return text(lib.aiplat_rag_store_backend(self.handle))

    @property
    def reranks(self) -> bool:
        return bool(lib.aiplat_rag_reranks(self.handle))

    def set_top_k(self, k: int) -> None:
        check(lib.aiplat_rag_set_top_k(self.handle, k), self._err())

    def set_candidates(self, n: int) -> None:
        check(lib.aiplat_rag_set_candidates(self.handle, n), self._err())

    def set_min_score(self, score: float) -> None:
        check(lib.aiplat_rag_set_min_score(self.handle, float(score)), self._err())

    def set_context_chars(self, chars: int) -> None:
        check(lib.aiplat_rag_set_context_chars(self.handle, chars), self._err())

    def set_chunking(self, chunk_chars: int, overlap: int) -> None:
        check(lib.aiplat_rag_set_chunking(self.handle, chunk_chars, overlap), self._err())

    def set_rerank(self, enabled: bool) -> None:
        check(lib.aiplat_rag_set_rerank(self.handle, bool(enabled)), self._err())

    # ---- query -------------------------------------------------------------

    def query(self, question: str, top_k: int = 0, source: str | None = None) -> Results:
        """The passages that best answer ``question``: :class:`Results`."""
        out = ctypes.c_void_p()
        if top_k or source is not None:
            st = lib.aiplat_rag_query_filtered(self.handle, enc(question, "question"), top_k,
                                               enc(source, "source"), ctypes.byref(out))
        else:
            st = lib.aiplat_rag_query(self.handle, enc(question, "question"),
                                      ctypes.byref(out))
        check(st, self._err())
        r = out
        passages = []
        for i in range(lib.aiplat_rag_results_count(r)):
            meta = dec(lib.aiplat_rag_results_metadata(r, i)) or "{}"
            passages.append(Passage(
                id=text(lib.aiplat_rag_results_id(r, i)),
                text=text(lib.aiplat_rag_results_text(r, i)),
                source=text(lib.aiplat_rag_results_source(r, i)),
                metadata=json.loads(meta),
                score=lib.aiplat_rag_results_score(r, i),
                vector_score=lib.aiplat_rag_results_vector_score(r, i)))
        return Results(passages, bool(lib.aiplat_rag_results_reranked(r)), r)

    def context(self, question: str) -> str:
        """Query and format the numbered context in one call ("" when
        nothing was found)."""
        out = ctypes.c_void_p()
        check(lib.aiplat_rag_context(self.handle, enc(question, "question"), ctypes.byref(out)),
              self._err())
        return take_text(out)

    # ---- ingest ------------------------------------------------------------

    def ingest(
        self,
        source: str,
        text: str | bytes,
        metadata: str | Mapping[str, Any] | None = None,
    ) -> tuple[int, IngestOutcome]:
        """Ingest one document; returns ``(passages, IngestOutcome)``."""
        if isinstance(text, str):
            text = text.encode("utf-8")
        buf, n = data(text)
        meta = metadata if metadata is None or isinstance(metadata, str) else json.dumps(metadata)
        chunks, outcome = ctypes.c_size_t(), ctypes.c_int()
        check(lib.aiplat_rag_ingest(self.handle, enc(source, "source"), buf, n,
                                    enc(meta, "metadata"), ctypes.byref(chunks),
                                    ctypes.byref(outcome)), self._err())
        return chunks.value, IngestOutcome(outcome.value)

    def ingest_file(
        self, path: str | os.PathLike[str], source: str | None = None
    ) -> tuple[int, IngestOutcome]:
        """Ingest a text or markdown file; returns ``(passages, outcome)``."""
        chunks, outcome = ctypes.c_size_t(), ctypes.c_int()
        check(lib.aiplat_rag_ingest_file(self.handle, enc(str(path), "path"),
                                         enc(source, "source"), ctypes.byref(chunks),
                                         ctypes.byref(outcome)), self._err())
        return chunks.value, IngestOutcome(outcome.value)

    def delete_source(self, source: str) -> None:
        check(lib.aiplat_rag_delete_source(self.handle, enc(source, "source")), self._err())

    def count(self) -> int:
        """The number of passages in the store."""
        out = ctypes.c_uint64()
        check(lib.aiplat_rag_count(self.handle, ctypes.byref(out)), self._err())
        return out.value
