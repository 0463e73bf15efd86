"""Answer ids: the server's signature over an answer it gave, so feedback can tell it from one a client made up.

`AnswerIds(path).sign(answer, history)` is an HMAC (SHA-256) over what was asked and answered: the question, the
user's turns before it, the answer, its refusal and citations, the models (not timings, nor a server's file
path). Its key is a random secret kept in `path`, made on first use and readable by its owner only; every process
that shares the file signs alike. `vouches` checks an id against the content it came back with. Carrying the id
(`Answer.answer_id`) is `core`'s job; what a verified rating is worth is `feedback`'s.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from assistant.checks.inputs import check_history

log = logging.getLogger(__name__)

SIGNED_CITATION = ("n", "source", "start", "end", "text", "quote")  # what an id vouches for in each citation


class AnswerIds:
    """Signs and checks the ids of answers, with the secret in the file `secret` (created on first use)."""

    def __init__(self, secret: Path) -> None:
        self.path = secret
        self._secret: bytes | None = None  # read (or made) on the first `sign`; b"" when it cannot be kept

    def sign(self, answer: Mapping[str, Any], history: Sequence[str]) -> str:
        """The id of an answer this server gives (`answer` as `Answer.to_dict`, after the user's earlier turns
        `history`): a client can neither make one up nor move it to other content. "" when no secret can be
        kept (feedback on the answer is then unverified)."""
        if not (key := self._key()):
            return ""
        return hmac.new(key, _signed(answer, history), hashlib.sha256).hexdigest()[:32]

    def vouches(self, answer: Mapping[str, Any], history: Sequence[str]) -> bool:
        """Whether `answer` carries the `answer_id` this server gave that very content after `history`."""
        given = answer.get("answer_id")
        if not isinstance(given, str) or not given:
            return False
        return hmac.compare_digest(given.encode(errors="replace"), self.sign(answer, history).encode())

    def _key(self) -> bytes:
        if self._secret is None:
            try:
                self._secret = _secret_in(self.path)
            except (OSError, ValueError) as exc:
                log.warning("cannot keep the answer-id secret %s (%s): all feedback is unverified", self.path, exc)
                self._secret = b""
        return self._secret


def _signed(answer: Mapping[str, Any], history: Sequence[str]) -> bytes:
    """What an answer's id vouches for, as canonical JSON: the question and the turns before it, the answer,
    its refusal and citations, the models that wrote it (not its timings, nor a citation's server path)."""
    content = {
        "question": answer.get("question"),
        "history": check_history(history),
        "answer": answer.get("answer"),
        "refused": bool(answer.get("refused")),
        "refusal_reason": answer.get("refusal_reason"),
        "citations": [{k: c.get(k) for k in SIGNED_CITATION} for c in answer.get("citations") or []],
        "models": answer.get("models") or {},
    }
    return json.dumps(content, ensure_ascii=False, sort_keys=True).encode("utf-8", "surrogatepass")


def _secret_in(path: Path) -> bytes:
    """The secret in `path`, made (random, readable by its owner only) when there is none yet: every process
    using the store, replicas sharing `ASSISTANT_FEEDBACK_DB` among them, signs with the same one."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(temp, path)  # whole or not at all, and never over a secret another process made first
        except FileExistsError:
            pass
        finally:
            temp.unlink(missing_ok=True)
    secret = path.read_bytes().strip()
    if len(secret) < 32:
        raise ValueError("it is shorter than 32 characters: delete it and a new one is made")
    return secret
