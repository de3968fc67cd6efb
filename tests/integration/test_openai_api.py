"""The OpenAI-compatible surface, driven by the real `openai` client and LangChain's ChatOpenAI against the running
server (SmolLM2 as the expert, so these test the plumbing; the Qwen tests cover `model="stepwise"` end to end)."""

from __future__ import annotations

import json

import openai
import pytest

pytestmark = pytest.mark.model

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": "string", "enum": ["c", "f"]}},
                   "required": ["city", "unit"]},
}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Current local time in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}}


@pytest.fixture
def client(smollm2_server):
    with openai.OpenAI(base_url=smollm2_server.url + "/v1", api_key="unused", max_retries=0) as c:
        yield c


def test_models_lists_stepwise_and_each_expert(client):
    """GET /v1/models: the whole system as `stepwise`, then every expert by name."""
    assert [m.id for m in client.models.list()] == ["stepwise", "general"]


async def test_an_expert_answers_directly_with_usage_and_the_run_id(client, smollm2_server, pg):
    """model = an expert's name: one model call, a chat.completion with usage; its id is the recorded run's."""
    raw = client.chat.completions.with_raw_response.create(
        model="general", messages=[{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "Name a colour."}], max_tokens=8)
    completion = raw.parse()
    assert raw.headers["x-stepwise-run-id"] == completion.id
    assert completion.object == "chat.completion" and completion.choices[0].message.content
    assert completion.usage.prompt_tokens > 0 and 0 < completion.usage.completion_tokens <= 8
    assert completion.choices[0].finish_reason == ("length" if completion.usage.completion_tokens == 8 else "stop")
    smollm2_server.client.get(f"/v1/runs/{completion.id}")  # flushes the trace
    row = await pg.fetchrow("SELECT status, model_calls, output_tokens FROM runs WHERE run_id = $1::uuid",
                            completion.id)
    assert dict(row) == {"status": "finished", "model_calls": 1, "output_tokens": completion.usage.completion_tokens}


