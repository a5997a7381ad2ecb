"""Logging for Python users: concise lines from the "finetuner" logger unless logging is configured already."""

from __future__ import annotations

import logging
import os
import sys

_HANDLER_NAME = "finetuner-default"
_PROGRESS = {"shown": True}  # progress bars: off with configure_logging(verbose=False)


def show_progress() -> bool:
    """Whether finetuner draws progress bars (training epochs, encoding passes): not after
    ``configure_logging(verbose=False)`` (``fit(..., verbose=False)``), and never on ranks other than 0.

    Example:
        >>> configure_logging(verbose=False); show_progress()
        False
    """
    return _PROGRESS["shown"] and int(os.environ.get("RANK", "0") or 0) == 0


class MainProcessFilter(logging.Filter):
    """Under torchrun, only rank 0 tells the story: other ranks' info lines are dropped, and their warnings and
    errors say which rank they come from. ``RANK`` is torchrun's variable; without it every line passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        rank = int(os.environ.get("RANK", "0") or 0)
        if rank == 0:
            return True
        if record.levelno < logging.WARNING:
            return False
        record.msg = f"rank {rank}: {record.msg}"
        return True


def log_from_main_process(logger: logging.Logger | None = None) -> None:
    """Put `MainProcessFilter` on the "finetuner" logger (once), whoever configures its handlers.

    Example:
        >>> log_from_main_process()
    """
    logger = logger or logging.getLogger("finetuner")
    if not any(isinstance(existing, MainProcessFilter) for existing in logger.filters):
        logger.addFilter(MainProcessFilter())


def configure_logging(verbose: bool = True) -> None:
    """Show the "finetuner" logger's info lines (one per epoch, the metrics before and after) on stderr, or only
    its warnings with ``verbose=False``, when nobody has configured logging: neither a handler on the root logger
    nor one on "finetuner" (other than this function's). A configured application is left alone (and the handler
    added by an earlier call is removed, so no line shows twice).

    Example:
        >>> configure_logging(verbose=False)  # doctest: +SKIP
    """
    logger = logging.getLogger("finetuner")
    _PROGRESS["shown"] = verbose
    log_from_main_process(logger)
    ours = [handler for handler in logger.handlers if handler.get_name() == _HANDLER_NAME]
    if logging.getLogger().handlers or len(ours) != len(logger.handlers):
        for handler in ours:
            logger.removeHandler(handler)
        return
    if not ours:
        handler = logging.StreamHandler(sys.stderr)
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(logging.Formatter("finetuner: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
