"""`stepwise optimize`: the loop around evals/search.py. Each candidate configuration is applied to one running
runtime (Runtime.reconfigure: same experts, tools and database, no model loaded again) and measured by the eval
harness on the train items (evals.runner.run_eval, the code path of `stepwise eval`), its rows linked to an
optimize_candidates row. The chosen configuration then runs once on the held-out items beside the default one.

Learned demonstrations (evals/demos.py) are cross-fitted: a candidate using them runs each half of the train items
with the examples learned on the other half, so no item is ever shown its own question and program."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from stepwise.app.config import dump_bank, dump_config
from stepwise.app.registry import sample_limit
from stepwise.evals import demos
from stepwise.evals.runner import run_eval
from stepwise.evals.search import (
    HAND,
    LEARNED,
    Candidate,
    Measures,
    Objective,
    changed,
    choose,
    config_of,
    halves,
    measures_of,
    search,
    search_space,
    settings_defaults,
)
from stepwise.evals.types import Dataset, Item
from stepwise.reasoning.examples import Example, ExampleBank

CONFIG_FILE, BANK_FILE, REPORT_FILE, PLOT_FILE = "stepwise.toml", "learned_examples.toml", "report.md", "frontier.png"


class HeldOut(msgspec.Struct):
    """One configuration's run on the held-out items."""

    label: str
    params: dict[str, Any]
    measures: Measures
    eval_run_id: int


class Outcome(msgspec.Struct):
    optimize_run_id: int
    candidates: list[Candidate]
    chosen: Candidate
    heldout: list[HeldOut]
    learned: int  # demonstrations learned from the train runs
    files: list[Path]


