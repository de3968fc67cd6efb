"""The engine: question → plan → validated DAG → executed, verified steps → composed answer.

Every fact of a run is an event sent to the caller's sink; the engine itself keeps no run state."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

import msgspec
import structlog

from stepwise.reasoning import errors, prompts
from stepwise.reasoning.composer import Composer
from stepwise.reasoning.context import Budget, RunContext
from stepwise.reasoning.events import (
    CANCELLED,
    AnswerReady,
    EventSink,
    PlanReady,
    Replanned,
    RunFailed,
    RunFinished,
    RunStarted,
    StepEscalated,
    StepVerified,
    ToolCalled,
)
from stepwise.reasoning.executor import RunStep, run_plan, run_streamed_plan
from stepwise.reasoning.functions import call_functions
from stepwise.reasoning.options import ChatOptions, CheckedRun, RunOptions
from stepwise.reasoning.plan import Dag, check_step, references, validate_plan
from stepwise.reasoning.planner import Planner
from stepwise.reasoning.repair import repair_in_step, repairable
from stepwise.reasoning.repair_decision import Tried, decide_repair
from stepwise.reasoning.router import Router
from stepwise.reasoning.types import (
    MAX_TOOL_RESULT_BYTES,
    NOT_IN_DOCUMENTS,
    Answer,
    Ask,
    Constraint,
    ExpertStep,
    Message,
    ParallelStep,
    Plan,
    Policy,
    Sampling,
    Step,
    Tool,
    ToolStep,
    Unfixable,
    Verdict,
    Verifier,
    bounded,
)


class PlanWriter(Protocol):
    """What the engine asks of a planner (the JSON planner, `Planner`, or the program planner)."""

    async def plan(self, question: str, ctx: RunContext, allowed: tuple[str, ...] | None = None,
                   on_step: Callable[[Step], None] | None = None) -> Plan: ...

    async def replan(self, question: str, ctx: RunContext, allowed: tuple[str, ...], done: list[tuple[Step, Any]],
                     failed: Step, reason: str, *, invalid: bool = False) -> Plan: ...


class Engine:
    def __init__(
        self,
        router: Router,
        tools: Mapping[str, Tool],
        verifiers: Sequence[Verifier],
        *,
        planner: PlanWriter | None = None,
        composer: Composer | None = None,
        policy: Policy,
        max_tool_result_bytes: int = MAX_TOOL_RESULT_BYTES,
        call_samples: int = 1,
        call_recheck: int = 1,
        cascade: str | None = None,
    ) -> None:
        self.router = router
        self.cascade = cascade
        """A cheaper expert asked each expert step first; its planned expert only when that answer is not kept."""
        self.call_samples = call_samples
        """Replies sampled beside the greedy one when several function calls may answer a turn (functions.py)."""
        self.call_recheck = call_recheck
        """Replies sampled after a greedy reply of such a turn that carries a value the conversation does not state."""
        self.tools = tools
        self.policy = policy
        self.max_tool_result_bytes = max_tool_result_bytes
        """A tool call's result over this many bytes of JSON is refused, not kept (types.MAX_TOOL_RESULT_BYTES)."""
        self.planner: PlanWriter = planner or Planner(router, tools)
        self.composer = composer or Composer(router)
        self._verifiers = {kind: [v for v in verifiers if kind in v.kinds] for kind in ("tool", "tools", "expert")}

    async def run(self, question: str, options: RunOptions | CheckedRun, *, sink: EventSink,
                  run_id: uuid.UUID | None = None) -> uuid.UUID:
        """Answer `question` as `options` say (RunOptions; CheckedRun when the caller had `check` run first),
        reporting everything to `sink`. Never raises for a failed run (RunFailed says why); cancellation and internal
        errors are recorded, then propagate."""
        opts = options.options if isinstance(options, CheckedRun) else options
        run_id = run_id or uuid.uuid4()
        async with self._recorded(question, sink, _deadline(opts.deadline_s), run_id, opts.budget) as ctx:
            checked = options if isinstance(options, CheckedRun) else CheckedRun(opts, self.allowed_tools(opts.tools))
            await self._answer(question, ctx, checked)
        return run_id

    async def chat(self, messages: Sequence[Message], options: ChatOptions, *, sink: EventSink,
                   run_id: uuid.UUID | None = None, on_text: Callable[[str], None] | None = None) -> uuid.UUID:
        """One conversation turn without a plan, as `options` say, recorded like any run; text answers are streamed
        to `on_text` as they are generated."""
        run_id = run_id or uuid.uuid4()
        question = next((m.content for m in reversed(messages) if m.role == "user"), "")
        target = options.target or self.router.default
        async with self._recorded(question, sink, _deadline(options.deadline_s), run_id, options.budget) as ctx:
            if options.functions:
                answer = await call_functions(self.router, target, messages, options.functions, ctx,
                                              required=options.require_call,
                                              parallel=options.parallel_calls, max_tokens=options.max_tokens or 512,
                                              samples=self.call_samples, recheck=self.call_recheck)
            else:
                sampling = Sampling(max_tokens=options.max_tokens) if options.max_tokens else None
                completion, _ = await self.router.call(target, list(messages), ctx, purpose="expert", sampling=sampling,
                                                       constraint=options.constraint, on_text=on_text)
                answer = Answer(text=completion.text.strip(), cut_off=completion.finish_reason == "length")
            sink.emit(AnswerReady(run_id=run_id, at=time.time(), answer=answer))
        return run_id

    @contextlib.asynccontextmanager
    async def _recorded(self, question: str, sink: EventSink, deadline_s: float, run_id: uuid.UUID,
                        budget: Budget) -> AsyncIterator[RunContext]:
        """A run's frame: RunStarted, the deadline, and the one event that ends it, whatever happens inside."""
        started = time.perf_counter()
        ctx = RunContext(run_id, sink, asyncio.get_running_loop().time() + deadline_s, budget)
        with structlog.contextvars.bound_contextvars(run_id=str(run_id)):
            sink.emit(RunStarted(run_id=run_id, at=time.time(), question=question, deadline_s=deadline_s))
            try:
                async with asyncio.timeout_at(ctx.deadline):
                    yield ctx
            except TimeoutError:
                self._failed(sink, run_id, started,
                             errors.DeadlineExceeded(f"the run's deadline of {deadline_s:g}s passed"))
            except errors.ReasoningError as exc:
                self._failed(sink, run_id, started, exc)
            except asyncio.CancelledError:
                sink.emit(RunFailed(run_id=run_id, at=time.time(), error_type=CANCELLED, error="the run was cancelled",
                                    latency_ms=_ms(started)))
                raise
            except Exception as exc:
                sink.emit(RunFailed(run_id=run_id, at=time.time(), error_type="internal_error", error=repr(exc),
                                    latency_ms=_ms(started)))
                raise
            else:
                sink.emit(RunFinished(run_id=run_id, at=time.time(), latency_ms=_ms(started)))

    def allowed_tools(self, names: Collection[str] | None) -> tuple[str, ...]:
        """A per-request allowlist, checked: every name must be a known tool (ValueError names the unknown)."""
        if names is None:
            return tuple(self.tools)
        unknown = sorted(set(names) - set(self.tools))
        if unknown:
            raise ValueError(f"unknown tools {unknown} (known: {', '.join(self.tools)})")
        return tuple(n for n in self.tools if n in set(names))

    def check_plan(self, plan: Plan, allowed: tuple[str, ...] | None = None) -> Dag:
        """Validate a plan against the allowed tools and the experts (PlanInvalid names the step and the problem)."""
        tools = self.tools if allowed is None else {n: self.tools[n] for n in allowed}
        return validate_plan(plan, tools, self.router.targets())

    def check(self, options: RunOptions) -> CheckedRun:
        """Check a run's options before it starts: the allowlist (ValueError names an unknown tool) and the caller's
        plan (PlanInvalid names the step and the problem); the run then checks neither again."""
        allowed = self.allowed_tools(options.tools)
        return CheckedRun(options, allowed, None if options.plan is None else self.check_plan(options.plan, allowed))

    async def _answer(self, question: str, ctx: RunContext, checked: CheckedRun) -> None:
        sink, run_id = ctx.sink, ctx.run_id
        plan, allowed, sequential = checked.options.plan, checked.allowed, checked.options.sequential

        async def run_step(step: Step, resolved: Any) -> Any:
            """Run (an expert step on the cascade's cheaper expert first, if there is one), verify, and act on the
            verdicts: retry with the reasons as feedback, or give up on the step."""
            if isinstance(step, ExpertStep) and self.cascade not in (None, step.target):
                kept = await self._cheaper_first(step, resolved, ctx)
                if kept is not None:
                    return kept
            feedback = None
            ask = self._asker(step, ctx)
            for attempt in range(1, self.policy.attempts(step.kind) + 1):
                if isinstance(step, ToolStep):
                    output = await self._call_tool(step, resolved, ctx)
                elif isinstance(step, ParallelStep):
                    output = await self._call_tools(step, resolved, ctx)
                else:
                    output = await self._ask_expert(step, resolved, ctx, feedback)
                verdicts = await self._verified(step, resolved, output, ask, ctx)
                action = self.policy.decide(verdicts, attempt, step.kind)
                if action == "pass":
                    return output
                feedback = _reasons(verdicts)
                if action != "retry":
                    raise errors.StepRejected(step.id, f"{action}: {feedback}", repairable=action == "replan")
            raise AssertionError("unreachable: decide() turns the last retry into a replan")

        planned = plan is None
        if planned and not (checked.options.stream_plan and not sequential):
            plan = await self.planner.plan(question, ctx, allowed)
        dag, outputs = await self._run_repairing(question, plan, allowed, run_step, ctx, sequential=sequential,
                                                 planned=planned, dag=checked.dag)
        answer = await self.composer.compose(question, dag, outputs, ctx, self.tools)
        sink.emit(AnswerReady(run_id=run_id, at=time.time(), answer=answer))

    async def _run_repairing(self, question: str, plan: Plan | None, allowed: tuple[str, ...], run_step: RunStep,
                             ctx: RunContext, *, sequential: bool = False, planned: bool = True,
                             dag: Dag | None = None) -> tuple[Dag, dict[int, Any]]:
        """Run a plan (None: the planner's, streamed; `dag`: the plan, already validated); when it fails in a way a new
        plan can fix (`decide_repair`), ask the planner for one and run it, keeping the results of the steps it leaves
        unchanged. A `planned` plan (the planner's, not the caller's) that breaks a rule of plans naming a step it
        wrote is repaired the same way."""
        done: list[tuple[Step, Any]] = []  # the last plan that ran: its finished steps with their results
        kept: dict[int, Any] = {}
        for replans in itertools.count():
            outputs = dict(kept)
            if plan is None:
                streamed: _StreamedPlan | None = _StreamedPlan(self, question, ctx, allowed)
                written, running = streamed.written, streamed.run(run_step, outputs)
            else:
                streamed, written = None, _first_of_each_id(plan.steps)
                running = self._run_checked(plan, dag, allowed, run_step, ctx, outputs, sequential)
            try:
                return await running, outputs
            except (errors.ToolError, errors.StepRejected, errors.PlanInvalid) as exc:
                if decide_repair(exc, Tried(replans=replans, planned=planned, written=written), self.policy) == "fail":
                    raise
                failure = exc
            invalid = isinstance(failure, errors.PlanInvalid)
            if streamed:  # in the order they finished
                done = [(streamed.admitted[sid], output) for sid, output in outputs.items()]
            elif not invalid:  # in plan order; a plan refused before it ran leaves `done` as it was
                done = [(step, outputs[sid]) for sid, step in written.items() if sid in outputs]
            reason = str(failure) if invalid else failure.reason
            failed_step = failure.step_id
            if failed_step is None:  # not reached: decide_repair replans a broken rule only when it names a step
                raise failure
            ctx.sink.emit(Replanned(run_id=ctx.run_id, at=time.time(), failed_step=failed_step, reason=reason,
                                    replan=replans + 1))
            plan = await self.planner.replan(question, ctx, allowed, done, written[failed_step], reason,
                                             invalid=invalid)
            kept, dag = _unchanged(plan, done), None
        raise AssertionError("unreachable: decide_repair fails once the policy's replans are used")

    async def _run_checked(self, plan: Plan, dag: Dag | None, allowed: tuple[str, ...], run_step: RunStep,
                           ctx: RunContext, outputs: dict[int, Any], sequential: bool) -> Dag:
        """Validate a complete plan (unless `dag` is it, validated) and run it; `outputs` holds the results kept from an
        earlier plan and is filled in place, so what finished is known when the run fails."""
        ctx.sink.emit(PlanReady(run_id=ctx.run_id, at=time.time(), plan=plan))
        if dag is None:
            dag = self.check_plan(plan, allowed)
        ctx.check_steps(len(dag.steps))
        await run_plan(_one_at_a_time(dag) if sequential else dag, run_step, ctx, outputs)
        return dag

    async def _verified(self, step: Step, resolved: Any, output: Any, ask: Ask, ctx: RunContext) -> list[Verdict]:
        """Every verifier of the step's kind on its output, each verdict recorded."""
        verdicts = [await verifier.verify(step, resolved, output, ask) for verifier in self._verifiers[step.kind]]
        for v in verdicts:
            ctx.sink.emit(StepVerified(run_id=ctx.run_id, at=time.time(), step_id=step.id, verifier=v.verifier,
                                       outcome=v.outcome, reason=v.reason))
        return verdicts

    async def _cheaper_first(self, step: ExpertStep, question: str, ctx: RunContext) -> str | None:
        """The cascade's cheaper expert's answer to an expert step, if the step's verifiers pass it at once (their own
        model calls going to that expert too) and it is not the reader's "not in the documents"; else None, with the
        escalation recorded (FrugalGPT's cascade: the planned expert then answers as without one)."""
        assert self.cascade is not None
        cheap = msgspec.structs.replace(step, target=self.cascade)
        output = await self._ask_expert(cheap, question, ctx)
        verdicts = await self._verified(cheap, question, output, self._asker(cheap, ctx), ctx)
        passed = self.policy.decide(verdicts, 1, step.kind) == "pass"
        if passed and NOT_IN_DOCUMENTS not in output.lower():
            return output
        ctx.sink.emit(StepEscalated(run_id=ctx.run_id, at=time.time(), step_id=step.id, from_expert=self.cascade,
                                    to_expert=step.target,
                                    reason=f"answered: {output[:200]}" if passed else _reasons(verdicts)))
        return None

    def _asker(self, step: Step, ctx: RunContext) -> Ask:
        """Model calls for this step's verifiers: through the router, traced and budgeted, purpose "verify"."""

        async def ask(messages: list[Message], *, target: str | None = None, constraint: Constraint | None = None,
                      samples: int = 1, temperature: float = 0.0, max_tokens: int = 64) -> list[str]:
            who = target or (step.target if isinstance(step, ExpertStep) else self.router.default)
            sampling = Sampling(max_tokens=max_tokens, temperature=temperature)
            replies = await asyncio.gather(*(
                self.router.call(who, messages, ctx, purpose="verify", step_id=step.id, constraint=constraint,
                                 sampling=sampling)
                for _ in range(samples)
            ))
            return [completion.text for completion, _ in replies]

        return ask

    async def _call_tools(self, step: ParallelStep, resolved: list[dict[str, Any]], ctx: RunContext) -> list[Any]:
        """A step's several tool calls, at once; its output is their results in order."""
        try:
            async with asyncio.TaskGroup() as group:
                calls = [group.create_task(self._call_tool(call, call.input, ctx)) for call in step.calls(resolved)]
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None  # the first call to fail (the others were cancelled)
        return [call.result() for call in calls]

    async def _call_tool(self, step: ToolStep, resolved: dict[str, Any], ctx: RunContext) -> Any:
        tool = self.tools[step.target]

        fixable = True

        async def attempt(args: Any) -> tuple[Any, str | None]:
            nonlocal fixable
            started = time.perf_counter()
            result, error = None, None
            try:
                result = self._bounded(await tool.run(msgspec.convert(args, tool.args_type)))
            # ValidationError is a ValueError too; named for clarity
            except (ValueError, msgspec.ValidationError) as exc:
                error, fixable = str(exc), not isinstance(exc, Unfixable)
            ctx.sink.emit(ToolCalled(run_id=ctx.run_id, at=time.time(), step_id=step.id, tool=tool.name, args=args,
                                     result=result, error=error, latency_ms=_ms(started)))
            return result, error

        result, error = await attempt(resolved)
        # rewritten in the step, before a replan
        if error is not None and fixable and repairable(tool):
            resolved, result, error = await repair_in_step(self.router, tool, step.id, resolved, error, attempt, ctx)
        if error is not None:
            raise errors.ToolError(step.id, f"{tool.name} refused {resolved!r}: {error}")
        return result

    def _bounded(self, result: Any) -> Any:
        """`result` if its JSON is within the bound; otherwise a ValueError giving both sizes, which `_call_tool`
        records as the call's error (with no result) like any refusal: the result is dropped here, before any event,
        stream, trace row or later step holds it. A refusal, not a cut: a JSON value cut short would be wrong, not
        shorter. (Its tool may still be asked again with other arguments, by the step's repair or a replan.)"""
        return bounded(result, self.max_tool_result_bytes)

    async def _ask_expert(self, step: ExpertStep, question: str, ctx: RunContext, feedback: str | None = None) -> str:
        messages = [Message("system", prompts.EXPERT_SYSTEM), Message("user", question)]
        if feedback:
            messages.append(Message("user", prompts.EXPERT_REJECTED.format(feedback=feedback)))
        completion, _ = await self.router.call(step.target, messages, ctx, purpose="expert", step_id=step.id)
        return completion.text.strip()

    @staticmethod
    def _failed(sink: EventSink, run_id: uuid.UUID, started: float, exc: errors.ReasoningError) -> None:
        sink.emit(RunFailed(run_id=run_id, at=time.time(), error_type=exc.kind, error=str(exc),
                            latency_ms=_ms(started)))


