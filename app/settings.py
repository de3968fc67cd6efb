"""Settings, read once from the environment by the entry points and passed explicitly from there on."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

from stepwise.app.config import ConfigError, config_settings
from stepwise.reasoning.types import MAX_TOOL_RESULT_BYTES


def _user_dir(env: Mapping[str, str], xdg: str, fallback: str) -> Path:
    base = env.get(xdg) or str(Path(env.get("HOME") or Path.home()) / fallback)
    return Path(base) / "stepwise"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None = None
    """Postgres to use; None starts the embedded one in `data_dir / "pgdata"`."""
    data_dir: Path
    cache_dir: Path
    model: str = "qwen"
    """'qwen' (default expert), 'smollm2' (fast, weak), or a path to a GGUF file; used when no experts file is set."""
    experts_file: Path | None = None
    """A TOML expert registry; None means one local expert on `model`."""
    stream_plan: bool = False
    """Start each planned step as soon as the planner has written it (STEPWISE_STREAM_PLAN=1); requests may override."""
    verifiers: tuple[str, ...] = ()
    """Model-based verifiers to add to the deterministic ones: self_consistency, llm_judge (STEPWISE_VERIFIERS)."""
    sql_url: str | None = None
    """A Postgres the read-only `sql` tool queries (STEPWISE_SQL_URL); unset, there is no sql tool."""
    sql_allow_privileged_role: bool = False
    """Let the sql tool log in as a superuser or a role that reaches files, programs or other sessions
    (STEPWISE_SQL_ALLOW_PRIVILEGED_ROLE=1): for throwaway local databases only; without it such a role fails the
    start."""
    docs_dir: Path | None = None
    """A folder of .md/.txt files the `docs` tool searches (STEPWISE_DOCS); unset, there is no docs tool."""
    python_tool: bool = False
    """Offer the sandboxed Python tool for program-aided steps (STEPWISE_PYTHON=1)."""
    tool_modules: tuple[str, ...] = ()
    """Python modules whose @tool functions join the built-in tools (STEPWISE_TOOLS, comma-separated)."""
    planner: str = "program"
    """How the planner writes plans (STEPWISE_PLANNER): `program` (a straight-line program under a grammar, several
    samples voting) or `json` (the plan's JSON schema, one greedy plan)."""
    plan_samples: int = 5
    """Programs sampled per plan for the vote (STEPWISE_PLAN_SAMPLES); 1 is one greedy program."""
    plan_more: int = 0
    """Programs sampled once more when no computed value has a majority of the first samples (STEPWISE_PLAN_MORE;
    0: never)."""
    plan_worked: bool = True
    """When no value a word problem's programs computed has a majority, the model also works the problem out in words,
    and its final number votes (STEPWISE_PLAN_WORKED=0 turns this off)."""
    plan_worked_samples: int = 0
    """More solutions worked out in words beside that greedy one, sampled at the planner's temperature at once, each
    number one more vote (STEPWISE_PLAN_WORKED_SAMPLES; 0: the greedy one alone)."""
    plan_examples: int = 3
    """Worked examples shown to the program planner with each question (STEPWISE_CONFIG `planner.examples`)."""
    plan_temperature: float = 0.7
    """The program planner's sampling temperature (STEPWISE_CONFIG `planner.temperature`)."""
    example_bank: Path | None = None
    """A bank of worked examples replacing the built-in one (STEPWISE_CONFIG `planner.bank`)."""
    planner_expert: str | None = None
    """The expert that writes plans, overriding the registry's `planner` (STEPWISE_CONFIG `experts.planner`)."""
    executor_expert: str | None = None
    """The default expert, answering expert steps, overriding the registry's `default` (`experts.executor`)."""
    composer_expert: str | None = None
    """The expert that writes answers, overriding the registry's `composer` (`experts.composer`)."""
    cascade_expert: str | None = None
    """A cheaper expert asked each expert step first, overriding the registry's `cascade`; `none` turns a registry's
    cascade off (STEPWISE_CASCADE, STEPWISE_CONFIG `experts.cascade`)."""
    expert_max_tokens: int | None = None
    """Every expert's decoding limit for its steps, overriding the registry's `max_tokens` (`experts.max_tokens`)."""
    config_file: Path | None = None
    """The configuration file these switches were read from (STEPWISE_CONFIG), if any."""
    compose: str = "auto"
    """Who writes the answer (STEPWISE_COMPOSE): `auto`, the composer model, except that a number the tools computed
    for a question asking for a quantity is the answer as it is; `always`, the composer model every time."""
    threads: int = 2
    context: int = 16384
    parallel: int = 6
    host: str = "127.0.0.1"
    port: int = 8000
    deadline_s: float = 300.0
    log_level: str = "info"
    trace_queue: int = 100_000
    """Trace events held in memory while Postgres is slow or down (STEPWISE_TRACE_QUEUE); past it they wait in files
    under `data_dir / "trace-spill"`, in order (dropped, and counted, only if those cannot be written)."""
    call_samples: int = 1
    """With several function calls allowed (chat `parallel_tool_calls`), replies sampled beside the greedy one; the
    reply with the most calls free of guesses, then the most calls, answers (functions._best; STEPWISE_CALL_SAMPLES;
    1, the default: the greedy reply alone. On BFCL parallel items 50-99, 5 samples: 35 right against 34, at 3x the
    latency, so it is not on by default)."""
    call_recheck: int = 5
    """With several function calls allowed, replies sampled when the greedy reply carries a value the conversation
    does not state (a guess: "AAPL,GOOGL,MSFT" packed into one call for three companies named), or that ran to the
    bound of calls (a loop); `functions._best` picks, as for call_samples (STEPWISE_CALL_RECHECK, at most the
    embedded model's slots; 1 or 0: never). Only such replies pay for it (README, "Function calling")."""
    trace_writer: str = "process"
    """Where the trace is written from (STEPWISE_TRACE_WRITER): `process`, a child process the server starts
    (app.trace_process), so writing it costs the server's event loop almost nothing; `inline`, the server's own
    event loop."""
    api_keys: tuple[str, ...] = ()
    """Keys a client must present (STEPWISE_API_KEYS, comma-separated); empty, the API is open."""
    max_body_bytes: int = 1_048_576
    """Larger request bodies get a 413 (STEPWISE_MAX_BODY_BYTES)."""
    max_tool_result_bytes: int = MAX_TOOL_RESULT_BYTES
    """A tool call's result larger than this, in bytes of its JSON, is refused: recorded as the call's error, with no
    result, and the step fails (STEPWISE_MAX_TOOL_RESULT_BYTES; 1 MiB)."""
    shutdown_grace_s: float = 10.0
    """On SIGTERM, how long runs in progress may go on before they are cancelled (STEPWISE_SHUTDOWN_GRACE_S). Each
    later stage is bounded too (cancelled runs recording it 5 s, replies still being sent 5 s, runs started after the
    drain 5 s, the trace flush 10 s), so a stop takes at most this + 25 s."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> Settings:
        env = os.environ if env is None else env
        config_file = Path(env["STEPWISE_CONFIG"]) if env.get("STEPWISE_CONFIG") else None
        try:
            # the file's switches first: an environment variable setting the same switch wins over it
            values: dict = config_settings(config_file) | {"config_file": config_file} if config_file else {}
        except ConfigError as exc:
            raise SystemExit(f"STEPWISE_CONFIG: {exc}") from exc
        values |= {
            "database_url": env.get("DATABASE_URL") or None,
            "data_dir": Path(env["STEPWISE_DATA_DIR"]) if env.get("STEPWISE_DATA_DIR")
            else _user_dir(env, "XDG_DATA_HOME", ".local/share"),
            "cache_dir": Path(env["STEPWISE_CACHE_DIR"]) if env.get("STEPWISE_CACHE_DIR")
            else _user_dir(env, "XDG_CACHE_HOME", ".cache"),
            "experts_file": Path(env["STEPWISE_EXPERTS"]) if env.get("STEPWISE_EXPERTS") else None,
            "tool_modules": tuple(m.strip() for m in env.get("STEPWISE_TOOLS", "").split(",") if m.strip()),
            "stream_plan": env.get("STEPWISE_STREAM_PLAN", "").lower() in ("1", "true", "yes"),
            "sql_url": env.get("STEPWISE_SQL_URL") or None,
            "sql_allow_privileged_role":
                env.get("STEPWISE_SQL_ALLOW_PRIVILEGED_ROLE", "").lower() in ("1", "true", "yes"),
            "docs_dir": Path(env["STEPWISE_DOCS"]) if env.get("STEPWISE_DOCS") else None,
            "python_tool": env.get("STEPWISE_PYTHON", "").lower() in ("1", "true", "yes"),
            "api_keys": tuple(k.strip() for k in env.get("STEPWISE_API_KEYS", "").split(",") if k.strip()),
        }
        for name, var, kind in (
            ("model", "STEPWISE_MODEL", str), ("threads", "STEPWISE_THREADS", int),
            ("context", "STEPWISE_CONTEXT", int),
            ("parallel", "STEPWISE_PARALLEL", int), ("host", "STEPWISE_HOST", str), ("port", "STEPWISE_PORT", int),
            ("deadline_s", "STEPWISE_DEADLINE_S", float), ("log_level", "STEPWISE_LOG_LEVEL", str),
            ("max_body_bytes", "STEPWISE_MAX_BODY_BYTES", int), ("planner", "STEPWISE_PLANNER", str),
            ("plan_samples", "STEPWISE_PLAN_SAMPLES", int), ("compose", "STEPWISE_COMPOSE", str),
            ("plan_more", "STEPWISE_PLAN_MORE", int), ("shutdown_grace_s", "STEPWISE_SHUTDOWN_GRACE_S", float),
            ("plan_worked_samples", "STEPWISE_PLAN_WORKED_SAMPLES", int),
            ("trace_queue", "STEPWISE_TRACE_QUEUE", int), ("trace_writer", "STEPWISE_TRACE_WRITER", str),
            ("call_samples", "STEPWISE_CALL_SAMPLES", int), ("cascade_expert", "STEPWISE_CASCADE", str),
            ("call_recheck", "STEPWISE_CALL_RECHECK", int),
            ("max_tool_result_bytes", "STEPWISE_MAX_TOOL_RESULT_BYTES", int),
        ):
            if env.get(var):
                try:
                    values[name] = kind(env[var])
                except ValueError as exc:
                    raise SystemExit(f"{var}={env[var]!r} is not a valid {kind.__name__}") from exc
        if values.get("trace_writer", "process") not in ("process", "inline"):
            raise SystemExit(f"STEPWISE_TRACE_WRITER={values['trace_writer']!r}: say `process` or `inline`")
        if env.get("STEPWISE_PLAN_WORKED"):  # only when set: otherwise a configuration file's `worked` holds
            values["plan_worked"] = env["STEPWISE_PLAN_WORKED"].lower() not in ("0", "false", "no")
        if env.get("STEPWISE_VERIFIERS"):
            values["verifiers"] = tuple(v.strip() for v in env["STEPWISE_VERIFIERS"].split(",") if v.strip())
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
