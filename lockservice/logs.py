"""structlog, configured once: JSON lines (a console renderer on a terminal), ISO UTC times,
contextvars, structured tracebacks, and stdlib logging routed through the same pipeline.

Tracebacks never show the frames' local variables (structlog's and rich's default): they hold
what the request carried (keys, values, page tokens, credentials), which logs never do."""

from __future__ import annotations

import logging
import sys
from typing import Any

__all__ = ["LOG_LEVELS", "configure_logging"]

LOG_LEVELS = ("debug", "info", "warning", "error")


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    """`fmt` is "json", "console", or "auto" (console when stderr is a terminal)."""
    # Imported here: the client verbs import this module (through the settings their parser
    # shares with `serve`) and log nothing; structlog (and rich, which it loads) cost them 60 ms.
    import structlog

    numeric = logging.getLevelNamesMapping()[level.upper()]
    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if console:
        # Python's own traceback: rich's (structlog's default when rich is installed) shows locals.
        renderer = structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    else:
        shared.append(
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        )
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries that log through the standard library (grpc, asyncio) land in the same stream.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
