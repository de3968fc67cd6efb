"""Reading eval runs back: a summary line, the deltas between two runs, and a report (markdown plus PNG plots);
accuracy per kind of question wherever a run's items have kinds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stepwise.evals.store import Summary


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def summary_line(s: Summary) -> str:
    return (f"eval run {s.eval_run_id}: {s.dataset} · {s.mode} · {s.model} · {s.items} item(s) · "
            f"accuracy {_pct(s.accuracy)} · "
            f"latency p50 {_ms(s.p50_latency_ms)} p95 {_ms(s.p95_latency_ms)} · tokens/item {_num(s.avg_tokens)} "
            f"({_num(s.avg_output_tokens)} out) · cost {s.cost:.6f} · errors {s.errors} · "
            f"invalid plans {s.invalid_plans} · "
            f"unparseable outputs {s.unparseable_outputs}" + (f"\n  by kind: {kinds_text(s)}" if s.kinds else ""))


def kinds_text(s: Summary) -> str:
    """Accuracy per kind of question, e.g. `arithmetic 9/16 (56.2%) · sql 4/16 (25.0%)`."""
    return " · ".join(f"{k.kind} {k.correct}/{k.items} ({_pct(k.accuracy)})" for k in s.kinds)


def _delta(a: float | None, b: float | None, fmt) -> str:
    if a is None or b is None:
        return "–"
    ratio = f" (×{b / a:.2f})" if a else ""
    return f"{'+' if b - a >= 0 else '−'}{fmt(abs(b - a))}{ratio}"


def compare_text(a: Summary, b: Summary, better: list[str], worse: list[str]) -> str:
    """B against A (A the baseline): each number, then B − A."""
    rows = [
        ("accuracy", _pct(a.accuracy), _pct(b.accuracy),
         "–" if a.accuracy is None or b.accuracy is None else f"{100 * (b.accuracy - a.accuracy):+.1f} points"),
        ("latency p50", _ms(a.p50_latency_ms), _ms(b.p50_latency_ms), _delta(a.p50_latency_ms, b.p50_latency_ms, _ms)),
        ("latency p95", _ms(a.p95_latency_ms), _ms(b.p95_latency_ms), _delta(a.p95_latency_ms, b.p95_latency_ms, _ms)),
        ("tokens/item", _num(a.avg_tokens), _num(b.avg_tokens), _delta(a.avg_tokens, b.avg_tokens, _num)),
        ("model calls/item", _num(a.avg_model_calls), _num(b.avg_model_calls),
         _delta(a.avg_model_calls, b.avg_model_calls, _num)),
        ("cost", f"{a.cost:.6f}", f"{b.cost:.6f}", f"{b.cost - a.cost:+.6f}"),
        ("errors", str(a.errors), str(b.errors), f"{b.errors - a.errors:+d}"),
        ("invalid plans", str(a.invalid_plans), str(b.invalid_plans), f"{b.invalid_plans - a.invalid_plans:+d}"),
        ("unparseable", str(a.unparseable_outputs), str(b.unparseable_outputs),
         f"{b.unparseable_outputs - a.unparseable_outputs:+d}"),
    ]
    a_kinds, b_kinds = {k.kind: k for k in a.kinds}, {k.kind: k for k in b.kinds}
    for kind in sorted(a_kinds.keys() | b_kinds.keys()):
        x, y = a_kinds.get(kind), b_kinds.get(kind)
        rows.append((f"accuracy {kind}", _pct(x and x.accuracy), _pct(y and y.accuracy),
                     f"{100 * (y.accuracy - x.accuracy):+.1f} points" if x and y else "–"))
    head = (f"A = eval run {a.eval_run_id} ({a.dataset}, {a.mode}, {a.items} items)   "
            f"B = eval run {b.eval_run_id} ({b.dataset}, {b.mode}, {b.items} items)")
    lines = [head, f"{'':<18} {'A':>12} {'B':>12}   B − A"]
    lines += [f"{name:<18} {x:>12} {y:>12}   {d}" for name, x, y, d in rows]
    lines.append(f"items B gets right that A got wrong: {len(better)}{': ' + ', '.join(better[:10]) if better else ''}")
    lines.append(f"items B gets wrong that A got right: {len(worse)}{': ' + ', '.join(worse[:10]) if worse else ''}")
    return "\n".join(lines)


def _label(s: Summary) -> str:
    return f"{s.mode}\n#{s.eval_run_id}"


def plot(runs: list[Summary], out: Path) -> list[Path]:
    """One PNG per measure (accuracy, latency p50/p95, tokens per item, cost), a bar per run, labelled by mode."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers
    from matplotlib import pyplot as plt

    labels = [_label(s) for s in runs]
    x = list(range(len(runs)))
    written = []

    def figure(name: str, title: str, ylabel: str, series: list[tuple[str, list[float]]]) -> None:
        fig, ax = plt.subplots(figsize=(max(4.0, 1.4 * len(runs) + 2), 3.6), dpi=100)
        width = 0.8 / len(series)
        for i, (legend, values) in enumerate(series):
            offset = (i - (len(series) - 1) / 2) * width
            bars = ax.bar([p + offset for p in x], values, width, label=legend)
            ax.bar_label(bars, fmt="%.3g", fontsize=8)
        ax.set_xticks(x, labels)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        if len(series) > 1:
            ax.legend()
        ax.margins(y=0.15)
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)

    datasets = ", ".join(sorted({s.dataset for s in runs}))
    figure("accuracy", f"Accuracy · {datasets}", "% correct", [("accuracy", [100 * (s.accuracy or 0) for s in runs])])
    figure("latency", f"Latency per item · {datasets}", "seconds", [
        ("p50", [(s.p50_latency_ms or 0) / 1000 for s in runs]),
        ("p95", [(s.p95_latency_ms or 0) / 1000 for s in runs])])
    figure("tokens", f"Tokens per item · {datasets}", "tokens", [
        ("input + output", [s.avg_tokens or 0 for s in runs]), ("output", [s.avg_output_tokens or 0 for s in runs])])
    figure("cost", f"Cost · {datasets}", "cost (registry prices)", [("cost", [s.cost for s in runs])])
    return written


