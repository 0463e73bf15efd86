"""The `assistant` command: `main` parses and dispatches; `evaluate` and `tune` hold the eval,
gate and calibration commands."""

from assistant.interfaces.cli.main import main

__all__ = ["main"]
