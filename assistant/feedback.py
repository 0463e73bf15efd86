"""Feedback: 👍/👎 (and a comment) on answers, stored durably and turned into evaluation data.

Every interface records what the user saw (the answer contract, the conversation before it, where it was
shown) and the rating: the page's thumbs, Slack's buttons, `POST /api/feedback`. The store is one SQLite
file in WAL mode (standard library; several processes may write it), by default beside the index
(`<index dir>/feedback.sqlite3`, `ASSISTANT_FEEDBACK_DB` for a path replicas share). `report` sums it up per
rating and refusal reason, the worst questions and a daily trend; `export` writes the shared eval format, so
`assistant eval` and `calibrate` can take it: a 👍 item carries the answer given as its candidate gold, a 👎
item is marked for a person to label (`needs_label`), with what was answered and cited kept beside it.
Only an answer this server gave counts as gold (`answer_ids`, its secret beside the store): a row whose answer
lacks its `answer_id`, or whose content no longer matches it, is kept unverified and exported for labelling.
Checking HTTP bodies field by field is the API's job.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.answer_ids import AnswerIds
from assistant.checks.inputs import check_history
from assistant.errors import AssistantError, InputError

log = logging.getLogger(__name__)

RATINGS = {"up": 1, "down": -1}
MAX_COMMENT_CHARS = 2000
MAX_ANSWER_CHARS = 8000  # far above any answer the server writes (its answers are capped in tokens)
SCHEMA = """
create table if not exists feedback (
    id integer primary key,
    created real not null,        -- when the answer was shown (unix time)
    rated real,                   -- when it was rated (null: shown, not rated yet)
    source text not null,         -- page, slack, api
    rating integer,               -- 1 (up), -1 (down), null
    comment text not null default '',
    question text not null,
    history text not null,        -- JSON list of the user's earlier turns
    answer text not null,         -- JSON: the answer contract as shown
    refused integer not null,
    refusal_reason text,
    index_version text not null default '',
    verified integer not null default 0  -- 1: the answer carried the id this server gave that very content
)
"""


@dataclass(frozen=True)
class Exported:
    """What `export` wrote: candidate gold (👍 on an answer this server gave), items for a person to label
    (👎, and 👍 on an answer it cannot vouch for), and rows left out because they could not be read."""

    gold: int
    to_label: int
    skipped: int


class FeedbackStore:
    """The feedback of one corpus's users, in the SQLite file at `path` (created on first use)."""

    def __init__(self, path: Path, index_version: str = "") -> None:
        self.path, self.index_version = path, index_version
        self._lock = threading.Lock()
        self.ids = AnswerIds(path.with_suffix(".secret"))  # which answers this server gave (`Answer.answer_id`)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10)
        except (OSError, sqlite3.Error) as exc:
            raise AssistantError(
                f"cannot open the feedback store {self.path} ({exc}): make its directory writable, or set "
                "ASSISTANT_FEEDBACK_DB to a writable path"
            ) from exc
        try:
            db.execute("pragma journal_mode=wal")
            db.execute(SCHEMA)
            _add_verified(db)
            with db:
                yield db
        finally:
            db.close()

    def record(self, answer: Mapping[str, Any], history: Sequence[str], source: str) -> int:
        """Keep an answer as shown (Slack's buttons rate it later by this id); the row's id. It is verified when
        `answer` carries the `answer_id` this server gave it after `history` (`ids`). `InputError` for an answer that
        could not be read back (its fields of the wrong type, text that is not valid Unicode, too long)."""
        history = check_history(history)
        stored = _stored(answer)
        verified = self.ids.vouches(answer, history)
        with self._lock, self._db() as db:
            cursor = db.execute(
                "insert into feedback (created, source, question, history, answer, refused, refusal_reason, "
                "index_version, verified) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time(),
                    source,
                    answer["question"],
                    json.dumps(history, ensure_ascii=False),
                    stored,
                    int(bool(answer.get("refused"))),
                    answer.get("refusal_reason"),
                    self.index_version,
                    int(verified),
                ),
            )
            return int(cursor.lastrowid or 0)

    def rate(self, row: int, rating: str, comment: str = "") -> None:
        """Set (or change) the rating of a recorded answer."""
        value = _rating(rating)
        with self._lock, self._db() as db:
            changed = db.execute(
                "update feedback set rating = ?, comment = ?, rated = ? where id = ?",
                (value, _comment(comment), time.time(), row),
            ).rowcount
        if not changed:
            raise InputError(f"no answer {row} to rate: rate an answer this server gave")

    def add(self, answer: Mapping[str, Any], history: Sequence[str], *, rating: str, comment: str, source: str) -> int:
        """Record an answer and its rating at once (the page and the API); the row's id."""
        _rating(rating), _comment(comment)  # checked before anything is written
        row = self.record(answer, history, source)
        self.rate(row, rating, comment)
        return row

    def rows(self, rated_only: bool = True) -> list[dict[str, Any]]:
        """The stored rows, `history` and `answer` parsed; a row that cannot be parsed (written by an older
        version, or by hand) is left out with a warning."""
        rows = []
        for r in self._raw(rated_only):
            try:
                rows.append(_parsed(r))
            except (ValueError, TypeError) as exc:
                log.warning("feedback row %s left out: %s", r["id"], exc)
        return rows

    def _raw(self, rated_only: bool) -> list[dict[str, Any]]:
        with self._lock, self._db() as db:
            db.row_factory = sqlite3.Row
            where = "where rating is not null" if rated_only else ""
            return [dict(r) for r in db.execute(f"select * from feedback {where} order by id")]  # noqa: S608

    def report(self, worst: int = 10) -> dict[str, Any]:
        """Counts per rating, per refusal reason and per source, the questions rated down most, a daily trend."""
        rows = self.rows()
        down = [r for r in rows if r["rating"] < 0]
        by_reason: Counter[str] = Counter()
        for r in rows:
            by_reason[f"{r['refusal_reason'] or 'answered'} {'down' if r['rating'] < 0 else 'up'}"] += 1
        by_day: dict[str, Counter[str]] = {}
        for r in rows:
            day = time.strftime("%Y-%m-%d", time.gmtime(r["rated"] or r["created"]))
            by_day.setdefault(day, Counter())["down" if r["rating"] < 0 else "up"] += 1
        return {
            "rated": len(rows),
            "up": len(rows) - len(down),
            "down": len(down),
            "unverified": sum(not r["verified"] for r in rows),
            "by_reason": dict(sorted(by_reason.items())),
            "by_source": dict(Counter(r["source"] for r in rows)),
            "worst_questions": Counter(r["question"] for r in down).most_common(worst),
            "trend": {day: dict(c) for day, c in sorted(by_day.items())},
        }

    def export(self, out: Path) -> Exported:
        """The rated answers as eval items (JSON Lines, the shared eval format) in `out`. A 👍 on an answer this
        server gave is candidate gold; a 👎, or a 👍 on an answer it cannot vouch for (no id, or content changed),
        is marked `needs_label`. A row that cannot be read is skipped with a warning; the rest are written."""
        lines, gold, skipped = [], 0, 0
        for r in self._raw(rated_only=True):
            try:
                item = _item(_parsed(r))
                lines.append(json.dumps(item, ensure_ascii=False) + "\n")
                lines[-1].encode("utf-8")  # text that is not valid Unicode: the row is skipped, not the file
            except (ValueError, TypeError, AttributeError, KeyError) as exc:
                log.warning("feedback row %s skipped: it cannot be read as an eval item (%s)", r["id"], exc)
                skipped += 1
                continue
            gold += not item.get("needs_label")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("".join(lines), encoding="utf-8")
        except OSError as exc:
            raise AssistantError(f"cannot write {out} ({exc}): choose another --out") from exc
        return Exported(gold, len(lines) - gold, skipped)


