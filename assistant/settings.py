"""Settings: the one place that reads `ASSISTANT_*` variables; CLI flags override them (secrets for
Slack are read where the Slack adapter is built, `slack.serve.SlackTokens.from_env`).

Defaults: the corpus is `./corpus` when it exists (else the project's own `corpus/`), the index
lives in the user's data directory under a name derived from the corpus path, so switching corpora
never mixes their chunks, and the embedded Chroma store is used unless a server URL is set.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

from assistant.errors import ConfigurationError

PROJECT_CORPUS = Path(__file__).resolve().parent.parent / "corpus"
PROJECT_EVAL = Path(__file__).resolve().parent.parent / "data" / "eval"  # in a checkout (data/eval/LICENSES.md)
ENV_PREFIX = "ASSISTANT_"


@dataclass(frozen=True)
class Settings:
    corpus: Path
    index_dir: Path
    chroma_url: str | None = None
    collection: str = ""
    embeddings: str = "e5-small"
    embeddings_url: str | None = None  # OpenAI-compatible /v1 base URLs of embedding servers, comma-separated
    index_lease_s: float = 60.0  # a Chroma-server build whose builder is silent this long is taken as dead
    llm: str = "llama-cpp"
    openai_base_url: str | None = None  # for llm = "openai:<model>": any OpenAI-compatible server
    openai_api_key: str | None = None
    llm_timeout: float = 120.0  # seconds for one model call
    api_key: str | None = None  # when set, every route of `serve` but /healthz needs it (interfaces/http/access.py)
    api_queue_size: int = 8  # answers waiting (page, API and Slack together) before new ones are turned away
    api_rate_limit: int = 60  # requests per minute per client IP (0: no limit)
    api_key_attempts: int = 5  # wrong keys a client may try a minute; past them it is refused for a while
    trusted_proxy: str | None = None  # addresses whose X-Forwarded-For names the client (`serve --proxy`): none
    api_max_body_bytes: int = 64_000
    feedback_db: str | None = None  # the feedback store (SQLite); default: <index_dir>/feedback.sqlite3
    uploads: bool = True  # the page and /api/documents take files into the corpus (`ASSISTANT_UPLOADS=off`: not)
    upload_max_bytes: int = 20_000_000  # per added file (page, API and `assistant add`)

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from `env` (default: the process environment), then non-None `overrides`."""
        env = os.environ if env is None else env
        values: dict[str, object] = {
            f.name: env[ENV_PREFIX + f.name.upper()] for f in fields(cls) if env.get(ENV_PREFIX + f.name.upper())
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        for name, kind in (
            ("llm_timeout", float),
            ("index_lease_s", float),
            ("api_queue_size", int),
            ("api_rate_limit", int),
            ("api_key_attempts", int),
            ("api_max_body_bytes", int),
            ("upload_max_bytes", int),
        ):
            if name in values:
                values[name] = _number(kind, name, values[name])
        if int(values.get("api_key_attempts", 1)) < 1:  # type: ignore[call-overload]
            raise ConfigurationError(
                f"{ENV_PREFIX}API_KEY_ATTEMPTS={values['api_key_attempts']!r}: give the wrong keys a client may try "
                "a minute, 1 or more (the lockout cannot be turned off: without it a key can be guessed)"
            )
        if isinstance(values.get("uploads"), str):
            values["uploads"] = _switch("uploads", str(values["uploads"]))
        corpus = Path(str(values.pop("corpus", default_corpus()))).expanduser().resolve()
        index_dir = values.pop("index_dir", None)
        settings = cls(
            corpus=corpus,
            index_dir=Path(str(index_dir)).expanduser().resolve() if index_dir else default_index_dir(corpus),
            **values,  # type: ignore[arg-type]
        )
        return settings if settings.collection else replace(settings, collection=collection_name(corpus))


def environment_overrides(*names: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The settings among `names` that the environment sets (e.g. the models, which the quality gate pins)."""
    env = os.environ if env is None else env
    return {name: env[ENV_PREFIX + name.upper()] for name in names if env.get(ENV_PREFIX + name.upper())}


def _number(kind: type, name: str, value: object) -> float | int:
    try:
        return kind(str(value))  # type: ignore[no-any-return]
    except ValueError:
        raise ConfigurationError(f"{ENV_PREFIX}{name.upper()}={value!r} is not a number") from None


def _switch(name: str, value: str) -> bool:
    if value.strip().lower() in ("1", "on", "true", "yes"):
        return True
    if value.strip().lower() in ("0", "off", "false", "no"):
        return False
    raise ConfigurationError(f"{ENV_PREFIX}{name.upper()}={value!r}: use on or off")


def default_corpus() -> Path:
    local = Path.cwd() / "corpus"
    return local if local.is_dir() else PROJECT_CORPUS


def default_eval_root(env: Mapping[str, str] | None = None) -> Path:
    """The evaluation and calibration data: `ASSISTANT_EVAL_DIR`, else `./data/eval` (a checkout, whatever
    the install), else the checkout beside the package (an editable install run from elsewhere)."""
    env = os.environ if env is None else env
    if env.get(f"{ENV_PREFIX}EVAL_DIR"):
        return Path(env[f"{ENV_PREFIX}EVAL_DIR"]).expanduser()
    local = Path.cwd() / "data" / "eval"
    return local if local.is_dir() else PROJECT_EVAL


def default_index_dir(corpus: Path) -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("assistant", appauthor=False)) / "indexes" / collection_name(corpus)


def collection_name(corpus: Path) -> str:
    """A Chroma-safe name unique to the corpus directory, e.g. `corpus-3f2a9c1b`."""
    slug = re.sub(r"[^a-zA-Z0-9_-]+", "-", corpus.name).strip("-_")[:40] or "corpus"
    return f"{slug}-{hashlib.sha256(str(corpus).encode()).hexdigest()[:8]}"
