"""stepwise optimize's decisions without a model: the seeded split, the search space, the search over a stub
evaluator (a made-up accuracy/latency surface standing in for eval runs), the choice under limits, the frontiers."""

from __future__ import annotations

from collections import Counter

import msgspec
import pytest

from stepwise.app.config import Config
from stepwise.app.registry import ExpertSpec, Registry, RegistryError, check_slots, registry_for, sample_limit
from stepwise.app.settings import Settings
from stepwise.evals.search import (
    HAND,
    LEARNED,
    NO_VERIFIERS,
    Candidate,
    Measures,
    Objective,
    canonical,
    choose,
    config_of,
    frontier,
    halves,
    measures_of,
    sampling_error,
    search,
    search_space,
    split_items,
)

DEFAULTS = {"planner": "program", "samples": 5, "more": 0, "examples": 3, "temperature": 0.7,
            "verifiers": NO_VERIFIERS, "compose": "auto", "max_tokens": 128, "bank": HAND}


def kinded(n_per_kind: int, kinds=("alpha", "beta", "gamma")) -> list[tuple[str, str]]:
    return [(f"{k}-{i}", k) for k in kinds for i in range(n_per_kind)]


def test_the_split_is_seeded_disjoint_and_complete():
    """The same seed gives the same parts; another seed other ones; no item is in both, none is lost."""
    items = kinded(10)
    a = split_items(items, holdout=0.3, seed=7, kind_of=lambda i: i[1])
    assert a == split_items(items, holdout=0.3, seed=7, kind_of=lambda i: i[1])
    assert a != split_items(items, holdout=0.3, seed=8, kind_of=lambda i: i[1])
    train, held = a
    assert not set(train) & set(held) and sorted(train + held) == sorted(items)


def test_the_split_holds_out_a_share_of_every_kind():
    """Each kind is held out in proportion (3 of 10 here), and a kind of two items still gives one to each part."""
    train, held = split_items(kinded(10) + [("rare-0", "rare"), ("rare-1", "rare")], holdout=0.3, seed=1,
                              kind_of=lambda i: i[1])
    assert Counter(k for _, k in held) == {"alpha": 3, "beta": 3, "gamma": 3, "rare": 1}
    assert Counter(k for _, k in train)["rare"] == 1


def test_a_dataset_that_marks_its_held_out_part_keeps_it():
    """Items marked dev/heldout (the dev set) are split as marked, whatever the share asked."""
    items = [(f"q{i}", "heldout" if i % 3 == 2 else "dev") for i in range(12)]
    train, held = split_items(items, holdout=0.5, seed=3, part_of=lambda i: i[1])
    assert {p for _, p in held} == {"heldout"} and len(held) == 4 and len(train) == 8


def test_limits_keep_the_kinds_in_turn():
    """A limit on a part takes its kinds in turn, so a few items still cover every kind."""
    train, held = split_items(kinded(10), holdout=0.3, seed=5, kind_of=lambda i: i[1], train_limit=3, holdout_limit=2)
    assert sorted(k for _, k in train) == ["alpha", "beta", "gamma"] and len(held) == 2


def test_a_share_outside_zero_and_one_is_refused():
    """holdout must leave something on each side."""
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_items(kinded(2), holdout=1.0, seed=0)


def test_halves_alternate():
    """The cross-fitting halves take the items in turn."""
    assert halves([1, 2, 3, 4, 5]) == ([1, 3, 5], [2, 4])


def test_the_space_holds_every_default_and_roles_only_with_several_experts():
    """A default outside the usual choices joins them; roles are searched only when there is a choice of expert."""
    space = search_space(DEFAULTS | {"samples": 4}, ["general"], learned=False)
    assert 4 in space["samples"] and space["bank"] == [HAND] and "executor" not in space
    space = search_space(DEFAULTS, ["general", "fast"], learned=True)
    assert space["bank"] == [HAND, LEARNED] and space["executor"] == ["general", "fast"]


