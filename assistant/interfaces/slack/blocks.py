"""Render an `Answer` as Slack Block Kit: the answer, its sources, then models and time.

Input is the answer contract (`types.Answer`); output is a list of block dicts plus a plain-text
fallback for notifications. Everything stays within Slack's limits (3000 characters a section,
50 blocks). Posting the blocks is `bot`'s job.
"""

from __future__ import annotations

from typing import Any

from assistant.interfaces.render import QUOTE_CHARS, clip, footer, plain_text, sources_heading, where
from assistant.types import Answer, Citation, Evidence

SECTION_LIMIT = 3000  # characters in a section's text
MAX_BLOCKS = 50
TEXT_LIMIT = 3000  # the plain `text` fallback
WRITING = "writing the answer from this and nearby passages…"
Block = dict[str, Any]


def answer_blocks(answer: Answer) -> list[Block]:
    """Blocks for a whole answer: the text with its `[n]` markers, the sources, a context line."""
    blocks = [section(escape(answer.answer))]
    if answer.sources:
        heading = f"*{sources_heading(answer)}*"
        blocks.append(section(_fit_lines([heading], [_source_line(c) for c in answer.sources])))
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": escape(footer(answer, labels=False))}]})
    return blocks[:MAX_BLOCKS]


def feedback_block(row: int) -> Block:
    """👍/👎 buttons under an answer; `row` is the answer's id in the feedback store."""
    buttons = [("feedback_up", "👍"), ("feedback_down", "👎")]
    return {
        "type": "actions",
        "block_id": "feedback",
        "elements": [
            {"type": "button", "action_id": action, "value": str(row), "text": {"type": "plain_text", "text": label}}
            for action, label in buttons
        ],
    }


def rated_blocks(blocks: list[Block], rating: str) -> list[Block]:
    """The answer's blocks once rated: the buttons replaced by the choice, which the thread keeps."""
    thumb = "👍" if rating == "up" else "👎"
    note = {"type": "context", "elements": [{"type": "mrkdwn", "text": f"{thumb} rated, thank you"}]}
    return [b for b in blocks if b.get("type") != "actions"] + [note]


def answer_text(answer: Answer) -> str:
    """The plain `text` fallback (notifications, screen readers, clients without blocks)."""
    return clip(plain_text(answer), TEXT_LIMIT)


def evidence_text(evidence: Evidence) -> str:
    """The best supporting quote, posted at once while the answer is written (then replaced)."""
    return clip(f"{evidence.text} ({where(evidence.citation)})\n{WRITING}", TEXT_LIMIT)


def evidence_blocks(evidence: Evidence) -> list[Block]:
    quote = f"{escape(evidence.text)}\n_{escape(where(evidence.citation))}_"
    return [section(quote), {"type": "context", "elements": [{"type": "mrkdwn", "text": WRITING}]}]


def message_blocks(text: str) -> list[Block]:
    """One section holding `text` (escaped, clipped): placeholders, apologies, quoted questions."""
    return [section(escape(text))]


def question_blocks(user: str, question: str) -> list[Block]:
    """The channel message a slash command's answer is threaded under: who asked what."""
    return [section(f"<@{user}> asked:\n>{escape(question)}")]


def section(mrkdwn: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip_markup(mrkdwn, SECTION_LIMIT)}}


def escape(text: str) -> str:
    """Slack's three control characters; everything else is shown as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _source_line(c: Citation) -> str:
    return f"*[{c.n}]* {escape(where(c))}\n>“{escape(clip(c.quote or c.text, QUOTE_CHARS))}”"


def _fit_lines(head: list[str], lines: list[str], limit: int = SECTION_LIMIT) -> str:
    """Whole lines while they fit, then "…" (never a cut inside a line's markup)."""
    out = list(head)
    for line in lines:
        if len("\n".join([*out, line, "…"])) > limit:
            out.append("…")
            break
        out.append(line)
    return "\n".join(out)


def _clip_markup(mrkdwn: str, limit: int) -> str:
    """Clip escaped text without leaving half an `&amp;` entity at the end."""
    if len(mrkdwn) <= limit:
        return mrkdwn
    cut = mrkdwn[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut.rstrip() + "…"
