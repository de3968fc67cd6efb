"""The trace page, GET /runs/{id}, in headless Chromium over real runs of the real app: the caller's plans of
calculator steps (no model call) and an expert step, with SmolLM2 as the expert and the composer."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import msgspec
import pytest

from stepwise.reasoning.report import RunReport
from tests.conftest import LiveServer, settings_for

pytestmark = pytest.mark.model

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def calc(sid: int, expression: str, *deps: int) -> dict:
    return {"id": sid, "kind": "tool", "target": "calculator", "input": {"expression": expression},
            "depends_on": list(deps)}


# A fan-out from step 1 to steps 2–4, a join of them in step 5 (which waits for step 4 through its `$4` alone), and an
# expert step after it: the one step that calls a model.
FAN_OUT_AND_JOIN = {"steps": [calc(1, "6*7"), calc(2, "$1+8", 1), calc(3, "$1*3", 1), calc(4, "$1-2", 1),
                              calc(5, "$2+$3+$4", 2, 3),
                              {"id": 6, "kind": "expert", "target": "general", "input": "Write $5 in words.",
                               "depends_on": [5]}]}
EDGES = {(1, 2), (1, 3), (1, 4), (2, 5), (3, 5), (4, 5), (5, 6)}


def expected_state(step) -> str:
    """The legend's state for a step of the report: finished with every verdict a pass is "ok"."""
    if step.status != "finished":
        return step.status
    return "ok" if all(v.outcome == "pass" for v in step.verdicts) else "retried"


def shown(text: str, value):
    """A value as the detail panel shows it: text as it is, anything else as JSON."""
    return text.strip() == value.strip() if isinstance(value, str) else json.loads(text) == value


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by its chromium-driver, named explicitly so Selenium Manager downloads nothing."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        pytest.fail(f"the trace page tests need Chromium, and {' and '.join(missing)} is missing: "
                    "apt-get install -y chromium chromium-driver (.ci/run does this)", pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--hide-scrollbars"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_window_size(1440, 1000)
    yield driver
    driver.quit()


def open_page(browser, server: LiveServer, run_id) -> None:
    from selenium.webdriver.support.wait import WebDriverWait

    browser.get(f"{server.url}/runs/{run_id}")
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))


def run_plan(server: LiveServer, question: str, plan: dict, **extra) -> RunReport:
    """Runs a plan, then returns its report as GET /v1/runs/{id} reads it back: what the page is checked against."""
    reply = server.client.post("/v1/reason", json={"question": question, "plan": plan, **extra})
    run_id = reply.json()["run_id"]
    return msgspec.json.decode(server.client.get(f"/v1/runs/{run_id}").content, type=RunReport)


def css(browser, selector: str) -> list:
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, selector)


def fill_of(browser, selector: str) -> str:
    (element,) = css(browser, selector)
    return element.value_of_css_property("fill")


@pytest.fixture(scope="module")
def fan_out_run(smollm2_server) -> RunReport:
    """One real run of the fan-out-and-join plan (its composer is SmolLM2), shared by the tests that only read it."""
    report = run_plan(smollm2_server, "What is (6*7+8)+(6*7*3)+(6*7-2)?", FAN_OUT_AND_JOIN)
    assert [s.output for s in report.steps[:5]] == [42, 50, 126, 40,
                                                    216] and report.steps[5].input == "Write 216 in words."
    return report


def test_every_step_dependency_and_interval_of_a_real_run_is_drawn(smollm2_server, browser, fan_out_run):
    """A node per step id, an edge per dependency (depends_on or a $N reference), a timeline bar per step; each
    node's status is the report's."""
    report = fan_out_run
    open_page(browser, smollm2_server, report.run_id)

    nodes = {int(n.get_attribute("data-step")): n for n in css(browser, "#dag-svg .node")}
    assert sorted(nodes) == [s.id for s in report.steps]
    edges = {(int(e.get_attribute("data-from")), int(e.get_attribute("data-to")))
             for e in css(browser, "#dag-svg .edge.dep")}
    assert edges == EDGES and len(css(browser, "#dag-svg .edge.dep")) == len(EDGES)
    bars = sorted(int(b.get_attribute("data-step")) for b in css(browser, "#timeline-svg .step-bar"))
    assert bars == [s.id for s in report.steps]
    for step in report.steps:
        assert nodes[step.id].get_attribute("data-status") == step.status == "finished"
        assert nodes[step.id].get_attribute("data-state") == expected_state(step)
    assert browser.find_element("id", "run-status").text == report.status