def _item(r: dict[str, Any]) -> dict[str, Any]:
    """A parsed row as an eval item: candidate gold only when it is a 👍 on an answer the server vouched for."""
    answer, history = r["answer"], r["history"]
    citations = answer.get("citations") or []
    if not isinstance(citations, list) or not all(isinstance(c, dict) for c in citations):
        raise ValueError("its citations are not passages")
    cited = [c.get("quote") or c.get("text") or "" for c in citations]
    if not all(isinstance(t, str) for t in [*history, *cited, r["question"], answer.get("answer", "")]):
        raise ValueError("its question, history, answer or citations are not text")
    item: dict[str, Any] = {
        "id": f"feedback-{r['id']}",
        "turns": [*history, r["question"]],
        "type": "feedback",
        "feedback": {
            "rating": "up" if r["rating"] > 0 else "down",
            "comment": r["comment"],
            "source": r["source"],
            "answer": answer.get("answer", ""),
            "refusal_reason": r["refusal_reason"],
            "cited": cited,
            "models": answer.get("models", {}),
            "index_version": r["index_version"],
            "verified": bool(r["verified"]),
        },
    }
    if r["rating"] > 0 and r["verified"]:  # what the user accepted: a candidate gold answer, its evidence the quotes
        item.update(answerable=not r["refused"], answers=[] if r["refused"] else [answer.get("answer", "")])
        item["evidence"] = cited
    else:  # a person decides what the right answer (or refusal) is
        item.update(needs_label=True, answerable=True, answers=[], evidence=[])
    return item


