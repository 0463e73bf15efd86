"""The ways people reach an `Assistant`: the command line (`cli`), the HTTP API (`http`), the
Gradio chat page (`web`) and the Slack bot (`slack`). Each receives a built `Assistant`, renders
the answer contract in its own medium and maps `AssistantError`s to its own form of error.
"""
