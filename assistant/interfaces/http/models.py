"""The HTTP API's request and response bodies, and how a request that does not fit them is described.

Pydantic models for the requests of `/api/ask`, `/api/feedback` and `/v1/chat/completions` (strict where the API
is ours, lenient where OpenAI clients send extras), the checks shared with every interface (`checks/inputs`), and the
one-line messages for bodies that are not JSON, not UTF-8 or have fields of the wrong type. The answer
`/api/ask` returns is `types.Answer` itself (the one contract, as `ask --json` prints it). Routes are `api`'s.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

from assistant.checks.inputs import MAX_HISTORY_TURNS, MAX_QUESTION_CHARS, check_history, check_question
from assistant.types import Answer

MODEL_ID = "assistant"  # the one model /v1/models lists
NOT_JSON = 'the body is not valid JSON: send an object such as {"question": "…"} as application/json'
NOT_UTF8 = 'the body could not be read: send UTF-8 JSON, e.g. {"question": "…"}, as application/json'
_PLAINER = {"string_unicode": "not valid text (it holds an unpaired surrogate escape such as \\ud800): send UTF-8 text"}


class AskRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, examples=["Step-3 每次推理激活多少参数？"])
    history: list[str] = Field(
        default=[], max_length=MAX_HISTORY_TURNS, description="earlier user questions, oldest first"
    )
    fast: bool = Field(default=False, description="a cited quote only, no model call (tens of ms warm)")


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # not strict: `answer` is the contract's dataclass, read from a dict

    answer: Answer = Field(
        description="the answer rated, exactly as /api/ask (or the `answer` event of /api/ask/stream) returned it: "
        "its `answer_id` makes a 👍 a candidate gold answer; without it, or with its content changed, the rating "
        "is kept unverified, for a person to label"
    )
    rating: StrictStr = Field(pattern="^(up|down)$", description="up (👍) or down (👎)")
    comment: StrictStr = Field(default="", max_length=2000, description="what was wrong or right, in the user's words")
    history: list[Annotated[StrictStr, Field(max_length=MAX_QUESTION_CHARS)]] = Field(
        default=[], max_length=MAX_HISTORY_TURNS, description="the user's questions before it, as sent to /api/ask"
    )

    @field_validator("answer", mode="before")
    @classmethod
    def _valid_text(cls, value: Any) -> Any:
        if where := _not_unicode(value, "answer"):
            raise ValueError(f"{where} is not valid text (it holds an unpaired surrogate such as \\ud800): send UTF-8")
        return value


def _not_unicode(value: Any, where: str) -> str:
    """Where in the JSON `value` (a path such as "answer.citations.0.quote") the first text is that cannot be
    written as UTF-8, or ""."""
    stack = [(value, where)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return where
        elif isinstance(value, dict):
            stack += [(k, where) for k in value] + [(v, f"{where}.{k}") for k, v in value.items()]
        elif isinstance(value, list):
            stack += [(v, f"{where}.{i}") for i, v in enumerate(value)]
    return ""


class ErrorOut(BaseModel):
    error: str = Field(description="what went wrong and what to do next")
    detail: list[dict[str, Any]] | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _text_or_parts(cls, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(p, dict) for p in value):
            return value
        raise ValueError('send text, or a list of content parts such as {"type": "text", "text": "…"}')

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: keep the text ones
            return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # OpenAI clients send temperature, stream_options, ...

    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None  # {"include_usage": true}: a last chunk with the usage
    max_tokens: int | None = Field(default=None, ge=1, description="caps the answer (never above the server's cap)")
    max_completion_tokens: int | None = Field(default=None, ge=1, description="the newer name of max_tokens")
    temperature: float | None = Field(default=None, description="0 or absent: answers are deterministic")

    def limit(self) -> int | None:
        """The token cap the client asked for, if any."""
        return self.max_completion_tokens or self.max_tokens

    fast: bool = Field(default=False, description="an extension: a cited quote only, no generation")


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def asked(body: AskRequest, max_chars: int) -> tuple[str, list[str]]:
    """The cleaned question and history of an /api request (`InputError`, i.e. 422, when unusable)."""
    return check_question(body.question, max_chars), check_history(body.history)


def conversation(messages: list[ChatMessage], max_chars: int) -> tuple[str, list[str]]:
    """The last user message (the question) and the earlier ones (the history, oldest first)."""
    turns = [m.text() for m in messages if m.role == "user"]
    if not turns:
        raise ApiError(422, 'messages: send at least one message with role "user": its content is the question')
    return check_question(turns[-1], max_chars), check_history(turns[:-1])


def invalid(errors: list[dict[str, Any]]) -> tuple[int, str, Any]:
    """(status, message, detail) for a body that failed validation; `detail` never echoes the input back."""
    if any(e.get("type") == "json_invalid" for e in errors):
        return 400, NOT_JSON, None
    where = [".".join(str(p) for p in e.get("loc", ())[1:]) or "the request body" for e in errors]
    said = [_PLAINER.get(e.get("type", ""), e.get("msg", "")) for e in errors]
    message = "; ".join(f"{w}: {m}" for w, m in zip(where, said, strict=True)) or "invalid request"
    if "the request body" in where:
        message += " (send a JSON object, with the header Content-Type: application/json)"
    detail = [{k: e[k] for k in ("type", "loc", "msg") if k in e} for e in errors]
    return 422, message, detail
