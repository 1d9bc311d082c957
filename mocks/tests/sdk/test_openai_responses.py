"""The official `openai` SDK against the OpenAI mock's Responses API (strict response validation)."""

import json

import openai
from openai import OpenAI

from _mocks import env, journal, step

BASE = env("MOCK_OPENAI_URL")
client = OpenAI(api_key="sk-test", base_url=f"{BASE}/v1", _strict_response_validation=True, max_retries=0)

# Plain text input with instructions; `output_text` is the SDK's convenience.
first = client.responses.create(model="gpt-4o", input="hello responses", instructions="Answer briefly.")
assert first.object == "response" and first.id.startswith("resp_"), first
assert first.status == "completed" and first.error is None and first.incomplete_details is None
assert first.output_text == "This is a mock answer to: hello responses", first.output_text
assert first.instructions == "Answer briefly."
message = first.output[0]
assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
assert message.content[0].type == "output_text"
usage = first.usage
assert usage.input_tokens > 0 and usage.output_tokens > 0
assert usage.total_tokens == usage.input_tokens + usage.output_tokens
body = json.loads(journal(BASE, "/v1/responses")[-1]["body"])
assert body["input"] == "hello responses" and body["instructions"] == "Answer briefly.", body
step("text input answered, output_text and usage")

# Input as a list of messages with content parts; the script matches the last user turn.
listed = client.responses.create(
    model="gpt-4.1-mini",
    input=[
        {"role": "developer", "content": "You work for a CRM."},
        {"role": "user", "content": [{"type": "input_text", "text": "Please summarize lead 42."}]},
    ],
)
assert listed.output_text == "Lead summary: qualified prospect, follow up within 2 days.", listed.output_text
step("input as a list of messages")

# Retrieve and delete a stored response.
again = client.responses.retrieve(first.id)
assert again.id == first.id and again.output_text == first.output_text and again.usage == first.usage
client.responses.delete(listed.id)
try:
    client.responses.retrieve(listed.id)
    raise AssertionError("a deleted response must be gone")
except openai.NotFoundError as e:
    assert e.status_code == 404 and listed.id in e.message, e
step("retrieve returns the stored response, delete removes it")

