"""structlog as JSON lines on stderr; run_id and step_id come from contextvars bound by the engine and executor."""

from __future__ import annotations

import logging
import sys

import msgspec
import structlog

from stepwise.reasoning import events as ev

_encoder = msgspec.json.Encoder(enc_hook=repr)
# A frozenset of exact types: `type(e) in` costs a tenth of isinstance against a tuple, on every event of every run.
_RUN_LEVEL = frozenset({ev.RunStarted, ev.PlanReady, ev.StepFailed, ev.AnswerReady, ev.RunFinished, ev.RunFailed})


_level = logging.DEBUG  # structlog's default, until configure_logging says otherwise


class _Stderr:
    """sys.stderr as it is when a line is written, not when logging was configured: whoever swaps it (pytest's
    capture, a daemon) must not leave the logger writing to a closed file."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "info") -> None:
    global _level
    _level = logging.getLevelNamesMapping()[level.upper()]
    # httpx logs every request through the standard library at INFO, in another format: the JSON lines say it all.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # pgserver narrates starting the embedded Postgres at INFO (one line says port=5432 whatever the port): for
    # debugging.
    logging.getLogger("pgserver").setLevel(logging.DEBUG if _level <= logging.DEBUG else logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=lambda obj, **_: _encoder.encode(obj).decode()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_level),
        # PrintLoggerFactory annotates `file` as TextIO but only writes and flushes it, which _Stderr does.
        logger_factory=structlog.PrintLoggerFactory(_Stderr()),  # pyright: ignore[reportArgumentType]
        cache_logger_on_first_use=True,
    )


class LogSink:
    """Logs run-level events at info and step-level events at debug (filtered out cheaply by default)."""

    def __init__(self) -> None:
        self._log = structlog.get_logger("stepwise.events")
        # Decided once: step events are the hot path, and building their fields only to drop them costs per step.
        self._debug = _level <= logging.DEBUG

    def emit(self, event: ev.AnyEvent) -> None:
        run_level = type(event) in _RUN_LEVEL
        if not run_level and not self._debug:
            return
        fields = {f: getattr(event, f) for f in event.__struct_fields__ if f not in ("run_id", "at", "plan")}
        name = type(event).__struct_config__.tag
        if isinstance(event, ev.PlanReady):
            fields["steps"] = len(event.plan.steps)
        (self._log.info if run_level else self._log.debug)(name, **fields)