def test_node_colours_follow_status_and_match_the_legend(smollm2_server, browser):
    """A finished step, a failed one and one never started get the legend's three different colours."""
    # Step 2 divides by zero: the calculator refuses, the repair the engine then asks for is refused by the budget
    # (no model call allowed), so the run fails with step 3 never started.
    plan = {"steps": [calc(1, "6*7"), calc(2, "$1/0", 1), calc(3, "$1+$2", 1, 2)]}
    report = run_plan(smollm2_server, "What is 6*7/0?", plan, budget={"max_model_calls": 0})
    assert report.status == "failed" and [(s.id, s.status) for s in report.steps] == [(1, "finished"), (2, "failed")]
    open_page(browser, smollm2_server, report.run_id)

    states = {int(n.get_attribute("data-step")): n.get_attribute("data-state") for n in css(browser, "#dag-svg .node")}
    assert states == {1: "ok", 2: "failed", 3: "pending"}
    fills = {sid: fill_of(browser, f'#dag-svg .node[data-step="{sid}"] .node-box') for sid in states}
    for sid, state in states.items():
        assert fills[sid] == fill_of(browser, f"#legend .swatch.state-{state}")
    assert len(set(fills.values())) == 3
    strokes = {css(browser, f'#dag-svg .node[data-step="{sid}"] .node-box')[0].value_of_css_property("stroke")
               for sid in states}
    assert len(strokes) == 3
    css(browser, '#dag-svg .node[data-step="2"]')[0].click()
    assert "division by zero" in css(browser, '#detail [data-field="error"]')[0].text
    assert sorted(int(b.get_attribute("data-step")) for b in css(browser, "#timeline-svg .step-bar")) == [1, 2]


async def test_clicking_a_node_or_a_bar_shows_the_steps_input_output_verdicts_and_calls(smollm2_server, browser,
                                                                                        fan_out_run, pg):
    """The detail panel shows the step's input as it ran, its output, its verdicts, and its tool or model calls."""
    report = fan_out_run
    open_page(browser, smollm2_server, report.run_id)
    for step in report.steps:
        css(browser, f'#dag-svg .node[data-step="{step.id}"]')[0].click()
        assert browser.find_element("css selector", "#detail h3").text.startswith(f"Step {step.id}")
        assert shown(css(browser, '#detail [data-field="input"]')[0].text, step.input)
        assert shown(css(browser, '#detail [data-field="output"]')[0].text, step.output)
        verdicts = css(browser, '#detail [data-field="verdicts"] tr')
        assert [row.text.split()[0] for row in verdicts] == [v.verifier for v in step.verdicts]
        if step.kind == "tool":
            assert step.input["expression"] in css(browser, '#detail [data-field="tool-calls"]')[0].text
    assert report.steps[4].input == {"expression": "50+126+40"}  # $2+$3+$4 as it ran

    calls = await pg.fetch("SELECT purpose, expert FROM model_calls WHERE run_id = $1 AND step_id = 6 ORDER BY at",
                           report.run_id)
    assert calls and calls[0]["purpose"] == "expert"
    css(browser, '#dag-svg .node[data-step="6"]')[0].click()
    rows = css(browser, '#detail [data-field="model-calls"] tr')[1:]
    assert [row.text.split()[:2] for row in rows] == [[c["purpose"], c["expert"]] for c in calls]
    assert len(css(browser, '#timeline-svg .mbar[data-step="6"]')) == len(calls)
    css(browser, '#timeline-svg .step-bar[data-step="3"]')[0].click()
    assert json.loads(css(browser, '#detail [data-field="output"]')[0].text) == 126
    assert "selected" in css(browser, '#dag-svg .node[data-step="3"]')[0].get_attribute("class")


