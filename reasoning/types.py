"""Data types and protocols shared by the reasoning core, tools and verifiers.

This module imports nothing from the project: tools/ and verifiers/ depend on it, never the reverse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal, Protocol

import msgspec

StepKind = Literal["expert", "tool", "tools"]
Outcome = Literal["pass", "retry", "replan", "fail"]

EXPERT_SYSTEM = "Answer briefly and precisely. Reply with the answer only."
"""How an expert step's question is put; self-consistency asks again the same way."""


class Expect(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What a step's result must be, when the plan says: a number alone (`number`: "8", not "eight" or "8 legs"); a
    number within [min, max]; for text, mentioning `unit`."""

    min: float | None = None
    max: float | None = None
    unit: str | None = None
    number: bool = False


StepId = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
"""A step id: positive, and within the trace tables' `integer` columns (checked when a plan is decoded)."""


class _StepFields(msgspec.Struct, tag_field="kind", forbid_unknown_fields=True):
    """What every step has; each kind narrows `input`. `kind` is the tag: msgspec reads and writes it (the JSON
    is as before, but for `kind` written first) and picks the variant by it."""

    id: StepId
    target: str
    input: Any
    depends_on: list[StepId] = []
    expect: Expect | msgspec.UnsetType = msgspec.UNSET  # UNSET is left out of the JSON: plans without it look as before
    # the program's name for the result (`total = …`), shown to the composer
    name: str | msgspec.UnsetType = msgspec.UNSET


class ToolStep(_StepFields, tag="tool"):
    """A tool call: `target` names the tool, `input` is its arguments."""

    input: dict[str, Any]
    kind: ClassVar[Literal["tool"]] = "tool"


class ExpertStep(_StepFields, tag="expert"):
    """An expert call: `target` names the expert or skill, `input` is the question (text)."""

    input: str
    kind: ClassVar[Literal["expert"]] = "expert"


class ParallelCall(msgspec.Struct, forbid_unknown_fields=True):
    """One call of a parallel-tools step: the tool and its arguments."""

    target: str
    input: dict[str, Any]


class ParallelStep(_StepFields, tag="tools"):
    """Several tool calls at once: `target` is "parallel", `input` the calls; its output is their results in
    order."""

    input: list[ParallelCall]
    kind: ClassVar[Literal["tools"]] = "tools"

    def calls(self, resolved: list[dict[str, Any]] | None = None) -> list[ToolStep]:
        """Its calls, each as a one-call tool step with this step's id: as planned, or as `resolved` (its input with
        references substituted, which is JSON like every resolved input: `[{"target": …, "input": …}, …]`)."""
        if resolved is None:
            return [ToolStep(self.id, call.target, call.input) for call in self.input]
        return [ToolStep(self.id, call["target"], call["input"]) for call in resolved]


Step = ToolStep | ExpertStep | ParallelStep
"""One node of a plan, by its `kind`: a tool call, an expert call, or several tool calls at once."""


class Plan(msgspec.Struct, forbid_unknown_fields=True):
    steps: list[Step]
    # The step whose result answers the question, or the steps when the question asks several things (programs set it)
    answer: StepId | list[StepId] | msgspec.UnsetType = msgspec.UNSET


class FunctionCall(msgspec.Struct, forbid_unknown_fields=True):
    """A call of a caller-defined function, decoded under that function's parameter schema."""

    name: str
    arguments: dict[str, Any]


class Answer(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A run's reply: the composer's text and the ids of the steps it rests on; or, when the caller offered
    functions, the calls of them it asks the caller to make (OpenAI's `tool_calls`)."""

    text: str
    uses: list[int] = []
    tool_calls: list[FunctionCall] = []
    # a direct chat's text, or a function-calling turn's words or calls, stopped at max_tokens (OpenAI's finish_reason
    # "length" for text; with whole calls kept the reply still finishes as "tool_calls", and the trace has the mark)
    cut_off: bool = False
    value: Any = None  # the plan's final value, typed (a number, text, rows), when the plan names its answer step
    ungrounded: str | None = None  # why the composed text is not grounded in the results, if it is not (after a retry)


class Function(msgspec.Struct):
    """A function the caller offers (OpenAI's `tools[].function`): the caller executes the calls, not stepwise."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = {}


class Message(msgspec.Struct):
    role: Literal["system", "user", "assistant"]
    content: str


class JsonSchema(msgspec.Struct, tag="json_schema"):
    """Constrain output to JSON valid under `schema` (compact: no whitespace between tokens)."""

    name: str
    schema: dict[str, Any]


class Regex(msgspec.Struct, tag="regex"):
    pattern: str


class Grammar(msgspec.Struct, tag="grammar"):
    """A grammar in the backend's own dialect (EBNF for SGLang, GBNF/Lark for llama.cpp)."""

    text: str


Constraint = JsonSchema | Regex | Grammar


class Sampling(msgspec.Struct, frozen=True):
    max_tokens: int = 256
    temperature: float = 0.0
    stop: tuple[str, ...] = ()
    n: int = 1  # completions of one prompt; servers that share the prompt's cache between them make extra ones cheap


class Usage(msgspec.Struct):
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0


class ToolCall(msgspec.Struct):
    """A function call a model asked for (OpenAI's `tool_calls`); `arguments` is the JSON text it wrote."""

    id: str
    name: str
    arguments: str


class Completion(msgspec.Struct):
    text: str
    usage: Usage
    latency_ms: float
    model: str
    finish_reason: str | None = None
    ttft_ms: float | None = None
    tool_calls: list[ToolCall] = []
    alternatives: list[str] = []  # with Sampling.n > 1: the texts of the other completions (servers may return fewer)


class Verdict(msgspec.Struct):
    verifier: str
    outcome: Outcome
    reason: str = ""


class ModelBackend(Protocol):
    """Anything that turns messages (plus an optional output constraint) into a completion. Optional:
    `notes() -> list[str]`, what the server's own flags mean for stepwise (shown by `stepwise experts`)."""

    # Read-only members (properties here, plain attributes in an implementation): the protocol never assigns them.
    @property
    def provider(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def base_url(self) -> str:
        """Where it is served, shown by GET /v1/experts and `stepwise experts`."""
        ...

    async def generate(self, messages: list[Message], *, constraint: Constraint | None = None,
                       sampling: Sampling = Sampling(), deadline: float | None = None,
                       on_text: Callable[[str], None] | None = None) -> Completion:
        """`on_text` receives the text as it is generated (in one piece, at the end, from servers that do not
        stream)."""
        ...

    async def health(self) -> bool:
        """Whether it answers now (GET /v1/experts, `stepwise experts`)."""
        ...

    async def aclose(self) -> None:
        """Release its connections; the fleet calls it once at shutdown."""
        ...


class Unfixable(ValueError):
    """A tool's refusal that no rewrite of its arguments can fix (a missing privilege, a server going away): the
    step is not repaired in place; the failure goes straight to the plan's repair."""


# What an expert reading passages says when they do not hold the answer (the reader's prompt asks for exactly this).
NOT_IN_DOCUMENTS = "not in the documents"


MAX_TOOL_RESULT_BYTES = 1_048_576
"""The default bound on one tool call's result, in bytes of its JSON (what the trace stores): the engine refuses a
larger result (the call is recorded with an error and no result, and the step fails), so no tool's output lives whole
in a run's events, its stream, its trace or a later step. STEPWISE_MAX_TOOL_RESULT_BYTES sets it (app/settings.py)."""


def bounded(result: Any, limit: int = MAX_TOOL_RESULT_BYTES) -> Any:
    """`result` if its JSON is within `limit` bytes; otherwise a ValueError giving both sizes. A refusal, not a cut:
    a JSON value cut short would be wrong, not shorter. The engine (a step's tool call) and the program planner (a
    sample's value computed for the vote) both hold tool results to it."""
    size = len(msgspec.json.encode(result))
    if size > limit:
        raise ValueError(f"its result is {size:,} bytes of JSON, over the limit of {limit:,} "
                         f"bytes a tool result may take (not kept)")
    return result


class Tool(Protocol):
    """A function a step may call; its arguments are decoded under `args_type`'s JSON schema."""

    # Read-only members: `args_type = MyArgs` in an implementation is a type[MyArgs], which a writable
    # `type[msgspec.Struct]` member would refuse.
    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def args_type(self) -> type[msgspec.Struct]: ...

    @property
    def deterministic(self) -> bool: ...

    # Optional: `side_effect_free = True` says running a step again is harmless though its result may differ (the
    # program planner then runs sampled programs' steps to vote on their values).
    # Optional: `show(args) -> str | None` says how a call is shown to the composer and on a terminal (the calculator:
    # its expression alone); without it, or when it returns None, a call is shown as its arguments' JSON.

    async def run(self, args: Any) -> Any: ...


def tool_grammar(tool: Tool | None) -> str | None:
    """The tool's optional `grammar`: llguidance Lark rules whose rule `<name>_arg` derives its first argument (the
    sql tool's SELECTs over its database's tables); programs and in-step repairs decode that argument under it."""
    return getattr(tool, "grammar", None) or None


def shown_call(tool: Tool | None, args: Any) -> str | None:
    """How a call of `tool` with `args` (a step's input, references substituted or not) is shown, if the tool says:
    the core knows no tool by name, so each tool's own `show` decides."""
    show = getattr(tool, "show", None)
    return show(args) if show is not None else None


class Ask(Protocol):
    """Model calls a verifier makes inside the run (traced and budgeted like any other, purpose "verify").
    `target` defaults to the step's own target for expert steps, else the default expert."""

    async def __call__(self, messages: list[Message], *, target: str | None = None,
                       constraint: Constraint | None = None,
                       samples: int = 1, temperature: float = 0.0, max_tokens: int = 64) -> list[str]: ...


class Verifier(Protocol):
    """A check of one step's output; `kinds` names the step kinds it applies to."""

    @property
    def name(self) -> str: ...

    @property
    def kinds(self) -> frozenset[str]: ...

    async def verify(self, step: Step, resolved_input: Any, output: Any, ask: Ask) -> Verdict: ...


class Policy(Protocol):
    """Turns a step's verdicts into an action (per step kind); bounds retries per step and replans per run."""

    @property
    def max_replans(self) -> int: ...

    def attempts(self, kind: StepKind) -> int: ...

    def decide(self, verdicts: list[Verdict], attempt: int, kind: StepKind) -> Outcome: ...


class Expert(msgspec.Struct, kw_only=True):
    """A named model with skills; the planner sees name, description and skills, and may target either."""

    name: str
    backend: ModelBackend  # never encoded or decoded, so msgspec never has to make a type of the protocol
    skills: list[str] = []
    description: str = ""
    kind: str = "local"  # the registry's backend kind, recorded with each call
    max_concurrency: int = 4
    timeout_s: float = 300.0
    price_in: float = 0.0  # per million input tokens
    price_out: float = 0.0  # per million output tokens
    max_tokens: int = 128

    def cost(self, usage: Usage) -> float:
        return (usage.input_tokens * self.price_in + usage.output_tokens * self.price_out) / 1_000_000