class _StreamedPlan:
    """A plan run while the planner writes it: each step the planner finishes writing is checked and started as soon
    as the steps it needs are done; the complete plan is validated when the planner ends. A step failing for good, or
    one that breaks a rule of plans, stops the stream and the planner. Keeps what a repair needs: the steps written
    (admitted or not: a step the rules of plans refused is repaired too) and those admitted to run."""

    def __init__(self, engine: Engine, question: str, ctx: RunContext, allowed: tuple[str, ...]) -> None:
        self.planner, self.check_plan = engine.planner, engine.check_plan
        self.question, self.ctx, self.allowed = question, ctx, allowed
        self.tools = {name: engine.tools[name] for name in allowed}
        self.targets = engine.router.targets()
        self.written: dict[int, Step] = {}
        self.admitted: dict[int, Step] = {}
        self.dag: Dag | None = None  # the complete plan, validated, once the planner has ended

    async def run(self, run_step: RunStep, outputs: dict[int, Any]) -> Dag:
        """Plan and run; `outputs` is filled in place, so what finished is known when the run fails."""
        arrivals: asyncio.Queue[Step | None] = asyncio.Queue()
        planning = asyncio.create_task(self.planner.plan(self.question, self.ctx, self.allowed,
                                                         on_step=arrivals.put_nowait), name="planner")
        planning.add_done_callback(lambda _: arrivals.put_nowait(None))  # the end of the stream, however it ended
        try:
            await run_streamed_plan(self._arriving(arrivals, planning), self._admit, run_step, self.ctx, outputs)
        finally:
            if not planning.done():
                planning.cancel()
                await asyncio.wait({planning})
        assert self.dag is not None  # the stream ends only after the complete plan was validated
        return self.dag

    def _admit(self, step: Step) -> frozenset[int]:
        self.written[step.id] = step
        self.ctx.check_steps(len(self.admitted) + 1)
        if step.id in self.admitted:
            raise errors.PlanInvalid("duplicate step id", step.id)
        check_step(step, self.tools, self.targets)
        needs = frozenset(step.depends_on) | references(step.input)
        if step.id in needs:
            raise errors.PlanInvalid("depends on itself", step.id)
        self.admitted[step.id] = step
        return needs

    async def _arriving(self, arrivals: asyncio.Queue[Step | None],
                        planning: asyncio.Task[Plan]) -> AsyncIterator[Step]:
        while (step := await arrivals.get()) is not None:
            yield step
        plan = await planning  # the planner's own failure, if any, surfaces here
        self.written.update((step.id, step) for step in plan.steps)
        self.ctx.sink.emit(PlanReady(run_id=self.ctx.run_id, at=time.time(), plan=plan))
        self.dag = self.check_plan(plan, self.allowed)


