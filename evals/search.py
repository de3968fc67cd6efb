"""`stepwise optimize`'s decisions, as pure functions of data (the loop that runs evals is evals/optimize.py): the
seeded train/held-out split, the search space over the configuration file's switches, the objective and its limits,
the search itself (optuna's TPE sampler through its ask-and-tell interface, fed by an evaluator the caller passes),
the choice of a configuration and the accuracy–latency and accuracy–cost frontiers.

optuna, not a hand-written search: its TPE sampler is a small Bayesian search that handles categorical switches,
takes a seed, starts with the configuration we name (`enqueue_trial`) and honours limits (`Trial.set_constraint`:
a candidate over the p50 or cost limit is infeasible, and the sampler steers away from its neighbourhood)."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import msgspec

from stepwise.app.config import ComposerConfig, Config, ExpertsConfig, PlannerConfig, VerifiersConfig
from stepwise.app.registry import NO_CASCADE

T = TypeVar("T")

HAND, LEARNED = "hand", "learned"
NO_VERIFIERS = "none"


class Measures(msgspec.Struct, frozen=True):
    """A candidate's numbers on the items it ran: accuracy (0–1), the median latency and the mean cost per item."""

    items: int
    accuracy: float
    p50_ms: float
    cost_per_item: float


class Objective(msgspec.Struct, frozen=True, kw_only=True):
    """Maximise accuracy, less `latency_weight` per second of p50 and `cost_weight` per unit of cost per item (a
    weighted mix; both 0 by default), among candidates within the limits (None: no limit)."""

    max_p50_ms: float | None = None
    max_cost_per_item: float | None = None
    latency_weight: float = 0.0
    cost_weight: float = 0.0

    def score(self, m: Measures) -> float:
        return m.accuracy - self.latency_weight * m.p50_ms / 1000 - self.cost_weight * m.cost_per_item

    def violations(self, m: Measures) -> dict[str, float]:
        """How far past each limit, relative to the limit (≤ 0: within it): optuna's constraint values."""
        over = {}
        if self.max_p50_ms is not None:
            over["p50"] = (m.p50_ms - self.max_p50_ms) / max(self.max_p50_ms, 1e-9)
        if self.max_cost_per_item is not None:
            over["cost_per_item"] = (m.cost_per_item - self.max_cost_per_item) / max(self.max_cost_per_item, 1e-12)
        return over

    def feasible(self, m: Measures) -> bool:
        return all(v <= 0 for v in self.violations(m).values())


class Candidate(msgspec.Struct, kw_only=True):
    """One configuration evaluated: its number (0 is the default), its switches, its measures and the eval runs
    that measured it."""

    number: int
    params: dict[str, Any]
    measures: Measures
    score: float
    feasible: bool
    eval_run_ids: list[int] = []


# ---------------------------------------------------------------- split


def split_items(items: Sequence[T], *, holdout: float, seed: int, kind_of: Callable[[T], str | None] = lambda _: None,
                part_of: Callable[[T], str | None] = lambda _: None, train_limit: int | None = None,
                holdout_limit: int | None = None) -> tuple[list[T], list[T]]:
    """(train, held out). Items whose dataset already marks a held-out part (`part_of` gives "dev" / "heldout",
    as the dev set does) keep it: that part was kept unseen while the system was tuned. Otherwise each kind of item
    (`kind_of`) is shuffled with `seed` and its first `holdout` share held out (at least one item of a kind with two
    or more). Each part lists its kinds in turn, so a limit keeps their mix."""
    if not 0 < holdout < 1:
        raise ValueError(f"the held-out share is {holdout}: give one between 0 and 1")
    rng = random.Random(seed)
    marked = [part_of(item) for item in items]
    train_by: dict[str | None, list[T]] = {}
    held_by: dict[str | None, list[T]] = {}
    if items and all(p in ("dev", "heldout") for p in marked):
        for item, part in zip(items, marked, strict=True):
            (held_by if part == "heldout" else train_by).setdefault(kind_of(item), []).append(item)
        for group in (*train_by.values(), *held_by.values()):
            rng.shuffle(group)
    else:
        strata: dict[str | None, list[T]] = {}
        for item in items:
            strata.setdefault(kind_of(item), []).append(item)
        for kind, group in strata.items():
            group = list(group)
            rng.shuffle(group)
            n = round(len(group) * holdout)
            n = min(max(n, 1 if len(group) >= 2 else 0), len(group) - 1 if len(group) >= 2 else len(group))
            held_by[kind], train_by[kind] = group[:n], group[n:]
    return _interleaved(train_by)[:train_limit], _interleaved(held_by)[:holdout_limit]