class Optimizer:
    """One optimization on one runtime: evaluates candidates and keeps what they teach."""

    def __init__(self, runtime: Any, dataset: Dataset, train: Sequence[Item], heldout: Sequence[Item], out: Path, *,
                 concurrency: int = 1, deadline_s: float | None = None, say: Callable[[str], None] = lambda _: None):
        from stepwise.app.config import load_bank
        from stepwise.app.registry import registry_for

        self.runtime, self.dataset, self.out = runtime, dataset, out
        self.train, self.heldout = list(train), list(heldout)
        self.base = runtime.settings
        self.registry = registry_for(self.base)
        self.defaults = settings_defaults(self.base, self.registry)
        self.hand = load_bank(self.base.example_bank) if self.base.example_bank else ExampleBank.default()
        self.concurrency, self.deadline_s, self.say = concurrency, deadline_s, say
        self.optimize_run_id = 0
        self.train_runs: list[int] = []  # every eval run on train items so far: where demonstrations come from
        self.demos: dict[str, Example] = {}
        self.objective = Objective()

    @property
    def pool(self) -> asyncpg.Pool:
        return self.runtime.pool

    def settings_for(self, params: dict[str, Any], bank: Path | None) -> Any:
        """The base settings with a candidate's switches (its bank file, if it uses learned examples)."""
        values = config_of(params).settings(self.out)
        values["example_bank"] = bank if params.get("bank") == LEARNED else self.base.example_bank
        return msgspec.structs.replace(self.base, **values)

    async def run_items(self, params: dict[str, Any], items: Sequence[Item], bank: Path | None, part: str,
                        number: int | None) -> int:
        """One eval run of `items` under `params`; its id."""
        self.runtime.reconfigure(self.settings_for(params, bank))
        chosen = list(items)
        dataset = msgspec.structs.replace(self.dataset, items=lambda: iter(chosen))
        summary = await run_eval(self.runtime, dataset, "orchestrated", concurrency=self.concurrency,
                                 deadline_s=self.deadline_s, limit=len(chosen),
                                 config={"optimize_run_id": self.optimize_run_id, "candidate": number, "part": part,
                                         "params": params, "bank": str(bank) if bank else None})
        return summary.eval_run_id

    async def measures(self, eval_run_ids: Sequence[int]) -> Measures:
        rows = await self.pool.fetch(
            "SELECT correct, latency_ms, cost FROM eval_items WHERE eval_run_id = ANY($1::bigint[])",
            list(eval_run_ids))
        return measures_of([dict(r) for r in rows])

    async def learn(self) -> None:
        """Take the demonstrations of every train run so far (new items only: an item keeps its first)."""
        for item_id, example in await demos.learned(self.pool, self.train_runs):
            self.demos.setdefault(item_id, example)

    def fold_bank(self, name: str, items: Sequence[Item]) -> Path | None:
        """A bank file of the hand-written examples plus those learned on `items` (the other half); None if none."""
        ids = {i.id for i in items}
        learned = [e for item_id, e in sorted(self.demos.items()) if item_id in ids]
        if not learned:
            return None
        path = self.out / "folds" / f"{name}.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_bank(demos.bank_with(self.hand, learned), header=f"cross-fitting fold {name}"))
        return path

    async def evaluate(self, number: int, params: dict[str, Any]) -> tuple[Measures, list[int]] | None:
        if params.get("bank") == LEARNED:
            first, second = halves(self.train)
            banks = (self.fold_bank(f"candidate-{number}-a", second), self.fold_bank(f"candidate-{number}-b", first))
            if None in banks:
                return None  # nothing learned on one half yet: this candidate cannot be run fairly
            runs = [await self.run_items(params, part, bank, "train", number)
                    for part, bank in zip((first, second), banks, strict=True)]
        else:
            runs = [await self.run_items(params, self.train, None, "train", number)]
        self.train_runs += runs
        await self.learn()
        measures = await self.measures(runs)
        self.say(f"candidate {number}: accuracy {100 * measures.accuracy:.1f}% · p50 {measures.p50_ms / 1000:.1f} s · "
                 f"cost/item {measures.cost_per_item:.6f} · {changed(params, self.defaults) or 'the default'}")
        return measures, runs

    async def run(self, objective: Objective, *, budget: int, seed: int, compare_banks: bool = False) -> Outcome:
        self.objective = objective
        self.out.mkdir(parents=True, exist_ok=True)
        self.optimize_run_id = await self.pool.fetchval(
            "INSERT INTO optimize_runs (dataset, objective, budget, seed, train_items, heldout_items, out_dir)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id", self.dataset.name, msgspec.to_builtins(objective),
            budget, seed, [i.id for i in self.train], [i.id for i in self.heldout], str(self.out.resolve()))
        status = "failed"
        try:
            outcome = await self._run(objective, budget=budget, seed=seed, compare_banks=compare_banks)
            status = "finished"
            return outcome
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        finally:
            await self.pool.execute("UPDATE optimize_runs SET status = $2, finished_at = now() WHERE id = $1",
                                    self.optimize_run_id, status)

    async def _run(self, objective: Objective, *, budget: int, seed: int, compare_banks: bool) -> Outcome:
        experts = [e.name for e in self.registry.experts]
        space = search_space(self.defaults, experts, learned=True,
                             sample_limit=sample_limit(self.base, self.registry))
        candidates = await search(self._recorded, space, self.defaults, objective, budget=budget, seed=seed)
        chosen = choose(candidates, objective)
        bank = None
        if self.demos:
            bank = self.out / BANK_FILE
            bank.write_text(dump_bank(demos.bank_with(self.hand, [e for _, e in sorted(self.demos.items())]),
                                      header=f"learned by stepwise optimize run {self.optimize_run_id} from "
                                             f"{len(self.demos)} verified correct train items, after the "
                                             f"{len(self.hand.examples)} hand-written examples"))
        heldout = await self._heldout(chosen, candidates[0], bank, compare_banks)
        config = config_of(chosen.params, bank=BANK_FILE)
        (self.out / CONFIG_FILE).write_text(dump_config(config, header=(
            f"chosen by stepwise optimize run {self.optimize_run_id} on {self.dataset.name}: candidate "
            f"{chosen.number} of {len(candidates)}\nuse it: STEPWISE_CONFIG={(self.out / CONFIG_FILE).resolve()}")))
        await self.pool.execute(
            "UPDATE optimize_runs SET chosen_number = $2, config = $3, heldout_eval_run_id = $4,"
            " default_heldout_eval_run_id = $5 WHERE id = $1", self.optimize_run_id, chosen.number,
            msgspec.to_builtins(config), heldout[0].eval_run_id if heldout else None,
            heldout[1].eval_run_id if len(heldout) > 1 else None)
        from stepwise.evals import optimize_report

        files = [self.out / CONFIG_FILE, *([bank] if bank else [])]
        files += optimize_report.write(self.out, self, objective, candidates, chosen, heldout)
        return Outcome(self.optimize_run_id, candidates, chosen, heldout, len(self.demos), files)

    async def _recorded(self, number: int, params: dict[str, Any]) -> tuple[Measures, list[int]] | None:
        """evaluate, and its optimize_candidates row."""
        result = await self.evaluate(number, params)
        if result is not None:
            measures, runs = result
            await self.pool.execute(
                "INSERT INTO optimize_candidates (optimize_run_id, number, params, score, feasible, eval_run_ids)"
                " VALUES ($1, $2, $3, $4, $5, $6)", self.optimize_run_id, number, params,
                self.objective.score(measures), self.objective.feasible(measures), runs)
        return result

    async def _heldout(self, chosen: Candidate, default: Candidate, bank: Path | None,
                       compare_banks: bool) -> list[HeldOut]:
        """The chosen configuration and the default one on the held-out items (the same run when they are one); with
        `compare_banks`, the chosen one again with the other bank (learned against hand-written examples)."""
        if not self.heldout:
            return []
        runs: list[HeldOut] = []

        async def one(label: str, params: dict[str, Any]) -> HeldOut:
            use = bank if params.get("bank") == LEARNED else None
            if params.get("bank") == LEARNED and use is None:
                params = params | {"bank": HAND}
            run_id = await self.run_items(params, self.heldout, use, "heldout", None)
            held = HeldOut(label, params, await self.measures([run_id]), run_id)
            self.say(f"held out, {label}: accuracy {100 * held.measures.accuracy:.1f}% · "
                     f"p50 {held.measures.p50_ms / 1000:.1f} s · cost/item {held.measures.cost_per_item:.6f}")
            return held

        runs.append(await one("chosen", chosen.params))
        if chosen.number == default.number:
            runs.append(msgspec.structs.replace(runs[0], label="default"))
        else:
            runs.append(await one("default", default.params))
        if compare_banks and bank is not None and chosen.params.get("planner") == "program":
            other = HAND if chosen.params.get("bank") == LEARNED else LEARNED
            runs.append(await one(f"chosen with {other} examples", chosen.params | {"bank": other}))
        return runs