# Function calling, continued with previous_response_id: the follow-up carries
# only the function output, and the mock finds the call in the stored turn.
tools = [{"type": "function", "name": "get_weather", "description": "Weather by city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                         "required": ["city", "unit"], "additionalProperties": False}, "strict": True}]
asked = client.responses.create(model="gpt-4o", input="What is the weather in Paris?", tools=tools)
call = asked.output[0]
assert call.type == "function_call" and call.name == "get_weather", asked.output
assert call.call_id.startswith("call_") and call.id.startswith("fc_")
assert json.loads(call.arguments) == {"city": "Paris", "unit": "celsius"}
assert asked.output_text == "" and asked.tools[0].name == "get_weather" and asked.tools[0].strict is True
answered = client.responses.create(
    model="gpt-4o",
    previous_response_id=asked.id,
    input=[{"type": "function_call_output", "call_id": call.call_id, "output": json.dumps({"temperature": 18, "city": "Paris"})}],
    tools=tools,
)
assert answered.output_text == "It is 18 degrees in Paris.", answered.output_text
assert answered.previous_response_id == asked.id
assert answered.usage.input_tokens > asked.usage.input_tokens, "the earlier turns count as input"
step("function call answered through previous_response_id")

# The same round trip without server state: the client sends the whole
# conversation back (the SDK's output items as input) with store=False.
conversation = [{"role": "user", "content": "What is the weather in Oslo?"}]
stateless = client.responses.create(model="gpt-4o", input=conversation, tools=tools, store=False)
conversation += [item.model_dump(exclude_none=True) for item in stateless.output]
conversation.append({"type": "function_call_output", "call_id": stateless.output[0].call_id,
                     "output": json.dumps({"temperature": 4, "city": "Oslo"})})
final = client.responses.create(model="gpt-4o", input=conversation, tools=tools, store=False)
assert final.output_text == "It is 4 degrees in Oslo.", final.output_text
try:
    client.responses.retrieve(stateless.id)
    raise AssertionError("store=False must not be retrievable")
except openai.NotFoundError:
    pass
try:
    client.responses.create(model="gpt-4o", previous_response_id=stateless.id, input="and tomorrow?")
    raise AssertionError("store=False must not be continued")
except openai.BadRequestError as e:
    assert e.code == "previous_response_not_found" and e.param == "previous_response_id", e.body
try:
    client.responses.create(model="gpt-4o", input=[{"type": "function_call_output", "call_id": "call_nowhere", "output": "{}"}])
    raise AssertionError("an output without its call must be refused")
except openai.BadRequestError as e:
    assert "call_nowhere" in e.message, e
step("stateless round trip with store=False; unknown previous response and orphan output refused")

# A stream of typed events, parsed by the SDK into its event classes.
events = list(client.responses.create(model="gpt-4o", input="stream a response", stream=True))
kinds = [e.type for e in events]
assert kinds[:5] == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", "response.output_text.delta"], kinds
assert kinds[-5:] == ["response.output_text.delta", "response.output_text.done", "response.content_part.done",
                      "response.output_item.done", "response.completed"], kinds
assert [e.sequence_number for e in events] == list(range(len(events)))
assert type(events[0]).__name__ == "ResponseCreatedEvent" and events[0].response.status == "in_progress"
text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
assert text == "This is a mock answer to: stream a response" == events[-1].response.output_text, text
assert len({e.item_id for e in events if hasattr(e, "item_id")}) == 1
streamed = client.responses.retrieve(events[-1].response.id)
assert streamed.output_text == text
step(f"stream of {len(events)} typed events with sequence numbers")

# The SDK's streaming helper accumulates a streamed function call.
with client.responses.stream(model="gpt-4o", input="weather in Rome", tools=tools) as stream:
    arg_deltas = sum(1 for e in stream if e.type == "response.function_call_arguments.delta")
    done = stream.get_final_response()
assert arg_deltas > 1, arg_deltas
assert done.output[0].type == "function_call" and json.loads(done.output[0].arguments)["city"] == "Rome"
step("streamed function call reassembled by responses.stream")

# max_output_tokens cuts the answer: status incomplete, usage counts what was produced.
long_prompt = "tell me everything about " + "the quarterly pipeline review " * 8
cut = client.responses.create(model="gpt-4o", input=long_prompt, max_output_tokens=16)
assert cut.status == "incomplete" and cut.incomplete_details.reason == "max_output_tokens", cut
assert cut.usage.output_tokens == 16 and len(cut.output_text) == 64, (cut.usage, cut.output_text)
assert cut.output[0].status == "incomplete" and cut.max_output_tokens == 16
cut_events = list(client.responses.create(model="gpt-4o", input=long_prompt, max_output_tokens=16, stream=True))
assert cut_events[-1].type == "response.incomplete" and cut_events[-1].response.usage.output_tokens == 16
try:
    client.responses.create(model="gpt-4o", input="x", max_output_tokens=5)
    raise AssertionError("max_output_tokens below 16 must be refused")
except openai.BadRequestError as e:
    assert e.param == "max_output_tokens" and e.code == "integer_below_min_value", e.body
step("max_output_tokens gives an incomplete response")

# An unknown model is refused as the API refuses it.
try:
    client.responses.create(model="gpt-4o-turbo-nonexistent", input="x")
    raise AssertionError("an unknown model must be refused")
except openai.NotFoundError as e:
    assert e.code == "model_not_found", e.body
    assert e.body["message"] == "The model `gpt-4o-turbo-nonexistent` does not exist or you do not have access to it.", e.body
step("unknown model refused with model_not_found")