def test_the_page_loads_nothing_but_itself(smollm2_server, browser, fan_out_run):
    """No script, style, font or image comes from anywhere: the browser fetched no resource besides the page."""
    open_page(browser, smollm2_server, fan_out_run.run_id)
    assert browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)") == []
    fetching = "return document.querySelectorAll('script[src], link[rel=stylesheet], img').length"
    assert browser.execute_script(fetching) == 0


def test_markup_in_a_run_is_shown_as_text(smollm2_server, browser):
    """A question that closes the data's <script> element cannot inject one: it is shown as the text it is."""
    question = "</script><script>document.title = 'injected'</script> <b>1+1</b>?"
    report = run_plan(smollm2_server, question, {"steps": [calc(1, "1+1")]}, budget={"max_model_calls": 0})
    open_page(browser, smollm2_server, report.run_id)
    assert browser.find_element("id", "question").text == question
    assert browser.execute_script("return document.scripts.length") == 2 and browser.title != "injected"


def test_unknown_and_malformed_run_ids_get_html_404_and_400(smollm2_server):
    """An unknown id is a 404 page, a malformed one a 400 page, both naming the id."""
    unknown = uuid.uuid4()
    reply = smollm2_server.client.get(f"/runs/{unknown}")
    assert (reply.status_code == 404 and reply.headers["content-type"].startswith("text/html")
            and str(unknown) in reply.text)
    reply = smollm2_server.client.get("/runs/not-a-run")
    assert (reply.status_code == 400 and reply.headers["content-type"].startswith("text/html")
            and "not-a-run" in reply.text)


@pytest.fixture(scope="module")
def slow_tools_server(database_url):
    """The app with the test fixtures' tools, among them `echo_later`, which pauses: runs that take seconds."""
    settings = settings_for(database_url, "smollm2", deadline_s=120.0, tool_modules=("tests.fixtures.user_tools",))
    with LiveServer(settings) as server:
        yield server


def test_a_running_runs_page_redraws_until_the_run_ends(slow_tools_server, browser):
    """Opened while step 1 runs, the page shows it running, then redraws by itself as the steps finish."""
    from selenium.webdriver.support.wait import WebDriverWait

    echo = [{"id": i, "kind": "tool", "target": "echo_later", "input": {"text": f"hop {i}", "seconds": 2},
             "depends_on": [i - 1] if i > 1 else []} for i in (1, 2, 3)]
    runtime = slow_tools_server.app.state.runtime
    body = {"question": "Echo three hops", "plan": {"steps": echo}}
    post = threading.Thread(target=slow_tools_server.client.post, args=("/v1/reason",), kwargs={"json": body})
    post.start()
    try:
        deadline = time.monotonic() + 30
        while not runtime.active and time.monotonic() < deadline:
            time.sleep(0.05)
        assert runtime.active, "the run did not start within 30 s"
        (run_id,) = runtime.active
        open_page(browser, slow_tools_server, run_id)
        assert browser.find_element("id", "run-status").text == "running"
        first = [n.get_attribute("data-state") for n in css(browser, "#dag-svg .node")]
        # A chain of three 2-second steps: whichever is running, those before it are done and those after not started.
        assert first.count("running") == 1 and first == sorted(first, key=["ok", "running", "pending"].index), first
        WebDriverWait(browser, 90).until(lambda d: d.find_element("id", "run-status").text != "running")
    finally:
        post.join(timeout=120)
    states = [n.get_attribute("data-state") for n in css(browser, "#dag-svg .node")]
    assert states == ["ok", "ok", "ok"]
    report = msgspec.json.decode(slow_tools_server.client.get(f"/v1/runs/{run_id}").content, type=RunReport)
    assert browser.find_element("id", "run-status").text == report.status
