"""Logging for Python users: concise lines from the "finetuner" logger unless logging is configured already."""

from __future__ import annotations

import logging
import sys

_HANDLER_NAME = "finetuner-default"


def configure_logging(verbose: bool = True) -> None:
    """Show the "finetuner" logger's info lines (one per epoch, the metrics before and after) on stderr, or only
    its warnings with ``verbose=False``, when nobody has configured logging: neither a handler on the root logger
    nor one on "finetuner" (other than this function's). A configured application is left alone (and the handler
    added by an earlier call is removed, so no line shows twice).

    Example:
        >>> configure_logging(verbose=False)  # doctest: +SKIP
    """
    logger = logging.getLogger("finetuner")
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
