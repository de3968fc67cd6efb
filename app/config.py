"""The configuration file (STEPWISE_CONFIG): the server's tunable switches in one TOML file, the format
`stepwise optimize` writes and the server and `stepwise eval` read. Every key is optional; a key left out keeps the
setting's default (or its environment variable's value). An environment variable that sets the same switch
(STEPWISE_PLAN_SAMPLES, STEPWISE_VERIFIERS, …) wins over the file, so one run can still be changed from outside.

    [planner]
    kind = "program"         # program: programs sampled and voted | json: one greedy plan under the plan's schema
    samples = 5              # programs sampled per plan, voting (self-consistency k); 1 is one greedy program
    more = 0                 # programs sampled once more when no value has a majority of the first (0: never)
    worked = true            # with no majority on a word problem, a solution worked out in words votes too
    worked_samples = 0       # more such solutions beside it, sampled, each one more vote (0: the greedy one alone)
    examples = 3             # worked examples shown with each question (the closest ones in the bank)
    temperature = 0.7        # the samples' temperature (a single sample is always greedy)
    bank = "examples.toml"   # a bank of worked examples ([[example]] question, program, calls) replacing the
                             # built-in one; a relative path is read next to this file

    [verifiers]
    model = ["self_consistency"]   # model-based verifiers added to the deterministic ones: self_consistency, llm_judge

    [composer]
    mode = "auto"            # auto: a number the tools computed is the answer as it is | always: the composer writes it

    [experts]                # names from the expert registry (STEPWISE_EXPERTS)
    planner = "general"      # writes the plans
    executor = "general"     # the default expert: answers the plans' expert steps (`ask`, reading) no other names
    composer = "general"     # writes the answers
    max_tokens = 128         # decoding limit of every expert's steps (replaces each expert's own max_tokens)

Decoding errors name the file and the field (`$.planner.samples`), as the expert registry's do."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

if TYPE_CHECKING:  # the bank loads rank_bm25 (numpy): only when a bank is read, not whenever settings are
    from stepwise.reasoning.examples import Example, ExampleBank

ModelVerifier = Literal["self_consistency", "llm_judge"]
Positive = Annotated[int, msgspec.Meta(ge=1)]


class ConfigError(ValueError):
    """The configuration file or an example bank it names is unreadable or breaks a rule; the message names the file
    and the field."""


class PlannerConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    kind: Literal["program", "json"] | None = None
    samples: Positive | None = None
    more: Annotated[int, msgspec.Meta(ge=0)] | None = None
    worked: bool | None = None
    worked_samples: Annotated[int, msgspec.Meta(ge=0)] | None = None
    examples: Annotated[int, msgspec.Meta(ge=0, le=20)] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0.0, le=2.0)] | None = None
    bank: str | None = None


class VerifiersConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    model: list[ModelVerifier] | None = None


class ComposerConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    mode: Literal["auto", "always"] | None = None


class ExpertsConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    planner: str | None = None
    executor: str | None = None
    composer: str | None = None
    cascade: str | None = None
    max_tokens: Positive | None = None


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    planner: PlannerConfig = msgspec.field(default_factory=PlannerConfig)
    verifiers: VerifiersConfig = msgspec.field(default_factory=VerifiersConfig)
    composer: ComposerConfig = msgspec.field(default_factory=ComposerConfig)
    experts: ExpertsConfig = msgspec.field(default_factory=ExpertsConfig)

    def settings(self, base: Path) -> dict[str, Any]:
        """The Settings fields this file sets (relative paths resolved against `base`, the file's folder)."""
        p, e = self.planner, self.experts
        values = {
            "planner": p.kind, "plan_samples": p.samples, "plan_more": p.more, "plan_worked": p.worked,
            "plan_worked_samples": p.worked_samples, "plan_examples": p.examples,
            "plan_temperature": p.temperature, "example_bank": (base / p.bank) if p.bank else None,
            "verifiers": tuple(self.verifiers.model) if self.verifiers.model is not None else None,
            "compose": self.composer.mode, "planner_expert": e.planner, "executor_expert": e.executor,
            "composer_expert": e.composer, "cascade_expert": e.cascade, "expert_max_tokens": e.max_tokens,
        }
        return {k: v for k, v in values.items() if v is not None}


def load_config(path: Path) -> Config:
    try:
        return msgspec.convert(tomllib.loads(path.read_text()), Config)
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def config_settings(path: Path) -> dict[str, Any]:
    """The Settings fields a configuration file sets."""
    return load_config(path).settings(path.resolve().parent)


def load_bank(path: Path) -> ExampleBank:
    """A bank of worked examples in examples.toml's format: `[[example]]` tables of question, program, calls."""
    from stepwise.reasoning.examples import Example, ExampleBank

    try:
        raw = tomllib.loads(path.read_text())
        examples = msgspec.convert(raw.get("example", []), list[Example])
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if not examples:
        raise ConfigError(f"{path}: no [[example]] tables")
    return ExampleBank(examples)


def _string(value: str) -> str:
    """A TOML basic string: JSON's escapes are a subset of TOML's, and JSON escapes every control character."""
    return json.dumps(value, ensure_ascii=False)


def dump_config(config: Config, header: str = "") -> str:
    """The file's text: one table per section that sets anything, keys in the documented order."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for section, values in msgspec.to_builtins(config).items():
        if not values:
            continue
        lines += ["", f"[{section}]"]
        for key, value in values.items():
            if isinstance(value, str):
                shown = _string(value)
            elif isinstance(value, list):
                shown = "[" + ", ".join(_string(v) for v in value) + "]"
            elif isinstance(value, bool):
                shown = str(value).lower()
            else:
                shown = repr(value)
            lines.append(f"{key} = {shown}")
    return "\n".join(lines).lstrip("\n") + "\n"


def dump_bank(examples: list[Example], header: str = "") -> str:
    """A bank file in examples.toml's format."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for example in examples:
        calls = ", ".join(_string(c) for c in example.calls)
        lines += ["", "[[example]]", f"question = {_string(example.question)}", f"program = {_string(example.program)}",
                  f"calls = [{calls}]"]
    return "\n".join(lines).lstrip("\n") + "\n"