def markdown(runs: list[Summary], failures: dict[int, list[dict[str, Any]]], images: list[Path]) -> str:
    lines = ["# Eval report", "",
             "| run | dataset | mode | model | items | accuracy | p50 | p95 | tokens/item | calls/item | cost | errors "
             "| invalid plans | unparseable |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in runs:
        lines.append(f"| {s.eval_run_id} | {s.dataset} | {s.mode} | {s.model} | {s.items} | {_pct(s.accuracy)} | "
                     f"{_ms(s.p50_latency_ms)} | "
                     f"{_ms(s.p95_latency_ms)} | {_num(s.avg_tokens)} | {_num(s.avg_model_calls)} | {s.cost:.6f} | "
                     f"{s.errors} "
                     f"| {s.invalid_plans} | {s.unparseable_outputs} |")
    with_kinds = [s for s in runs if s.kinds]
    if with_kinds:
        lines += ["", "Accuracy per kind of question:", "", "| run | mode | kind | items | correct | accuracy |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {s.eval_run_id} | {s.mode} | {k.kind} | {k.items} | {k.correct} | {_pct(k.accuracy)} |"
                  for s in with_kinds for k in s.kinds]
    lines += [""] + [f"![{p.stem}]({p.name})" for p in images]
    for s in runs:
        wrong = failures.get(s.eval_run_id, [])
        lines += ["", f"## Run {s.eval_run_id} ({s.mode}): items scored wrong ({len(wrong)} shown)", ""]
        if not wrong:
            lines.append("None.")
            continue
        lines += ["| item | expected | predicted | why | trace run |", "|---|---|---|---|---|"]
        for f in wrong:
            why = f["error"] or f["score_note"] or ""
            lines.append(f"| {f['item_id']} | {_cell(f['expected'])} | {_cell(f['predicted'])} | {_cell(why)} | "
                         f"{f['run_id'] or '–'} |")
    lines += ["", "Each trace: `SELECT * FROM steps WHERE run_id = '…'` (or GET /v1/runs/{run_id})."]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 120 else text[:117] + "…"
