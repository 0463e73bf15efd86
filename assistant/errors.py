"""Errors a user can act on: each message says what to do next.

Core code raises these and never prints; each interface turns them into its own medium
(the CLI into a message and an exit code).
"""


class AssistantError(Exception):
    """Base class: anything the user can fix by following the message."""

    exit_code = 1


class ConfigurationError(AssistantError):
    """A setting names something that cannot be used (unknown backend, missing package, ...)."""

    exit_code = 2


class CorpusError(AssistantError):
    """The corpus directory is missing, empty, or holds nothing that can be indexed."""

    exit_code = 3


class IndexNotFoundError(AssistantError):
    """There is no index yet where the settings point."""

    exit_code = 4


class IndexMismatchError(AssistantError):
    """The index was built with another embedding model (or an incompatible version)."""

    exit_code = 5


class StoreUnavailableError(AssistantError):
    """The Chroma server cannot be reached; `retry_after`: seconds until the next attempt to connect."""

    exit_code = 6

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class IndexCorruptError(AssistantError):
    """The index directory holds something Chroma cannot read (`assistant index --rebuild` fixes it)."""

    exit_code = 9


class IndexBusyError(AssistantError):
    """Another `assistant index` run holds the index directory's lock."""

    exit_code = 10


class IndexNotWritableError(AssistantError):
    """The index directory cannot be written (read-only, no permission, disk full)."""

    exit_code = 11


class ModelTimeoutError(AssistantError):
    """The chat model did not finish within the configured timeout."""

    exit_code = 7


class ModelUnavailableError(AssistantError):
    """The chat model cannot be loaded or its server cannot be reached."""

    exit_code = 8


class ModelCrashedError(ModelUnavailableError):
    """The chat model's process died during a call and is being started again; `retry_after`: seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InputError(AssistantError):
    """The question (or another input) cannot be used as given."""

    exit_code = 2
