"""`stepwise optimize`'s report: report.md (the objective, every candidate, the chosen one and the held-out runs
beside the default) and frontier.png (accuracy against p50 latency and against cost per item, each candidate a
point, the frontier drawn, the default and the chosen one marked), drawn with matplotlib as `stepwise eval report`
draws its plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stepwise.evals.search import Candidate, Objective, changed, frontier, sampling_error


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _s(ms: float) -> str:
    return f"{ms / 1000:.1f} s"


def _limits(objective: Objective) -> str:
    parts = ["maximise accuracy"]
    if objective.latency_weight:
        parts.append(f"less {objective.latency_weight:g} per second of p50")
    if objective.cost_weight:
        parts.append(f"less {objective.cost_weight:g} per unit of cost per item")
    if objective.max_p50_ms is not None:
        parts.append(f"p50 ≤ {_s(objective.max_p50_ms)}")
    if objective.max_cost_per_item is not None:
        parts.append(f"cost per item ≤ {objective.max_cost_per_item:g}")
    return ", ".join(parts)


def markdown(optimizer: Any, objective: Objective, candidates: Sequence[Candidate], chosen: Candidate,
             heldout: Sequence[Any], images: Sequence[Path]) -> str:
    from stepwise.evals.optimize import BANK_FILE, CONFIG_FILE

    on_latency = {c.number for c in frontier(candidates, lambda m: m.p50_ms)}
    on_cost = {c.number for c in frontier(candidates, lambda m: m.cost_per_item)}
    lines = [
        f"# stepwise optimize run {optimizer.optimize_run_id}: {optimizer.dataset.name}", "",
        f"Objective: {_limits(objective)}. {len(optimizer.train)} train items, {len(optimizer.heldout)} held out; "
        f"{len(candidates)} candidates, each an eval run (two, one per half, when its examples were learned).",
        f"Demonstrations learned from the train runs: {len(optimizer.demos)} "
        f"(verified correct items; `{BANK_FILE}` holds them after the {len(optimizer.hand.examples)} hand-written "
        f"examples).", "",
        "## Candidates (train items)", "",
        "| # | switches (against the default) | accuracy | p50 | cost/item | score | within limits | frontier "
        "| eval runs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in candidates:
        m = c.measures
        marks = ("latency" if c.number in on_latency else "") + (" cost" if c.number in on_cost else "")
        name = f"**{c.number}** (chosen)" if c.number == chosen.number else str(c.number)
        lines.append(f"| {name} | {changed(c.params, candidates[0].params) or 'default'} | {_pct(m.accuracy)} | "
                     f"{_s(m.p50_ms)} | {m.cost_per_item:.6f} | {c.score:.3f} | {'yes' if c.feasible else 'no'} | "
                     f"{marks.strip() or '–'} | {', '.join(map(str, c.eval_run_ids))} |")
    lines += ["", f"Chosen: candidate {chosen.number} ({changed(chosen.params, candidates[0].params) or 'the default'})"
              + ("" if chosen.feasible else ", though no candidate met the limits: the closest one") + f". "
              f"Its configuration: `{CONFIG_FILE}`."
              + (" An accuracy above the default's by no more than the train items' sampling error counts as level "
                 "with it; p50, then cost, decide between level candidates"
                 + (f" (±{100 * sampling_error(candidates[0].measures, chosen.measures):.1f} points between the "
                    "default and the chosen one)" if chosen.feasible and chosen.number != 0 else "") + "."
                 if candidates[0].feasible else ""), ""]
    lines += heldout_lines(heldout)
    lines += [f"![frontiers]({p.name})" for p in images]
    lines += ["", "In SQL: `SELECT * FROM optimize_candidate_scores WHERE optimize_run_id = "
                  f"{optimizer.optimize_run_id}`, and `optimize_frontier` for the candidates on a frontier."]
    return "\n".join(lines) + "\n"


def heldout_lines(heldout: Sequence[Any]) -> list[str]:
    """The held-out table (chosen, default, and any other run), and chosen against default."""
    if not heldout:
        return []
    lines = ["## Held-out items", "", "| configuration | accuracy | p50 | cost/item | eval run |",
             "|---|---|---|---|---|"]
    lines += [f"| {h.label} | {_pct(h.measures.accuracy)} | {_s(h.measures.p50_ms)} | "
              f"{h.measures.cost_per_item:.6f} | {h.eval_run_id} |" for h in heldout]
    chosen, default = heldout[0], heldout[1]
    if chosen.eval_run_id == default.eval_run_id:
        return [*lines, "", "The chosen configuration is the default one: one run of the held-out items stands for "
                            "both.", ""]
    best, base = chosen.measures, default.measures
    return [*lines, "", f"Chosen against default on the same {best.items} held-out items: "
                        f"{100 * (best.accuracy - base.accuracy):+.1f} accuracy points, "
                        f"p50 {_ratio(best.p50_ms, base.p50_ms)}, "
                        f"cost per item {_ratio(best.cost_per_item, base.cost_per_item)}. "
                        f"`stepwise eval compare {default.eval_run_id} {chosen.eval_run_id}` lists the items that "
                        "flipped.", ""]


def _ratio(new: float, old: float) -> str:
    if old == 0:
        return "the same (0)" if new == 0 else f"{new:g} against 0"
    return f"×{new / old:.2f}"


def plot(candidates: Sequence[Candidate], chosen: Candidate, out: Path, title: str) -> Path:
    """One PNG, two panels: accuracy against p50 latency and against cost per item."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    panels = [("p50 latency (s)", lambda m: m.p50_ms / 1000),
              ("cost per item (registry prices)", lambda m: m.cost_per_item)]
    for ax, (label, x_of) in zip(axes, panels, strict=True):
        xs = [x_of(c.measures) for c in candidates]
        ys = [100 * c.measures.accuracy for c in candidates]
        ax.scatter(xs, ys, color="tab:blue", alpha=0.7, label="candidate")
        for c, x, y in zip(candidates, xs, ys, strict=True):
            ax.annotate(str(c.number), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        edge = frontier(candidates, lambda m, f=x_of: f(m))
        ax.step([x_of(c.measures) for c in edge], [100 * c.measures.accuracy for c in edge], where="post",
                color="tab:green", label="frontier")
        ax.scatter([x_of(candidates[0].measures)], [100 * candidates[0].measures.accuracy], marker="s", s=90,
                   facecolors="none", edgecolors="black", label="default")
        ax.scatter([x_of(chosen.measures)], [100 * chosen.measures.accuracy], marker="*", s=220, color="tab:red",
                   label="chosen")
        ax.set_xlabel(label)
        ax.set_ylabel("accuracy (%)")
        ax.margins(0.15)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    from stepwise.evals.optimize import PLOT_FILE

    path = out / PLOT_FILE
    fig.savefig(path)
    plt.close(fig)
    return path


def write(out: Path, optimizer: Any, objective: Objective, candidates: Sequence[Candidate], chosen: Candidate,
          heldout: Sequence[Any]) -> list[Path]:
    from stepwise.evals.optimize import REPORT_FILE

    image = plot(candidates, chosen, out, f"stepwise optimize {optimizer.optimize_run_id} · {optimizer.dataset.name} "
                                          f"· train items")
    report = out / REPORT_FILE
    report.write_text(markdown(optimizer, objective, candidates, chosen, heldout, [image]))
    return [report, image]

