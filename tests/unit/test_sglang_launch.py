"""`stepwise experts launch` in front of SGLang workers: the router it starts is waited for until it has a worker,
and two routers on one host do not fight over the metrics port."""

from __future__ import annotations

from stepwise.app.experts import launch_plan
from stepwise.app.registry import load_registry


def test_the_router_is_ready_when_it_has_a_worker_and_has_a_metrics_port_of_its_own(tmp_path):
    """The router is waited for on /readiness (its /health is 200 before any worker is registered), and each router
    exports metrics on the port after its workers', so two experts with workers on one host both start."""
    registry = tmp_path / "experts.toml"
    registry.write_text("""
default = "a"
[[experts]]
name = "a"
backend = "sglang"
url = "http://127.0.0.1:30000"
model = "m"
model_path = "/models/m"
workers = 2
[[experts]]
name = "b"
backend = "sglang"
url = "http://127.0.0.1:31000"
model = "m"
model_path = "/models/m"
workers = 3
""")
    routers = [item for item in launch_plan(load_registry(registry), python="python")
               if item.expert.endswith("#router")]
    assert [r.health_url for r in routers] == ["http://127.0.0.1:30000/readiness", "http://127.0.0.1:31000/readiness"]
    metrics = [r.argv[r.argv.index("--prometheus-port") + 1] for r in routers]
    assert metrics == ["30003", "31004"]
