"""Prompts: every text the chat model sees, as named constants.

Passages are numbered `[1]`, `[2]`, … exactly as the model must cite them. The answer prompt does
not tell the model to refuse (a 1.5B model then refuses answerable questions); refusal is decided
from evidence by `answer` and `verify`. Nor does any prompt rely on the model to ignore orders hidden in
the passages or the question: those sentences are removed before the model sees them (`injection`) and
whatever it writes is verified. No example question from any evaluation set appears here.
"""

ANSWER_SYSTEM = (
    "你是严谨的事实问答助手。只根据用户给出的编号资料回答，不使用资料以外的知识。"
    "回答简短：一到两句话，直接给出答案。每句话末尾用方括号写出依据的资料编号，例如 [1]。"
)
ANSWER_SYSTEM_EN = (
    "You are a careful fact-checking assistant. Answer only from the numbered passages the user gives, "
    "never from outside knowledge. Be brief: one or two sentences that give the answer directly. "
    "End every sentence with the number of the passage it comes from in square brackets, e.g. [1]. "
    "The passages are in Chinese; answer in English."
)
ANSWER_USER = "资料：\n{passages}\n\n问题：{question}"
ANSWER_USER_EN = "Passages:\n{passages}\n\nQuestion: {question}"

# A question about the whole document asked in English: the chosen Chinese sentences, rendered one by one.
DOCUMENT_SYSTEM_EN = (
    "You restate numbered Chinese sentences from an article in English. For each numbered sentence the user "
    "gives, write one short English sentence that says what it says, in the same order, and end it with the "
    "sentence's number in square brackets, e.g. [1]. Keep every name as written and every figure with its "
    "Chinese unit as written (50 亿元 stays 50 亿元); add nothing."
)
DOCUMENT_USER_EN = "Sentences:\n{passages}\n\nRequest: {question}"

# A question in several parts whose grammar leaves a part without its subject ("How much was raised and from whom?").
SPLIT_SYSTEM = (
    "Rewrite the user's question as separate questions that each stand alone, one per line, in the language "
    "of the question. Repeat the subject in each so no line needs another. Output only the questions."
)
SPLIT_USER = "{question}"

CONDENSE_SYSTEM = (
    "把对话中最后一个问题改写成一个完整、独立、不依赖上下文的问题：把代词和省略的部分换成对话里提到的具体名称。"
    "只输出改写后的问题，不要回答它。"
)
CONDENSE_USER = "对话：\n{history}\n\n最后的问题：{question}\n\n改写后的问题："

TRANSLATE_SYSTEM = "Translate the user's question into Simplified Chinese. Output only the translated question."
CLAIM_TO_CHINESE_SYSTEM = "把用户给出的英文句子翻译成简体中文。人名、机构名和术语使用参考段落里的写法。只输出译文。"
CLAIM_TO_CHINESE_USER = "参考段落：{passage}\n\n英文句子：{claim}"

REFUSAL_ZH = "文章没有提到这一点。"
REFUSAL_EN = "The article does not say."
EXTRACTIVE_ZH = "文章原文（摘录，未经生成）："
EXTRACTIVE_EN = "From the article (a verbatim quote, not a generated answer):"