def test_sample_counts_stay_within_what_the_embedded_model_serves_in_one_call():
    """With local experts, no candidate samples more programs in one call than the embedded llama.cpp has slots (it
    answers such a request with a 400, failing every item); remote experts set no limit."""
    settings = Settings.from_env({"HOME": "/nonexistent", "STEPWISE_MODEL": "smollm2"})
    assert settings.parallel == 6 and sample_limit(settings, registry_for(settings)) == 6
    space = search_space(DEFAULTS, ["general"], learned=True, sample_limit=6)
    assert space["samples"] == [1, 3, 5] and space["more"] == [0, 3]
    space = search_space(DEFAULTS, ["general"], learned=True, sample_limit=2)
    assert space["samples"] == [5, 1] and space["more"] == [0]  # the default stays: it is the running configuration
    remote = Registry(experts=[ExpertSpec(name="big", backend="sglang", url="http://gpu:30000")])
    assert sample_limit(settings, remote) is None
    assert 7 in search_space(DEFAULTS, ["big"], learned=True, sample_limit=None)["samples"]


@pytest.mark.parametrize("var", ["STEPWISE_PLAN_SAMPLES", "STEPWISE_PLAN_MORE", "STEPWISE_PLAN_WORKED_SAMPLES",
                                 "STEPWISE_CALL_SAMPLES"])
def test_a_sample_count_above_the_embedded_models_slots_is_refused_at_start_naming_it(var):
    """More completions in one call than the embedded model has slots is a configuration error naming the setting
    and the slots, not a 400 at every run's first call."""
    env = {"HOME": "/nonexistent", "STEPWISE_MODEL": "smollm2", "STEPWISE_PARALLEL": "5"}
    with pytest.raises(RegistryError, match=f"{var}.* = 6 .*STEPWISE_PARALLEL = 5"):
        registry_for(Settings.from_env(env | {var: "6"}))
    assert registry_for(Settings.from_env(env | {var: "5"})).experts


def test_the_recheck_a_default_sets_fits_itself_to_the_slots_instead_of_refusing_to_start():
    """STEPWISE_CALL_RECHECK's default of 5 on an embedded model of 2 slots samples 2 (a count the caller set above
    the slots, as STEPWISE_CALL_SAMPLES, is refused); a remote expert takes the count as set."""
    from stepwise.app.runtime import _recheck

    settings = Settings.from_env({"HOME": "/nonexistent", "STEPWISE_PARALLEL": "2", "STEPWISE_PLAN_SAMPLES": "2"})
    assert settings.call_recheck == 5
    local = registry_for(settings)
    check_slots(settings, local)
    assert _recheck(settings, local) == 2
    remote = Registry(experts=[ExpertSpec(name="big", backend="sglang", url="http://gpu:30000")])
    assert _recheck(settings, remote) == 5
    assert Settings.from_env({"HOME": "/nonexistent", "STEPWISE_CALL_RECHECK": "1"}).call_recheck == 1


def test_plan_samples_are_bounded_by_the_planners_slots_only():
    """A remote planner beside a local expert: the plan's samples go to the remote one, so no local bound applies."""
    settings = Settings.from_env({"HOME": "/nonexistent", "STEPWISE_PARALLEL": "2", "STEPWISE_PLAN_SAMPLES": "5"})
    registry = Registry(experts=[ExpertSpec(name="small", backend="local", model="smollm2"),
                                 ExpertSpec(name="big", backend="sglang", url="http://gpu:30000")], planner="big")
    check_slots(settings, registry)
    with pytest.raises(RegistryError, match="plan_samples"):
        check_slots(settings, msgspec.structs.replace(registry, planner="small"))


def test_canonical_folds_switches_that_change_nothing():
    """The JSON planner ignores the program planner's switches; one sample ignores temperature and extra samples."""
    json_plan = canonical(DEFAULTS | {"planner": "json", "samples": 7, "bank": LEARNED}, DEFAULTS)
    assert json_plan == DEFAULTS | {"planner": "json"}
    greedy = canonical(DEFAULTS | {"samples": 1, "temperature": 1.0, "more": 3, "examples": 5}, DEFAULTS)
    assert greedy == DEFAULTS | {"samples": 1, "examples": 5}


def test_params_become_the_configuration_file():
    """The chosen params are written as the config file's switches; the learned bank by its file name."""
    config = config_of(DEFAULTS | {"verifiers": "self_consistency,llm_judge", "bank": LEARNED, "samples": 3},
                       bank="learned_examples.toml")
    assert isinstance(config, Config)
    assert (config.planner.samples, config.planner.bank, config.verifiers.model) == (
        3, "learned_examples.toml", ["self_consistency", "llm_judge"])
    assert config_of(DEFAULTS, bank="x.toml").planner.bank is None and config_of(DEFAULTS).verifiers.model == []