def _interleaved(groups: dict[str | None, list[T]]) -> list[T]:
    """Round-robin over the groups in a fixed order (by kind), so any prefix has the kinds in turn."""
    ordered = [groups[k] for k in sorted(groups, key=lambda k: (k is None, k or ""))]
    out: list[T] = []
    for i in range(max((len(g) for g in ordered), default=0)):
        out += [g[i] for g in ordered if i < len(g)]
    return out


def halves(items: Sequence[T]) -> tuple[list[T], list[T]]:
    """Two halves taking the items in turn (so each keeps the kinds' mix): the cross-fitting folds of learned
    demonstrations — each half is run with the examples learned on the other, never with its own questions."""
    return list(items[0::2]), list(items[1::2])


# ---------------------------------------------------------------- space


def search_space(defaults: dict[str, Any], experts: Sequence[str], *, learned: bool,
                 sample_limit: int | None = None) -> dict[str, list[Any]]:
    """Each switch's choices, every default among them. Roles are searched only when the registry has more than one
    expert; the learned bank only when demonstrations can be learned; sample counts (`samples`, `more`) only up to
    `sample_limit`, the most one call may ask for (None: no limit)."""
    space: dict[str, list[Any]] = {
        "planner": ["program", "json"],
        "samples": [1, 3, 5, 7],
        "more": [0, 3],
        "examples": [1, 3, 5],
        "temperature": [0.4, 0.7, 1.0],
        "verifiers": [NO_VERIFIERS, "self_consistency", "llm_judge", "self_consistency,llm_judge"],
        "compose": ["auto", "always"],
        "max_tokens": [64, 128, 256],
        "bank": [HAND, LEARNED] if learned else [HAND],
    }
    if len(experts) > 1:
        space |= {"planner_expert": list(experts), "executor": list(experts), "composer_expert": list(experts),
                  "cascade": [NO_CASCADE, *experts]}
    if sample_limit is not None:
        for name in ("samples", "more"):
            space[name] = [n for n in space[name] if n <= sample_limit]
    for name, value in defaults.items():
        if name in space and value not in space[name]:
            space[name] = [value, *space[name]]
    return space


def canonical(params: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The params with the switches that change nothing set to their defaults, so two candidates that would run
    alike are one: the JSON planner ignores the program planner's switches, one sample is greedy (no temperature,
    no extra samples), a cascade to the expert that answers anyway is none."""
    out = dict(params)
    if "cascade" in out and out["cascade"] == out.get("executor"):
        out["cascade"] = NO_CASCADE
    if out.get("planner") == "json":
        for name in ("samples", "more", "examples", "temperature", "bank"):
            if name in out:
                out[name] = defaults[name]
    elif out.get("samples") == 1:
        for name in ("temperature", "more"):
            if name in out:
                out[name] = defaults[name]
    return out


def settings_defaults(settings: Any, registry: Any) -> dict[str, Any]:
    """The params of the configuration a server with these settings runs: candidate 0, the baseline."""
    expert_limits = {e.max_tokens for e in registry.experts}
    defaults: dict[str, Any] = {
        "planner": settings.planner, "samples": settings.plan_samples, "more": settings.plan_more,
        "examples": settings.plan_examples, "temperature": settings.plan_temperature,
        "verifiers": ",".join(settings.verifiers) or NO_VERIFIERS, "compose": settings.compose,
        # experts with limits of their own keep them (None: no override), unless a candidate sets one for all
        "max_tokens": expert_limits.pop() if len(expert_limits) == 1 else None, "bank": HAND,
    }
    if len(registry.experts) > 1:
        defaults |= {"planner_expert": registry.planner or registry.default_name, "executor": registry.default_name,
                     "composer_expert": registry.composer or registry.default_name,
                     "cascade": registry.cascade or NO_CASCADE}
    return defaults


def config_of(params: dict[str, Any], bank: str | None = None) -> Config:
    """The configuration file for these params; `bank` is the learned bank's file name when params use it."""
    verifiers = [] if params["verifiers"] == NO_VERIFIERS else params["verifiers"].split(",")
    return Config(
        planner=PlannerConfig(kind=params["planner"], samples=params["samples"], more=params["more"],
                              examples=params["examples"], temperature=params["temperature"],
                              bank=bank if params.get("bank") == LEARNED else None),
        verifiers=VerifiersConfig(model=verifiers),
        composer=ComposerConfig(mode=params["compose"]),
        experts=ExpertsConfig(planner=params.get("planner_expert"), executor=params.get("executor"),
                              composer=params.get("composer_expert"), cascade=params.get("cascade"),
                              max_tokens=params["max_tokens"]),
    )


def changed(params: dict[str, Any], defaults: dict[str, Any]) -> str:
    """The switches where `params` differ from the defaults, e.g. `samples=7, verifiers=llm_judge`."""
    return ", ".join(f"{k}={v}" for k, v in params.items() if defaults.get(k) != v)


# ---------------------------------------------------------------- search


