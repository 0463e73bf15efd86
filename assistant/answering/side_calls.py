"""Helper calls: the short model calls around an answer, on a chat-model context of their own.

`SideCalls` condenses a follow-up into a standalone question, translates a question for search and
renders an English claim in its passage's Chinese (so it can be checked word by word). With the
local model they run on a second llama.cpp context over the same weights, so they never evict the
answer prompt's cached start. A helper call that fails costs only its improvement: it returns ""
and the answer goes on. The prompts are `prompts`'; when to call a helper is `answer`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable

from assistant.answering import prompts
from assistant.models.llama import LlamaCppChat
from assistant.models.llm import explain_error

log = logging.getLogger(__name__)


class SideCalls:
    """The helper calls of one chat model (`model`: by default the same model on a context of its own)."""

    def __init__(self, llm: BaseChatModel, model: BaseChatModel | None = None) -> None:
        self.model = model or own_context(llm)
        parse = StrOutputParser()
        condense = chat_prompt(prompts.CONDENSE_SYSTEM, prompts.CONDENSE_USER)
        self._condense = condense | self.model.bind(max_tokens=80) | parse
        self._translate = chat_prompt(prompts.TRANSLATE_SYSTEM, "{question}") | self.model.bind(max_tokens=80) | parse
        self._split = chat_prompt(prompts.SPLIT_SYSTEM, prompts.SPLIT_USER) | self.model.bind(max_tokens=80) | parse
        to_chinese = chat_prompt(prompts.CLAIM_TO_CHINESE_SYSTEM, prompts.CLAIM_TO_CHINESE_USER)
        self._to_chinese = to_chinese | self.model.bind(max_tokens=120) | parse

    def condense(self, history: Sequence[str], question: str) -> str:
        """The follow-up `question` rewritten to stand alone, from the last turns of `history` ("" on failure)."""
        return one_line(self._quietly(self._condense, {"history": "\n".join(history[-4:]), "question": question}))

    def split(self, question: str) -> str:
        """`question` written out as standalone questions, one a line ("" on failure)."""
        return self._quietly(self._split, {"question": question})

    def translate(self, question: str) -> str:
        """`question` in the corpus's language, for search ("" on failure)."""
        return one_line(self._quietly(self._translate, {"question": question}))

    def to_chinese(self, claim: str, passage: str) -> str:
        """An English claim in the passage's Chinese wording (the claim itself on failure)."""
        return one_line(self._quietly(self._to_chinese, {"claim": claim, "passage": passage})) or claim

    def warm(self) -> None:
        """Load the helper context now, not at the first English question."""
        self._translate.invoke({"question": "?"})

    def _quietly(self, chain: Runnable[dict[str, str], str], inputs: dict[str, str]) -> str:
        try:
            return chain.invoke(inputs)
        except Exception as exc:  # any backend's failure: the answer goes on without this step
            log.warning("a helper model call failed, going on without it: %s", explain_error(exc) or exc)
            return ""


def own_context(llm: BaseChatModel) -> BaseChatModel:
    """The same local model on a llama.cpp context of its own (its weights shared), so a helper call's
    prompt does not evict the answer prompt's cached start; any other chat model as it is."""
    return llm.model_copy(update={"instance": llm.instance + 1}) if isinstance(llm, LlamaCppChat) else llm


def chat_prompt(system: str, user: str) -> ChatPromptTemplate:
    return ChatPromptTemplate.from_messages([("system", system), ("human", user)])


def one_line(text: str) -> str:
    """The first non-empty line of a model's reply, without quotes around it."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0].strip('"“”「」 ') if lines else ""