def surface(params) -> Measures:
    """A made-up workload of 100 items: more samples are more accurate and slower; the judge adds accuracy and
    latency."""
    accuracy = 0.3 + 0.05 * params["samples"] + (0.1 if "llm_judge" in params["verifiers"] else 0)
    accuracy += 0.05 if params["bank"] == LEARNED else 0
    latency = 1000.0 * (2 + params["samples"] + (4 if "llm_judge" in params["verifiers"] else 0))
    return Measures(items=100, accuracy=min(accuracy, 1.0), p50_ms=latency, cost_per_item=latency / 1e6)


def stub(seen: list):
    async def evaluate(number, params):
        seen.append((number, params))
        return surface(params), [100 + number]
    return evaluate


async def test_the_search_runs_the_default_first_and_stays_in_budget():
    """Candidate 0 is the default configuration; exactly `budget` distinct candidates are evaluated."""
    seen: list = []
    space = search_space(DEFAULTS, ["general"], learned=True)
    candidates = await search(stub(seen), space, DEFAULTS, Objective(), budget=6, seed=11)
    assert len(candidates) == len(seen) == 6
    assert candidates[0].params == DEFAULTS and candidates[0].eval_run_ids == [100]
    keys = [tuple(sorted(c.params.items())) for c in candidates]
    assert len(set(keys)) == 6


async def test_the_search_is_reproducible_with_its_seed():
    """The same seed proposes the same candidates in the same order."""
    space = search_space(DEFAULTS, ["general"], learned=True)
    a = await search(stub([]), space, DEFAULTS, Objective(), budget=5, seed=3)
    b = await search(stub([]), space, DEFAULTS, Objective(), budget=5, seed=3)
    assert [c.params for c in a] == [c.params for c in b]


async def test_the_search_finds_better_than_the_default_on_a_clear_surface():
    """With room to improve (7 samples and the judge beat the default's 5 and none), the chosen one is better."""
    space = search_space(DEFAULTS, ["general"], learned=True)
    candidates = await search(stub([]), space, DEFAULTS, Objective(), budget=12, seed=0)
    best = choose(candidates, Objective())
    assert best.measures.accuracy > candidates[0].measures.accuracy


async def test_a_candidate_that_cannot_run_costs_no_budget():
    """An evaluator answering None (e.g. no learned examples yet) is skipped; the budget still fills."""
    seen: list = []

    async def evaluate(number, params):
        if params["bank"] == LEARNED:
            return None
        seen.append(params)
        return surface(params), []

    space = search_space(DEFAULTS, ["general"], learned=True)
    candidates = await search(evaluate, space, DEFAULTS, Objective(max_p50_ms=8000), budget=4, seed=2)
    assert len(candidates) == 4 and all(c.params["bank"] == HAND for c in candidates)


NO_LIMITS = Objective()


def cand(number, accuracy, p50_ms, cost=0.0, objective=NO_LIMITS) -> Candidate:
    m = Measures(10, accuracy, p50_ms, cost)
    return Candidate(number=number, params={}, measures=m, score=objective.score(m), feasible=objective.feasible(m))


def test_choose_takes_the_most_accurate_within_the_limits():
    """A more accurate candidate over the p50 limit loses to a less accurate one within it."""
    limit = Objective(max_p50_ms=20_000)
    picks = [cand(0, 0.3, 15_000, objective=limit), cand(1, 0.9, 30_000, objective=limit),
             cand(2, 0.8, 19_000, objective=limit)]
    assert choose(picks, limit).number == 2


def test_a_gain_within_the_train_items_sampling_error_does_not_displace_the_default():
    """One item more of 15 (80.0% against 86.7%) is level with the default, so the faster default stays; a gain
    well past the error (80% against 100% on 40 items) wins; equal scores still go to the faster."""
    def on(items, number, accuracy, p50_ms):
        m = Measures(items, accuracy, p50_ms, 0.0)
        return Candidate(number=number, params={}, measures=m, score=m.accuracy, feasible=True)

    assert sampling_error(Measures(15, 0.8, 0, 0), Measures(15, 13 / 15, 0, 0)) > 1 / 15
    assert choose([on(15, 0, 0.8, 42_400), on(15, 3, 13 / 15, 47_700)], NO_LIMITS).number == 0
    assert choose([on(40, 0, 0.8, 42_400), on(40, 3, 1.0, 47_700)], NO_LIMITS).number == 3
    assert choose([on(15, 0, 0.8, 42_400), on(15, 3, 13 / 15, 30_000)], NO_LIMITS).number == 3
    assert choose([on(15, 0, 14 / 15, 42_400), on(15, 3, 1.0, 47_700)], NO_LIMITS).number == 0


