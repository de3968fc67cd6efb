"""The expert registry: a TOML file listing experts (or, with none configured, one embedded default), turned into
Expert objects with live backends. Local experts that name the same model share one in-process llama.cpp server.

    default = "general"              # plans, composes, and serves targets nobody else does
    [[experts]]
    name = "general"
    backend = "local"                # local | sglang | sglang-openai | openai
    model = "qwen"                   # local: qwen | smollm2 | a .gguf path; remote: the model name to send
    skills = ["facts", "math"]
    description = "answers short factual questions"
    max_concurrency = 2
    timeout_s = 300
    price_in = 0.0                   # per million input tokens
    price_out = 0.0                  # per million output tokens
"""

from __future__ import annotations

import asyncio
import os
import tomllib
from pathlib import Path
from typing import Literal

import msgspec

from stepwise.app.modelfiles import model_path
from stepwise.app.settings import Settings
from stepwise.reasoning.backends.local import EmbeddedLlama
from stepwise.reasoning.backends.openai_compat import OpenAICompatBackend
from stepwise.reasoning.backends.sglang import SGLangBackend, SGLangOpenAIBackend
from stepwise.reasoning.types import Expert

BackendKind = Literal["local", "sglang", "sglang-openai", "openai"]


NO_CASCADE = "none"
"""The cascade switch's value for no cascade (`experts.cascade`, STEPWISE_CASCADE), overriding a registry's own."""


class RegistryError(ValueError):
    """The registry file is unreadable or breaks a rule; the message names the file and the field."""


class ExpertSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    backend: BackendKind
    model: str = "qwen"
    url: str | None = None
    skills: list[str] = []
    description: str = ""
    max_concurrency: int = msgspec.field(default=4)
    timeout_s: float = 300.0
    price_in: float = 0.0
    price_out: float = 0.0
    max_tokens: int = 128
    api_key_env: str | None = None  # openai: the environment variable holding the API key
    template: str = "chatml"  # sglang (native /generate takes text): how messages become a prompt
    constraint_mode: Literal["json_schema", "regex"] = "json_schema"  # sglang: send schemas as regexes instead
    # Only for `stepwise experts launch` on GPU hosts: where the weights are and how to serve them at `url`.
    model_path: str | None = None
    workers: int = 1  # more than one: workers on the next ports, sglang_router at `url` in front
    tp_size: int = 1
    tool_call_parser: str | None = None