def test_an_expert_streams_its_text_as_chunks(client):
    """stream=True: chat.completion.chunk events whose deltas join into the text, then a finish reason and usage."""
    chunks = list(client.chat.completions.create(model="general",
                                                 messages=[{"role": "user", "content": "Count from one to five."}],
                                                 max_tokens=24, stream=True, stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" for c in chunks) and len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    pieces = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert text.strip() and len(pieces) > 1  # token by token, not one piece at the end
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    cut_off = chunks[-1].usage.completion_tokens == 24
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == ("length" if cut_off else "stop")


@pytest.mark.parametrize("parallel", [True, False])
def test_tool_calls_are_decoded_under_the_callers_schemas(client, parallel):
    """tool_choice "required": the reply is one or more calls whose arguments are valid under the named function's
    parameters (never malformed); without parallel_tool_calls, exactly one."""
    completion = client.chat.completions.create(
        model="stepwise",
        messages=[{"role": "user", "content": "What is the weather in Paris and in Rome, in celsius?"}],
        tools=[WEATHER, TIME], tool_choice="required", parallel_tool_calls=parallel, max_tokens=200)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    if not parallel:
        assert len(choice.message.tool_calls) == 1
    for call in choice.message.tool_calls:
        args = json.loads(call.function.arguments)
        assert call.id.startswith("call_") and call.type == "function"
        if call.function.name == "get_weather":
            assert set(args) == {"city", "unit"} and args["unit"] in ("c", "f") and isinstance(args["city"], str)
        else:
            assert call.function.name == "get_time" and set(args) == {"city"}


def test_a_named_tool_choice_forces_that_function(client):
    """tool_choice {"type": "function", "function": {"name": …}}: every call is of that function."""
    completion = client.chat.completions.create(
        model="general", messages=[{"role": "user", "content": "Weather and time in Oslo?"}], tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_time"}}, parallel_tool_calls=False, max_tokens=64)
    assert {c.function.name for c in completion.choices[0].message.tool_calls} == {"get_time"}


def test_tool_calls_stream_as_one_chunk_with_their_index(client):
    """Streaming with tools: the calls arrive as tool_calls deltas the client accumulates, finish reason tool_calls."""
    chunks = list(client.chat.completions.create(
        model="stepwise", messages=[{"role": "user", "content": "Time in Lima?"}], tools=[TIME], tool_choice="required",
        parallel_tool_calls=False, stream=True, max_tokens=48))
    deltas = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas and all(d.function.name == "get_time" for d in deltas)
    assert [d.index for d in deltas] == list(range(len(deltas)))
    assert all(isinstance(json.loads(d.function.arguments)["city"], str) for d in deltas)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_langchain_chat_openai_talks_to_an_expert_and_binds_tools(smollm2_server):
    """LangChain's ChatOpenAI pointed at the server: plain invoke, and bind_tools with a forced tool."""
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="general", base_url=smollm2_server.url + "/v1", api_key="unused", max_tokens=16,
                     max_retries=0)
    reply = llm.invoke("Say hi.")
    assert isinstance(reply.content, str) and reply.content and reply.response_metadata["model_name"] == "general"
    tooled = llm.bind_tools([WEATHER], tool_choice="get_weather")
    call = tooled.invoke("Weather in Kyiv in fahrenheit?", max_tokens=64).tool_calls[0]
    assert call["name"] == "get_weather" and set(call["args"]) == {"city", "unit"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": "stepwise", "messages": []}, "messages"),
        ({"model": "stepwise", "messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"model": "stepwise", "messages": [{"role": "user", "content": "hi"}], "tool_choice": "required"},
         "tool_choice"),
        ({"model": "stepwise", "messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER],
          "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"model": "stepwise", "messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER, WEATHER]},
         "function names must be unique"),
    ],
)
def test_a_bad_chat_request_is_a_400_naming_the_field(smollm2_server, body, field):
    """Unknown model, no messages, a bad role, or a tool choice without that tool: 400 with the field named."""
    reply = smollm2_server.client.post("/v1/chat/completions", json=body)
    assert reply.status_code == 400 and field in reply.text


def test_a_failed_run_is_an_openai_style_error_with_the_run_id(client, smollm2_server):
    """A run that fails (a tool call cut off by max_tokens=2 cannot be complete JSON) comes back as OpenAI's error
    object, with the status that says how it failed and the run's id; the expert's violations count it."""
    (before,) = smollm2_server.client.get("/v1/experts").json()
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(model="general", messages=[{"role": "user", "content": "Time in Quito?"}],
                                       tools=[TIME], tool_choice="required", max_tokens=2)
    error = failed.value
    assert error.status_code == 502 and error.code == "constraint_violated" and "max_tokens" in error.message
    assert error.body["code"] == "constraint_violated" and error.response.headers["x-stepwise-run-id"]
    (after,) = smollm2_server.client.get("/v1/experts").json()
    assert after["violations"] == before["violations"] + 1


def test_a_json_schema_response_format_is_decoded_under_that_schema(client):
    """response_format {"type": "json_schema"}: the content is JSON valid under the caller's schema (as the
    openai client's structured outputs expect); n > 1 is refused naming the field."""
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
              "required": ["city", "country"], "additionalProperties": False}
    completion = client.chat.completions.create(
        model="general", messages=[{"role": "user", "content": "Name a city in Japan and its country."}], max_tokens=64,
        response_format={"type": "json_schema", "json_schema": {"name": "place", "schema": schema}})
    place = json.loads(completion.choices[0].message.content)
    assert set(place) == {"city", "country"} and all(isinstance(v, str) for v in place.values())
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="general", messages=[{"role": "user", "content": "hi"}], n=2)
    assert {"message": "Expected `int` <= 1", "key": "n", "source": "body"} in refused.value.response.json()["extra"]