def _parsed(r: dict[str, Any]) -> dict[str, Any]:
    """A stored row with its `history` and `answer` read back (`ValueError` when they are not what was stored)."""
    history, answer = json.loads(r["history"]), json.loads(r["answer"])
    if not isinstance(history, list) or not isinstance(answer, dict):
        raise ValueError("its history or answer is not what feedback stores")
    return {**r, "history": history, "answer": answer}


def _rating(rating: str) -> int:
    if not isinstance(rating, str) or rating not in RATINGS:
        raise InputError(f"rating must be 'up' or 'down', not {rating!r}")
    return RATINGS[rating]


def _comment(comment: str) -> str:
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS or not _unicode(comment):
        raise InputError(f"a comment is valid UTF-8 text of at most {MAX_COMMENT_CHARS} characters")
    return comment.strip()


def _stored(answer: Mapping[str, Any]) -> str:
    """`answer` as its row keeps it (JSON), or `InputError` saying what to fix so `export` can read it back."""
    given = "send the answer object exactly as the server gave it"
    if not isinstance(answer, Mapping) or not all(isinstance(answer.get(k), str) for k in ("question", "answer")):
        raise InputError(f"the answer rated needs its `question` and `answer` as text: {given}")
    if len(answer["answer"]) > MAX_ANSWER_CHARS:
        raise InputError(f"the answer is over {MAX_ANSWER_CHARS} characters, more than this server writes: {given}")
    if not all(isinstance(answer.get(k), (str, type(None))) for k in ("refusal_reason", "answer_id")):
        raise InputError(f"the answer's `refusal_reason` and `answer_id` are text (or null): {given}")
    citations = answer.get("citations", [])
    if not isinstance(citations, list) or not all(isinstance(c, Mapping) for c in citations):
        raise InputError(f"the answer's `citations` are a list of passage objects: {given}")
    try:
        stored = json.dumps(answer, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"the answer holds values that are not JSON ({exc}): {given}") from exc
    if not _unicode(stored):
        raise InputError("the answer holds text that is not valid Unicode (an unpaired surrogate): send UTF-8 text")
    return stored


def _unicode(text: str) -> bool:
    """Whether `text` can be written as UTF-8 (no unpaired surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _add_verified(db: sqlite3.Connection) -> None:
    """Give a store made before answers carried ids its `verified` column (its rows stay unverified)."""
    if "verified" not in {row[1] for row in db.execute("pragma table_info(feedback)")}:
        try:
            db.execute("alter table feedback add column verified integer not null default 0")
        except sqlite3.OperationalError as exc:  # another process added it first
            if "duplicate column" not in str(exc):
                raise