class Registry(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    experts: list[ExpertSpec]
    default: str | None = None
    planner: str | None = None
    composer: str | None = None
    cascade: str | None = None
    """A cheaper expert that answers each expert step first; the step's own expert answers only when a verifier
    rejects that answer or it finds nothing in the documents (FrugalGPT's cascade)."""

    @property
    def default_name(self) -> str:
        return self.default or self.experts[0].name


def load_registry(path: Path) -> Registry:
    try:
        raw = tomllib.loads(path.read_text())
        registry = msgspec.convert(raw, Registry)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RegistryError(f"{path}: {exc}") from exc
    except msgspec.ValidationError as exc:
        raise RegistryError(f"{path}: {exc}") from exc
    check_registry(registry, str(path))
    return registry


def check_registry(registry: Registry, where: str) -> None:
    names = [e.name for e in registry.experts]
    if not names:
        raise RegistryError(f"{where}: no experts")
    if len(set(names)) != len(names):
        raise RegistryError(f"{where}: duplicate expert names in {names}")
    for field in ("default", "planner", "composer", "cascade"):
        value = getattr(registry, field)
        if value is not None and value not in names:
            raise RegistryError(f"{where}: `{field}` = {value!r} is not an expert (experts: {', '.join(names)})")
    for spec in registry.experts:
        if spec.backend == "local" and spec.url:
            raise RegistryError(f"{where}: expert {spec.name!r}: a local expert has no `url`")
        if spec.backend != "local" and not spec.url:
            raise RegistryError(f"{where}: expert {spec.name!r}: backend {spec.backend!r} needs a `url`")
        if spec.max_concurrency < 1:
            raise RegistryError(f"{where}: expert {spec.name!r}: `max_concurrency` must be at least 1")
        if spec.model_path and spec.backend not in ("sglang", "sglang-openai"):
            raise RegistryError(f"{where}: expert {spec.name!r}: `model_path` is for SGLang experts that `stepwise "
                                f"experts launch` starts")


def default_registry(settings: Settings) -> Registry:
    """The embedded default: the configured local model does everything."""
    return Registry(experts=[ExpertSpec(
        name="general", backend="local", model=settings.model, skills=["facts", "words"],
        description="answers a short factual question (a name, a number, a date) in words",
        max_concurrency=settings.parallel,
    )])


def registry_for(settings: Settings) -> Registry:
    """The registry, with the roles and decoding limit the configuration file (STEPWISE_CONFIG) sets."""
    registry = load_registry(settings.experts_file) if settings.experts_file else default_registry(settings)
    named = {"default": settings.executor_expert, "planner": settings.planner_expert,
             "composer": settings.composer_expert, "cascade": settings.cascade_expert}
    roles: dict = {k: v for k, v in named.items() if v is not None}
    if roles.get("cascade") == NO_CASCADE:
        roles["cascade"] = None
    if settings.expert_max_tokens is not None:
        roles["experts"] = [msgspec.structs.replace(e, max_tokens=settings.expert_max_tokens) for e in registry.experts]
    if roles:
        registry = msgspec.structs.replace(registry, **roles)
        where = f"{settings.config_file or 'the configuration'} with {settings.experts_file or 'the default registry'}"
        check_registry(registry, where)
    check_slots(settings, registry)
    return registry


def sample_limit(settings: Settings, registry: Registry, expert: str | None = None) -> int | None:
    """The most completions one call to `expert` (None: to any expert) may ask for: the embedded model's slots
    (STEPWISE_PARALLEL) when it is local, as llama.cpp refuses a request for more completions than it has slots; None
    when it is remote."""
    specs = [e for e in registry.experts if expert is None or e.name == expert]
    return settings.parallel if any(e.backend == "local" for e in specs) else None


def check_slots(settings: Settings, registry: Registry) -> None:
    """Sample counts the embedded model can serve, refused at start rather than as a 400 at every run's first call:
    the planner's for the plan's samples, any expert's for function calls (a chat request may name any)."""
    planner = registry.planner or registry.default_name
    for name, var, value, expert in (("plan_samples", "STEPWISE_PLAN_SAMPLES", settings.plan_samples, planner),
                                     ("plan_more", "STEPWISE_PLAN_MORE", settings.plan_more, planner),
                                     ("plan_worked_samples", "STEPWISE_PLAN_WORKED_SAMPLES",
                                      settings.plan_worked_samples, planner),
                                     ("call_samples", "STEPWISE_CALL_SAMPLES", settings.call_samples, None)):
        limit = sample_limit(settings, registry, expert)
        if limit is not None and value > limit:
            raise RegistryError(f"{name} ({var} or the configuration file) = {value} asks one call for more "
                                f"completions than the embedded model has slots (STEPWISE_PARALLEL = {limit}): "
                                f"lower it or raise STEPWISE_PARALLEL")


class Fleet(msgspec.Struct):
    """The built experts and the in-process model servers they use (closed together)."""

    experts: dict[str, Expert]
    llamas: list[EmbeddedLlama]

    async def aclose(self) -> None:
        for expert in self.experts.values():
            await expert.backend.aclose()
        for llama in self.llamas:
            llama.close()


async def build_fleet(registry: Registry, settings: Settings) -> Fleet:
    llamas: dict[Path, EmbeddedLlama] = {}
    experts: dict[str, Expert] = {}
    for spec in registry.experts:
        if spec.backend == "local":
            path = await asyncio.to_thread(model_path, spec.model, settings.cache_dir)
            if path not in llamas:
                llamas[path] = await asyncio.to_thread(
                    EmbeddedLlama, str(path), threads=settings.threads, context=settings.context,
                    parallel=settings.parallel,
                )
            backend = llamas[path].new_backend()
        elif spec.url is None:  # check_registry refuses this first; here it names what the remote kinds need
            raise RegistryError(f"expert {spec.name!r}: backend {spec.backend!r} needs a `url`")
        elif spec.backend == "sglang":
            regex_of = None
            if spec.constraint_mode == "regex":
                from stepwise.reasoning.constraints import as_regex

                regex_of = as_regex
            backend = SGLangBackend(spec.url, spec.model, template=spec.template, regex_of=regex_of)
        elif spec.backend == "sglang-openai":
            backend = SGLangOpenAIBackend(spec.url, spec.model)
        else:
            key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
            if spec.api_key_env and not key:
                raise RegistryError(f"expert {spec.name!r}: the environment variable {spec.api_key_env} is not set")
            backend = OpenAICompatBackend(spec.url, spec.model, api_key=key)
        experts[spec.name] = Expert(
            name=spec.name, backend=backend, skills=spec.skills, description=spec.description, kind=spec.backend,
            max_concurrency=spec.max_concurrency, timeout_s=spec.timeout_s, price_in=spec.price_in,
            price_out=spec.price_out, max_tokens=spec.max_tokens,
        )
    return Fleet(experts=experts, llamas=list(llamas.values()))