def test_the_margin_discounts_accuracy_only_not_a_weighted_objectives_latency():
    """With a weight on latency, 20 points more of accuracy (past the error) still win though the score gap is small."""
    mix = Objective(latency_weight=0.01)
    picks = [cand(0, 0.8, 42_400, objective=mix), cand(1, 1.0, 60_000, objective=mix)]
    picks = [msgspec.structs.replace(c, measures=msgspec.structs.replace(c.measures, items=15)) for c in picks]
    assert choose(picks, mix).number == 1


def test_choose_breaks_ties_by_latency_then_the_default():
    """Equal accuracy: the faster wins; all equal: the default (candidate 0)."""
    assert choose([cand(0, 0.6, 9000), cand(1, 0.6, 5000)], Objective()).number == 1
    assert choose([cand(0, 0.6, 5000), cand(1, 0.6, 5000)], Objective()).number == 0


def test_with_nothing_feasible_the_closest_to_the_limits_is_chosen():
    """If every candidate is over the limit, the least over it is chosen (and stays marked infeasible)."""
    limit = Objective(max_cost_per_item=0.001)
    picks = [cand(0, 0.9, 1, cost=0.01, objective=limit), cand(1, 0.4, 1, cost=0.002, objective=limit)]
    chosen = choose(picks, limit)
    assert chosen.number == 1 and not chosen.feasible


def test_a_weighted_objective_trades_accuracy_for_latency():
    """With a weight on latency, 10 points of accuracy are not worth 20 more seconds at 0.01 per second."""
    mix = Objective(latency_weight=0.01)
    assert choose([cand(0, 0.6, 10_000, objective=mix), cand(1, 0.7, 30_000, objective=mix)], mix).number == 0


def test_the_frontier_drops_dominated_candidates():
    """A candidate slower and no more accurate than another is off the accuracy–latency frontier."""
    picks = [cand(0, 0.5, 10_000), cand(1, 0.7, 20_000), cand(2, 0.6, 25_000), cand(3, 0.5, 12_000)]
    assert [c.number for c in frontier(picks, lambda m: m.p50_ms)] == [0, 1]


def test_measures_follow_the_eval_rows():
    """Accuracy, median latency and cost per item as eval_summary computes them."""
    rows = [{"correct": True, "latency_ms": 1000.0, "cost": 0.002},
            {"correct": False, "latency_ms": 3000.0, "cost": 0.0},
            {"correct": True, "latency_ms": 2000.0, "cost": 0.001},
            {"correct": False, "latency_ms": None, "cost": None}]
    assert measures_of(rows) == Measures(items=4, accuracy=0.5, p50_ms=2000.0, cost_per_item=0.00075)


def test_the_default_candidate_is_what_the_settings_run():
    """Candidate 0 reads the settings and registry: samples, verifiers, roles; experts with limits of their own keep
    them (no max_tokens override)."""
    from stepwise.app.registry import ExpertSpec, Registry
    from stepwise.app.settings import Settings
    from stepwise.evals.search import settings_defaults

    settings = Settings.from_env({"HOME": "/tmp", "STEPWISE_PLAN_SAMPLES": "3", "STEPWISE_VERIFIERS": "llm_judge"})
    registry = Registry(experts=[ExpertSpec(name="general", backend="local", max_tokens=200),
                                 ExpertSpec(name="fast", backend="local", max_tokens=64)], composer="fast")
    defaults = settings_defaults(settings, registry)
    assert (defaults["samples"], defaults["verifiers"], defaults["max_tokens"]) == (3, "llm_judge", None)
    roles = (defaults["planner_expert"], defaults["executor"], defaults["composer_expert"])
    assert roles == ("general", "general", "fast")
    assert config_of(defaults).experts.max_tokens is None
