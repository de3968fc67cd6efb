"""`model="stepwise"` through the real `openai` client: the whole system (plan, steps, verifiers, composer) behind
OpenAI's chat completions, streaming and not. Slow: Qwen plans and composes (about half a minute per question)."""

from __future__ import annotations

import openai
import pytest

pytestmark = [pytest.mark.model, pytest.mark.slow]


@pytest.fixture
def client(qwen_server):
    with openai.OpenAI(base_url=qwen_server.url + "/v1", api_key="unused", max_retries=0, timeout=600) as c:
        yield c


async def test_the_whole_system_answers_a_chat_completion(client, qwen_server, pg):
    """The planned, verified run answers 144; the completion's id is the run, whose steps the trace holds."""
    completion = client.chat.completions.create(model="stepwise",
                                                messages=[{"role": "user", "content": "What is 12*12?"}])
    assert completion.model == "stepwise" and completion.choices[0].finish_reason == "stop"
    assert "144" in completion.choices[0].message.content
    report = qwen_server.client.get(f"/v1/runs/{completion.id}").json()
    assert (report["status"] == "finished" and report["steps"]
            and report["answer"]["text"] == completion.choices[0].message.content)
    assert completion.usage.prompt_tokens == report["usage"]["input_tokens"]
    assert await pg.fetchval("SELECT count(*) FROM steps WHERE run_id = $1::uuid",
                             completion.id) == len(report["steps"])


def test_the_whole_system_streams_a_chat_completion_with_earlier_turns_as_context(client, qwen_server):
    """stream=True: chunks of one id end in "stop" and [DONE]; the run's question carries the earlier turns."""
    messages = [{"role": "user", "content": "I have 7 boxes of 8 pens."}, {"role": "assistant", "content": "Noted."},
                {"role": "user", "content": "How many pens do I have?"}]
    chunks = list(client.chat.completions.create(model="stepwise", messages=messages, stream=True))
    assert len({c.id for c in chunks}) == 1 and chunks[-1].choices[0].finish_reason == "stop"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert "56" in text
    report = qwen_server.client.get(f"/v1/runs/{chunks[0].id}").json()
    assert report["question"].startswith("Conversation so far:") and "7 boxes of 8 pens" in report["question"]
    assert report["question"].endswith("Question: How many pens do I have?")