def _first_of_each_id(steps: Sequence[Step]) -> dict[int, Step]:
    """Steps by id, in plan order; of two with one id, the first (the one a "duplicate step id" rule names)."""
    by_id: dict[int, Step] = {}
    for step in steps:
        by_id.setdefault(step.id, step)
    return by_id


def _unchanged(plan: Plan, done: list[tuple[Step, Any]]) -> dict[int, Any]:
    """The results a new plan keeps: steps it writes exactly as before, all of whose inputs are kept too."""
    by_id = {step.id: (step, output) for step, output in done}
    kept: dict[int, Any] = {}
    changed = True  # needs may point forward in the list: repeat until nothing more can be kept
    while changed:
        changed = False
        for step in plan.steps:
            if step.id in kept or step.id not in by_id or by_id[step.id][0] != step:
                continue
            if all(need in kept for need in set(step.depends_on) | references(step.input)):
                kept[step.id] = by_id[step.id][1]
                changed = True
    return kept


def _one_at_a_time(dag: Dag) -> Dag:
    """The same steps, each also waiting for the one before it in a topological order (plan order where free), so
    they run one at a time; the steps themselves, as planned, are what the trace shows."""
    order: list[int] = []
    while len(order) < len(dag.steps):
        order.append(next(sid for sid in dag.steps if sid not in order and dag.needs[sid] <= set(order)))
    needs = {sid: dag.needs[sid] | ({order[i - 1]} if i else set()) for i, sid in enumerate(order)}
    dependents: dict[int, list[int]] = {sid: [] for sid in order}
    for sid in order:
        for need in needs[sid]:
            dependents[need].append(sid)
    return Dag(steps=dag.steps, needs={sid: frozenset(n) for sid, n in needs.items()}, dependents=dependents,
               answer=dag.answer, parts=dag.parts)


def _reasons(verdicts: Sequence[Verdict]) -> str:
    """What the verdicts that did not pass say, as feedback for a retry or the reason of an escalation."""
    return "; ".join(f"{v.verifier}: {v.reason}" for v in verdicts if v.outcome != "pass")


def _deadline(deadline_s: float | None) -> float:
    if deadline_s is None:
        raise ValueError("a run needs a deadline: set deadline_s in its options (Runtime fills in STEPWISE_DEADLINE_S)")
    return deadline_s


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
