"""The expert registry file: read, checked with errors naming the file and field, and the GPU launch plan."""

from __future__ import annotations

import pytest

from stepwise.app.experts import launch_plan
from stepwise.app.registry import RegistryError, default_registry, load_registry
from stepwise.app.settings import Settings


def write(tmp_path, text: str):
    path = tmp_path / "experts.toml"
    path.write_text(text)
    return path


def test_the_embedded_default_is_one_local_expert():
    """With no file configured, the configured local model is the only (and default) expert."""
    registry = default_registry(Settings.from_env({"HOME": "/tmp", "STEPWISE_MODEL": "smollm2"}))
    (spec,) = registry.experts
    assert (spec.name, spec.backend, spec.model, registry.default_name) == ("general", "local", "smollm2", "general")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[experts]]\nname = "a"\nbackend = "vllm"\n', "Invalid enum value 'vllm' - at `\\$.experts\\[0\\].backend`"),
        ('[[experts]]\nname = "a"\nbackend = "local"\ncolour = 1\n', "unknown field `colour`"),
        ('[[experts]]\nname = "a"\nbackend = "sglang"\n', "backend 'sglang' needs a `url`"),
        ('default = "b"\n[[experts]]\nname = "a"\nbackend = "local"\n', "`default` = 'b' is not an expert"),
        ('[[experts]]\nname = "a"\nbackend = "local"\n[[experts]]\nname = "a"\nbackend = "local"\n',
         "duplicate expert names"),
        ('[[experts]]\nname = "a"\nbackend = "local"\nmodel_path = "/m"\n', "`model_path` is for SGLang experts"),
        ("experts = [", "experts.toml"),
    ],
)
def test_a_bad_registry_is_refused_naming_the_problem(tmp_path, text, message):
    """Unknown backends and fields, missing urls, dangling defaults and duplicates are refused before startup."""
    with pytest.raises(RegistryError, match=message):
        load_registry(write(tmp_path, text))


def test_the_launch_plan_puts_workers_behind_a_router(repo_root):
    """`stepwise experts launch` starts SGLang with cache reports, metrics and llguidance (whose Lark grammars programs
    and function calls are written in); two workers get a router."""
    registry = load_registry(repo_root / "tests" / "fixtures" / "gpu_experts.toml")
    plan = launch_plan(registry, python="python")
    assert [item.expert for item in plan] == ["general#1", "general#2", "general#router", "coder"]
    worker = plan[0].argv
    assert worker[:3] == ["python", "-m", "sglang.launch_server"]
    assert (worker[worker.index("--port") + 1] == "30001"
            and worker[worker.index("--model-path") + 1] == "/models/Qwen2.5-7B-Instruct")
    assert {"--enable-cache-report",
            "--enable-metrics"} <= set(worker) and worker[worker.index("--grammar-backend") + 1] == "llguidance"
    router = plan[2].argv
    assert router[:3] == ["python", "-m", "sglang_router.launch_router"]
    assert router[router.index("--worker-urls") + 1:] == ["http://127.0.0.1:30001", "http://127.0.0.1:30002"]
    assert router[router.index("--port") + 1] == "30000"
    coder = plan[3].argv
    assert coder[coder.index("--tool-call-parser") + 1] == "qwen25" and coder[coder.index("--tp-size") + 1] == "2"
