"""The official `openai` SDK against the OpenAI mock (strict response validation)."""

import json
import math

import openai
from openai import OpenAI

from _mocks import admin, env, journal, step

BASE = env("MOCK_OPENAI_URL")
client = OpenAI(api_key="sk-test", base_url=f"{BASE}/v1", _strict_response_validation=True, max_retries=0)

# A plain chat completion, validated strictly against the SDK's models.
raw = client.chat.completions.with_raw_response.create(
    model="gpt-4o", messages=[{"role": "user", "content": "hello sdk"}]
)
assert raw.headers["x-request-id"].startswith("req_"), raw.headers
assert int(raw.headers["x-ratelimit-remaining-requests"]) < int(raw.headers["x-ratelimit-limit-requests"])
completion = raw.parse()
assert completion.object == "chat.completion"
assert completion.choices[0].message.content == "This is a mock answer to: hello sdk", completion
assert completion.choices[0].finish_reason == "stop"
assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
step("chat completion parsed with strict validation")

# A tool call and its answer.
tools = [{"type": "function", "function": {"name": "get_weather", "description": "weather by city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
messages = [{"role": "user", "content": "What is the weather in Paris?"}]
first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools)
call = first.choices[0].message.tool_calls[0]
assert first.choices[0].finish_reason == "tool_calls"
assert call.function.name == "get_weather"
assert json.loads(call.function.arguments)["city"] == "Paris"
messages.append(first.choices[0].message.model_dump(exclude_none=True))
messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature": 18, "city": "Paris"})})
second = client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools)
assert second.choices[0].message.content == "It is 18 degrees in Paris.", second
step("tool call round trip")

# A stream to [DONE], with usage in the last chunk.
text, usage, chunks = "", None, 0
for chunk in client.chat.completions.create(
    model="gpt-4o", messages=[{"role": "user", "content": "stream this please"}],
    stream=True, stream_options={"include_usage": True},
):
    chunks += 1
    if chunk.usage:
        usage = chunk.usage
    for choice in chunk.choices:
        text += choice.delta.content or ""
assert text == "This is a mock answer to: stream this please", text
assert chunks > 3 and usage is not None and usage.total_tokens > 0
step(f"stream of {chunks} chunks to [DONE]")

# The streaming helper accumulates streamed tool-call deltas.
with client.chat.completions.stream(model="gpt-4o", messages=[{"role": "user", "content": "weather in Rome"}], tools=tools) as stream:
    for _ in stream:
        pass
    final = stream.get_final_completion()
streamed_call = final.choices[0].message.tool_calls[0]
assert streamed_call.function.name == "get_weather"
assert json.loads(streamed_call.function.arguments) == {"city": "Rome", "unit": "celsius"}
step("streamed tool call reassembled by the SDK")

# Embeddings: the SDK asks for base64 by default and decodes it after parsing,
# which its strict mode rejects for the real API as well, hence a default client.
lenient = OpenAI(api_key="sk-test", base_url=f"{BASE}/v1", max_retries=0)
emb = lenient.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
assert len(emb.data) == 2 and len(emb.data[0].embedding) == 1536
assert abs(math.sqrt(sum(x * x for x in emb.data[0].embedding)) - 1.0) < 1e-3
floats = client.embeddings.create(model="text-embedding-3-small", input="alpha", encoding_format="float", dimensions=1536)
assert all(abs(a - b) < 1e-6 for a, b in zip(floats.data[0].embedding, emb.data[0].embedding))
requests = journal(BASE, "/v1/embeddings")
assert json.loads(requests[0]["body"])["encoding_format"] == "base64", requests[0]["body"]
step("embeddings in base64 and float agree")

# Audio transcription (multipart upload).
transcript = client.audio.transcriptions.create(model="whisper-1", file=("meeting.wav", b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/wav"))
assert transcript.text == "Schedule a meeting with Acme tomorrow at ten.", transcript
step("transcription")

# Errors map to the SDK's exception classes.
# (sdk.rs starts this mock accepting only the key "sk-test".)
try:
    OpenAI(api_key="sk-wrong-key-0000", base_url=f"{BASE}/v1", max_retries=0).models.list()
    raise AssertionError("a wrong key must be refused")
except openai.AuthenticationError as e:
    assert e.status_code == 401 and e.code == "invalid_api_key", e
try:
    client.chat.completions.create(model="gpt-4o", messages=[])
    raise AssertionError("empty messages must be refused")
except openai.BadRequestError as e:
    assert e.param == "messages" and e.code == "empty_array", e.body
step("errors raise AuthenticationError and BadRequestError")

# Token limits cut a chat answer (finish_reason "length", usage counts what was produced);
# reasoning models refuse the older max_tokens.
cut = client.chat.completions.create(model="gpt-4.1", max_completion_tokens=4,
                                     messages=[{"role": "user", "content": "a long question about the pipeline"}])
assert cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens == 4, cut
assert cut.choices[0].message.content == "This is a mock a", cut.choices[0].message.content
legacy = client.chat.completions.create(model="gpt-4o", max_tokens=2, messages=[{"role": "user", "content": "hi"}])
assert legacy.choices[0].finish_reason == "length" and legacy.usage.completion_tokens == 2
try:
    client.chat.completions.create(model="gpt-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    raise AssertionError("a reasoning model must refuse max_tokens")
except openai.BadRequestError as e:
    assert e.param == "max_tokens" and e.code == "unsupported_parameter", e.body
step("token limits cut chat answers with finish_reason length")

# An unknown model is refused on every endpoint, as the API refuses it.
unknown = "The model `gpt-4o-typo` does not exist or you do not have access to it."
calls = {
    "chat": lambda: client.chat.completions.create(model="gpt-4o-typo", messages=[{"role": "user", "content": "x"}]),
    "responses": lambda: client.responses.create(model="gpt-4o-typo", input="x"),
    "embeddings": lambda: client.embeddings.create(model="gpt-4o-typo", input="x", encoding_format="float"),
    "transcriptions": lambda: client.audio.transcriptions.create(model="gpt-4o-typo", file=("a.wav", b"RIFF0000WAVE", "audio/wav")),
    "models": lambda: client.models.retrieve("gpt-4o-typo"),
}
for name, call in calls.items():
    try:
        call()
        raise AssertionError(f"{name}: an unknown model must be refused")
    except openai.NotFoundError as e:
        assert e.code == "model_not_found" and e.body["message"] == unknown, (name, e.body)
step("unknown model refused on chat, responses, embeddings, transcriptions and models")

# The SDK retries our 429s (Retry-After honoured); the journal counts them.
admin(BASE, "DELETE", "journal")
admin(BASE, "POST", "faults", {"kind": "rate-limit", "retry-after": "1s", "times": 2, "path": "/v1/chat/completions"})
retrying = OpenAI(api_key="sk-test", base_url=f"{BASE}/v1", max_retries=2)
answer = retrying.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "retry me"}])
assert answer.choices[0].message.content == "This is a mock answer to: retry me"
statuses = [r["status"] for r in journal(BASE, "/v1/chat/completions")]
assert statuses == [429, 429, 200], statuses
step("SDK retried two 429s, journal shows [429, 429, 200]")

