"""Render: the answer contract as plain text, the one form the CLI, Slack and the API's text build on.

`plain_text` gives the answer, then its sources (the cited passages, or the related ones of a
refusal, as `Answer.sources` says) one per numbered entry with its quote, then the models and
times. `where` names a passage as a reader finds it (section or title, paragraph, optionally the
file and offsets); `footer` and `clip` are shared by the richer renderers (HTML, Block Kit), which
add their own markup around the same parts.
"""

from __future__ import annotations

from assistant.types import Answer, Citation

QUOTE_CHARS = 220  # of a source's quote in a list of sources


def plain_text(answer: Answer, *, offsets: bool = False, why: bool = False, times: bool = True) -> str:
    """The answer; with `why`, a refusal's reason; the sources with their quotes; with `times`, the
    footer. `offsets` adds each source's file and character offsets (for checking a figure)."""
    lines = [answer.answer]
    if why and answer.refused and answer.refusal_reason:
        from assistant.checks.decide import REASONS

        reason = REASONS.get(answer.refusal_reason, answer.refusal_reason)
        lines.append(f"(why: {reason}{f' — {answer.refusal_detail}' if answer.refusal_detail else ''})")
    if answer.sources:
        lines += ["", f"{sources_heading(answer)}:"]
        for c in answer.sources:
            lines += [f"[{c.n}] {where(c, offsets)}", f"    “{clip(c.quote or c.text, QUOTE_CHARS)}”"]
    if times:
        lines += ["", f"({footer(answer)})"]
    return "\n".join(lines)


def sources_heading(answer: Answer) -> str:
    return "Related (not cited)" if answer.uncited else "Sources"


def where(c: Citation, offsets: bool = False) -> str:
    """`section · ¶paragraph` (the document title when the passage sits under no heading), with
    `offsets`: `· file:start-end` (the file relative to the corpus directory)."""
    parts = [c.section or c.title, f"¶{c.paragraph}", f"{c.source}:{c.start}-{c.end}" if offsets else ""]
    return " · ".join(p for p in parts if p)


def footer(answer: Answer, labels: bool = True) -> str:
    """`<chat model> · <embeddings> · first token 1.9 s · total 3.1 s` (the parts that are known);
    without `labels`, only the total time: `<chat model> · <embeddings> · 3.1 s`."""
    parts = [answer.models.get("llm", ""), answer.models.get("embeddings", "")]
    t = answer.timings
    if "first_token_s" in t and labels:
        parts.append(f"first token {t['first_token_s']:.1f} s")
    if "total_s" in t:
        parts.append(f"{'total ' if labels else ''}{t['total_s']:.1f} s")
    return " · ".join(p for p in parts if p)


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, ending with "…" when cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
