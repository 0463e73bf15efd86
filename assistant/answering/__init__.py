"""The answer flow: from a question to a checked, cited `Answer`.

`answer` (the `Answerer`) runs it: a follow-up made standalone (`followup`, or `side_calls`), a question in
parts split (`parts`), a question about the whole document recognised and answered from its outline
(`document`, `whole`), the evidence quote and the prompt's passages picked (`extract`), the model asked
(`prompts`), its claims checked (`assistant/checks/`) and the kept sentences renumbered and cited
(`compose`). `side_calls` holds the short model calls around an answer (condense, translate, split).
"""
