"""The HTTP API over real HTTP, with the real app, Postgres and model (SmolLM2: fast, weak)."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from stepwise.reasoning.report import RunReport

pytestmark = pytest.mark.model


def test_health_reports_the_model_and_the_trace(smollm2_server):
    """GET /health answers once the database and the model are up."""
    reply = smollm2_server.client.get("/health")
    assert reply.status_code == 200
    body = reply.json()
    assert body["status"] == "ok" and body["model"] == "smollm2" and body["trace"]["dropped"] == 0


def test_a_question_of_the_wrong_type_gets_a_400_naming_the_field(smollm2_server):
    """{"question": 5} is refused with the field named."""
    reply = smollm2_server.client.post("/v1/reason", json={"question": 5})
    assert reply.status_code == 400
    assert "question" in reply.text and "str" in reply.text


def test_an_unknown_field_gets_a_400_naming_it(smollm2_server):
    """A field the API does not know is refused, named, rather than ignored."""
    reply = smollm2_server.client.post("/v1/reason", json={"question": "1+1?", "temperature": 0.5})
    assert reply.status_code == 400
    assert "temperature" in reply.text


def test_a_missing_question_and_a_bad_deadline_get_400s(smollm2_server):
    """No question, or a non-positive deadline, is refused naming the field."""
    missing = smollm2_server.client.post("/v1/reason", json={})
    assert missing.status_code == 400 and "question" in missing.text
    negative = smollm2_server.client.post("/v1/reason", json={"question": "1+1?", "deadline_s": -1})
    assert negative.status_code == 400 and "deadline_s" in negative.text


def test_an_unknown_run_gets_a_404(smollm2_server):
    """GET /v1/runs/{id} for an id never seen is a 404 naming the id."""
    run_id = uuid.uuid4()
    reply = smollm2_server.client.get(f"/v1/runs/{run_id}")
    assert reply.status_code == 404 and str(run_id) in reply.text
    malformed = smollm2_server.client.get("/v1/runs/not-a-uuid")
    assert malformed.status_code == 400 and "run_id" in malformed.text


async def test_a_run_is_answered_and_read_back_identically_from_postgres(smollm2_server, pg):
    """POST /v1/reason returns the run's report; its rows land; GET /v1/runs/{id} folds the same report back
    from Postgres. (SmolLM2 may plan badly: a failed run must be reported and stored just as completely.)"""
    # The deadline only bounds a hung run: SmolLM2's five samples took more than 60 s beside another suite.
    reply = smollm2_server.client.post("/v1/reason", json={"question": "What is 12*12?", "deadline_s": 600})
    report = msgspec.json.decode(reply.content, type=RunReport)
    assert report.status in ("finished", "failed")
    assert (reply.status_code == 200) == (report.status == "finished")
    assert report.usage.model_calls >= 1 and report.plan is not None
    again = smollm2_server.client.get(f"/v1/runs/{report.run_id}")
    assert again.status_code == 200
    stored = msgspec.json.decode(again.content, type=RunReport)
    assert stored == report, {name: (live, getattr(stored, name)) for name in report.__struct_fields__
                              if (live := getattr(report, name)) != getattr(stored, name)}
    run = await pg.fetchrow("SELECT * FROM runs WHERE run_id = $1", report.run_id)
    assert run["status"] == report.status and run["model_calls"] == report.usage.model_calls
    assert await pg.fetchval("SELECT count(*) FROM model_calls WHERE run_id = $1",
                             report.run_id) == report.usage.model_calls
    assert await pg.fetchval("SELECT count(*) FROM steps WHERE run_id = $1", report.run_id) == len(report.steps)


def test_experts_are_listed_with_health_and_load(smollm2_server):
    """GET /v1/experts shows the embedded expert healthy, idle, with its limit and its count of constraint violations
    (other tests on this shared server may have caused some; test_openai_api checks that one counts)."""
    (expert,) = smollm2_server.client.get("/v1/experts").json()
    assert ((expert["name"], expert["backend"], expert["provider"], expert["healthy"])
            == ("general", "local", "llama.cpp", True))
    assert expert["in_flight"] == 0 and expert["max_concurrency"] >= 1 and isinstance(expert["violations"], int)


def test_the_cli_lists_a_running_servers_experts(smollm2_server, repo_root):
    """`stepwise experts --server URL` prints the live table."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "stepwise.app.cli", "experts", "--server", smollm2_server.url],
                          capture_output=True, text=True, timeout=60, cwd=repo_root)
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.splitlines()
    assert header.split()[:4] == ["expert", "backend", "healthy", "load"]
    assert row.split()[:4] == ["general", "local", "true", f"0/{smollm2_server.app.state.runtime.settings.parallel}"]
