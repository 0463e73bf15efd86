"""The checks between a draft and the user: what the question asks (`question`, `premise`), what a passage
must not steer (`injection`), the draft's sentences and their markers (`claims`), each scored against its
passages (`verify`), the one answer-or-refuse decision (`decide`), and the answer's text and citations
(`compose`)."""