Evaluate = Callable[[int, dict[str, Any]], Awaitable[tuple[Measures, list[int]] | None]]


async def search(evaluate: Evaluate, space: dict[str, list[Any]], defaults: dict[str, Any], objective: Objective, *,
                 budget: int, seed: int) -> list[Candidate]:
    """Evaluate up to `budget` distinct configurations, the default first, the rest as optuna's TPE sampler proposes
    them. `evaluate(number, params)` runs one and returns its measures and eval run ids, or None when it cannot be
    run (it then costs no budget). A proposal equal to one already run (after `canonical`) is answered from that
    run, not run again."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(1, min(10, budget // 2)))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial({k: v for k, v in defaults.items() if k in space})
    done: dict[str, Candidate] = {}
    candidates: list[Candidate] = []
    attempts = 0
    while len(candidates) < budget and attempts < 20 * budget:
        attempts += 1
        trial = study.ask()
        proposed = {name: trial.suggest_categorical(name, choices) for name, choices in space.items()}
        params = canonical(proposed, defaults)
        key = msgspec.json.encode(sorted(params.items())).decode()
        if key in done:  # tell the sampler what it already knows, at no cost
            known = done[key]
            for name, value in objective.violations(known.measures).items():
                trial.set_constraint(name, value)
            study.tell(trial, known.score)
            continue
        result = await evaluate(len(candidates), params)
        if result is None:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        measures, runs = result
        candidate = Candidate(number=len(candidates), params=params, measures=measures, score=objective.score(measures),
                              feasible=objective.feasible(measures), eval_run_ids=runs)
        for name, value in objective.violations(measures).items():
            trial.set_constraint(name, value)
        study.tell(trial, candidate.score)
        done[key] = candidate
        candidates.append(candidate)
    return candidates


def sampling_error(a: Measures, b: Measures) -> float:
    """One standard error of the difference between two accuracies measured on the same number of items (the
    fewer of the two), at their mean moved toward one half as Agresti and Coull do ((k + 1) / (n + 2)), so that one
    item of 15 stays within it at the ends too: what two runs of one configuration differ by, roughly."""
    n = min(a.items, b.items)
    p = ((a.accuracy + b.accuracy) / 2 * n + 1) / (n + 2)
    return math.sqrt(2 * p * (1 - p) / n) if n else 0.0


def choose(candidates: Sequence[Candidate], objective: Objective) -> Candidate:
    """The best feasible candidate: highest score, then lower p50, lower cost, the earlier one (the default wins a
    tie). An accuracy above the default's by no more than the sampling error of the train items counts as the
    default's (so that gain alone does not win, and p50 and cost decide between level candidates): on 15 items one
    item more is 6.7 points, and a candidate chosen for it lost 12 points to the default on held-out items (README,
    "Tune it to your workload"). With none feasible, the one closest to the limits."""
    if not candidates:
        raise ValueError("no candidate was evaluated")
    feasible = [c for c in candidates if c.feasible]
    if feasible:
        default = next((c for c in feasible if c.number == 0), None)

        def score(c: Candidate) -> float:
            if default is None:
                return c.score
            gain = c.measures.accuracy - default.measures.accuracy
            return c.score - gain if 0 < gain <= sampling_error(default.measures, c.measures) else c.score

        return min(feasible, key=lambda c: (-score(c), c.measures.p50_ms, c.measures.cost_per_item, c.number))

    def excess(c: Candidate) -> float:
        return sum(max(0.0, v) for v in objective.violations(c.measures).values())

    return min(candidates, key=lambda c: (excess(c), -c.score, c.number))


def frontier(candidates: Sequence[Candidate], cost_of: Callable[[Measures], float]) -> list[Candidate]:
    """The candidates no other beats on accuracy and `cost_of` (latency or cost) at once, by increasing cost."""
    on = [c for c in candidates if not any(
        o.measures.accuracy >= c.measures.accuracy and cost_of(o.measures) <= cost_of(c.measures)
        and (o.measures.accuracy > c.measures.accuracy or cost_of(o.measures) < cost_of(c.measures))
        for o in candidates)]
    return sorted(on, key=lambda c: (cost_of(c.measures), -c.measures.accuracy))


def measures_of(rows: Sequence[dict[str, Any]]) -> Measures:
    """Measures from eval_items rows (correct, latency_ms, cost), as the eval_summary view computes them."""
    if not rows:
        raise ValueError("no items were run")
    latencies = [r["latency_ms"] for r in rows if r["latency_ms"] is not None]
    return Measures(items=len(rows), accuracy=sum(bool(r["correct"]) for r in rows) / len(rows),
                    p50_ms=statistics.median(latencies) if latencies else 0.0,
                    cost_per_item=sum(r["cost"] or 0.0 for r in rows) / len(rows))
