"""Feedback: 👍/👎 (and a comment) on answers, stored durably and turned into evaluation data.

Every interface records what the user saw (the answer contract, the conversation before it, where it was
shown) and the rating: the page's thumbs, Slack's buttons, `POST /api/feedback`. The store is one SQLite
file in WAL mode (standard library; several processes may write it), by default beside the index
(`<index dir>/feedback.sqlite3`, `ASSISTANT_FEEDBACK_DB` for a path replicas share). `report` sums it up per
rating and refusal reason, the worst questions and a daily trend; `export` writes the shared eval format, so
`assistant eval` and `calibrate` can take it: a 👍 item carries the answer given as its candidate gold, a 👎
item is marked for a person to label (`needs_label`), with what was answered and cited kept beside it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from assistant.errors import AssistantError, InputError

RATINGS = {"up": 1, "down": -1}
MAX_COMMENT_CHARS = 2000
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
    index_version text not null default ''
)
"""


class FeedbackStore:
    """The feedback of one corpus's users, in the SQLite file at `path` (created on first use)."""

    def __init__(self, path: Path, index_version: str = "") -> None:
        self.path, self.index_version = path, index_version
        self._lock = threading.Lock()

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
            with db:
                yield db
        finally:
            db.close()

    def record(self, answer: dict[str, Any], history: Sequence[str], source: str) -> int:
        """Keep an answer as shown (Slack's buttons rate it later by this id); the row's id."""
        with self._lock, self._db() as db:
            cursor = db.execute(
                "insert into feedback (created, source, question, history, answer, refused, refusal_reason, "
                "index_version) values (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time(),
                    source,
                    str(answer.get("question", "")),
                    json.dumps(list(history), ensure_ascii=False),
                    json.dumps(answer, ensure_ascii=False),
                    int(bool(answer.get("refused"))),
                    answer.get("refusal_reason"),
                    self.index_version,
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

    def add(self, answer: dict[str, Any], history: Sequence[str], rating: str, comment: str, source: str) -> int:
        """Record an answer and its rating at once (the page and the API); the row's id."""
        _rating(rating), _comment(comment)  # checked before anything is written
        row = self.record(answer, history, source)
        self.rate(row, rating, comment)
        return row

    def rows(self, rated_only: bool = True) -> list[dict[str, Any]]:
        with self._lock, self._db() as db:
            db.row_factory = sqlite3.Row
            where = "where rating is not null" if rated_only else ""
            rows = [dict(r) for r in db.execute(f"select * from feedback {where} order by id")]  # noqa: S608
        for r in rows:
            r["history"], r["answer"] = json.loads(r["history"]), json.loads(r["answer"])
        return rows

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
            "by_reason": dict(sorted(by_reason.items())),
            "by_source": dict(Counter(r["source"] for r in rows)),
            "worst_questions": Counter(r["question"] for r in down).most_common(worst),
            "trend": {day: dict(c) for day, c in sorted(by_day.items())},
        }

    def export(self, out: Path) -> tuple[int, int]:
        """The rated answers as eval items (JSON Lines, the shared eval format) in `out`; (up, down) written."""
        items, up = [], 0
        for r in self.rows():
            answer = r["answer"]
            cited = [c.get("quote") or c.get("text", "") for c in answer.get("citations", [])]
            item: dict[str, Any] = {
                "id": f"feedback-{r['id']}",
                "turns": [*r["history"], r["question"]],
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
                },
            }
            if r["rating"] > 0:  # what the user accepted: a candidate gold answer, its evidence the cited quotes
                up += 1
                item.update(answerable=not r["refused"], answers=[] if r["refused"] else [answer.get("answer", "")])
                item["evidence"] = cited
            else:  # a person decides what the right answer (or refusal) is
                item.update(needs_label=True, answerable=True, answers=[], evidence=[])
            items.append(item)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
        except OSError as exc:
            raise AssistantError(f"cannot write {out} ({exc}): choose another --out") from exc
        return up, len(items) - up


def _rating(rating: str) -> int:
    if rating not in RATINGS:
        raise InputError(f"rating must be 'up' or 'down', not {rating!r}")
    return RATINGS[rating]


def _comment(comment: str) -> str:
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS:
        raise InputError(f"a comment is text of at most {MAX_COMMENT_CHARS} characters")
    return comment.strip()
