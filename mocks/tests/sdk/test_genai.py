"""The official `google-genai` SDK against the Gemini mock: REST and a Live session over wss."""

import asyncio
import enum
from typing import Optional

import pydantic

from google import genai
from google.genai import errors, types

from _mocks import env, journal, step

REST = env("MOCK_GEMINI_URL")
LIVE = env("MOCK_GEMINI_TLS_URL")  # https://localhost:PORT, trusted through SSL_CERT_FILE
env("SSL_CERT_FILE")

client = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=REST))

reply = client.models.generate_content(model="gemini-2.0-flash", contents="hello genai")
assert reply.text == "This is a mock Gemini answer to: hello genai", reply
assert reply.usage_metadata.total_token_count > 0
assert reply.candidates[0].finish_reason == types.FinishReason.STOP
step("generate_content")

create_lead = types.FunctionDeclaration(
    name="create_lead", description="Create a CRM lead",
    parameters=types.Schema(type=types.Type.OBJECT, properties={"name": types.Schema(type=types.Type.STRING), "email": types.Schema(type=types.Type.STRING)}),
)
config = types.GenerateContentConfig(
    tools=[types.Tool(function_declarations=[create_lead])],
    automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
)
prompt = "Create a lead for John Smith, email john@example.com"
called = client.models.generate_content(model="gemini-2.0-flash", contents=prompt, config=config)
call = called.function_calls[0]
assert call.name == "create_lead" and call.args == {"name": "John Smith", "email": "john@example.com"}, call
answered = client.models.generate_content(
    model="gemini-2.0-flash", config=config,
    contents=[
        types.Content(role="user", parts=[types.Part(text=prompt)]),
        called.candidates[0].content,
        types.Content(role="user", parts=[types.Part.from_function_response(name="create_lead", response={"id": "lead-7"})]),
    ],
)
assert answered.text == "Lead lead-7 created.", answered.text
step("function call and function response")

text = "".join(chunk.text or "" for chunk in client.models.generate_content_stream(model="gemini-2.0-flash", contents="stream for me please"))
assert text == "This is a mock Gemini answer to: stream for me please", text
streamed = [r for r in journal(REST, "/v1") if r["path"].endswith("/models/gemini-2.0-flash:streamGenerateContent")]
assert streamed and "alt=sse" in (streamed[-1]["query"] or ""), streamed
step("generate_content_stream over SSE")

try:
    client.models.generate_content(model="no-such-model", contents="x")
    raise AssertionError("an unknown model must be 404")
except errors.ClientError as e:
    assert e.code == 404 and e.status == "NOT_FOUND", e
step("ClientError 404 NOT_FOUND")


counted = client.models.count_tokens(model="gemini-2.0-flash", contents="count these five words")
assert counted.total_tokens and counted.total_tokens > 0, counted
embedded = client.models.embed_content(model="gemini-embedding-001", contents=["first lead", "second lead"])
assert len(embedded.embeddings) == 2 and len(embedded.embeddings[0].values) > 0, embedded
assert embedded.embeddings[0].values != embedded.embeddings[1].values, "different texts, different vectors"
names = [m.name for m in client.models.list()]
assert "models/gemini-2.0-flash" in names, names
model = client.models.get(model="gemini-2.0-flash")
assert model.name == "models/gemini-2.0-flash" and "generateContent" in (model.supported_actions or []), model
step(f"count_tokens ({counted.total_tokens}), embed_content of two texts, models.list ({len(names)}) and models.get")


class Status(enum.Enum):
    NEW = "new"
    CONTACTED = "contacted"
    WON = "won"


class Lead(pydantic.BaseModel):
    name: str
    email: Optional[str] = None
    score: int = pydantic.Field(ge=0, le=100)
    status: Status
    tags: list[str]


def structured(prompt, schema, mime="application/json", field="response_schema"):
    config = types.GenerateContentConfig(response_mime_type=mime, **{field: schema})
    return client.models.generate_content(model="gemini-2.5-flash", contents=prompt, config=config)


lead = structured("Who should I call today?", Lead).parsed
assert isinstance(lead, Lead) and isinstance(lead.status, Status) and 0 <= lead.score <= 100, lead
again = structured("Who should I call today?", Lead).parsed
assert again == lead, (again, lead)
step(f"response_schema=Pydantic model built from the schema, parsed: {lead!r}")

leads = structured("List the leads to call", list[Lead]).parsed
assert isinstance(leads, list) and all(isinstance(x, Lead) for x in leads), leads
status = structured("What is the status of the Acme lead?", Status, mime="text/x.enum").parsed
assert isinstance(status, Status), status
step(f"response_schema=list[Lead] ({len(leads)} leads) and an Enum with text/x.enum ({status!r}) parsed")

as_json = structured("Who should I call today?", Lead.model_json_schema(), field="response_json_schema")
assert Lead.model_validate(as_json.parsed), as_json.parsed
step("response_json_schema (a JSON Schema with $defs/$ref, anyOf null) parsed and valid")

scripted = structured("Extract the lead from: Ada Lovelace called about pricing", Lead).parsed
assert scripted == Lead(name="Ada Lovelace", email=None, score=90, status=Status.NEW, tags=["voice"]), scripted
step("a scripted JSON reply (rule extract-lead-json) that fits the schema, parsed")


class Invoice(pydantic.BaseModel):
    number: str
    amount: float


try:
    structured("Extract the lead from: Ada Lovelace called about pricing", Invoice)
    raise AssertionError("a scripted reply that does not fit the schema must fail")
except errors.ServerError as e:
    assert e.code == 500 and "rule `extract-lead-json`" in e.message and "responseSchema" in e.message, e
    step(f"a scripted reply that does not fit the schema is an error naming the rule: {e.message}")

try:
    structured("anything", Lead, mime="text/plain")
    raise AssertionError("a schema with text/plain must be refused")
except errors.ClientError as e:
    assert e.code == 400 and e.status == "INVALID_ARGUMENT" and "response_mime_type" in e.message, e
step("a schema with response_mime_type text/plain is 400 INVALID_ARGUMENT")


async def live():
    live_client = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=LIVE))
    get_weather = types.FunctionDeclaration(name="get_weather", parameters=types.Schema(type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}))
    config = types.LiveConnectConfig(response_modalities=[types.Modality.TEXT], tools=[types.Tool(function_declarations=[get_weather])])
    async with live_client.aio.live.connect(model="gemini-2.0-flash-live-001", config=config) as session:
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="What is the weather in Oslo?")]), turn_complete=True)
        tool_call = None
        async for message in session.receive():
            if message.tool_call:
                tool_call = message.tool_call
                break
        assert tool_call is not None
        fc = tool_call.function_calls[0]
        assert fc.name == "get_weather" and fc.args["city"] == "Oslo" and fc.id, fc
        await session.send_tool_response(function_responses=[types.FunctionResponse(id=fc.id, name=fc.name, response={"temperature": 4, "city": "Oslo"})])
        text, complete = "", False
        async for message in session.receive():
            if message.text:
                text += message.text
            if message.server_content and message.server_content.turn_complete:
                complete = True
        assert complete and text == "It is 4 degrees in Oslo.", text
    step("Live session over wss: setup, tool call with id, tool response, text turn")


asyncio.run(live())
