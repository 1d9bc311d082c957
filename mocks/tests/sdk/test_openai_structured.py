"""Structured outputs through the official `openai` SDK: `parse` helpers with pydantic models."""

import json
from enum import Enum
from typing import List, Optional

import openai
import pydantic
from openai import OpenAI

from _mocks import admin, env, journal, step

BASE = env("MOCK_OPENAI_URL")
client = OpenAI(api_key="sk-test", base_url=f"{BASE}/v1", _strict_response_validation=True, max_retries=0)


class Status(str, Enum):
    new = "new"
    qualified = "qualified"
    lost = "lost"


class Address(pydantic.BaseModel):
    street: str
    city: str
    postcode: Optional[str]


class Deal(pydantic.BaseModel):
    title: str
    amount: float
    closed: bool


class Contact(pydantic.BaseModel):
    name: str
    email: str
    phone: Optional[str] = None
    status: Status
    score: int
    address: Address
    tags: List[str]
    deals: List[Deal]
    manager: Optional[Address]


class Lead(pydantic.BaseModel):
    name: str
    email: str
    company: str
    score: int
    status: Status
    tags: List[str]


class Invoice(pydantic.BaseModel):
    number: str
    total: float


# chat.completions.parse: the SDK sends the model as a strict JSON Schema
# (nested models as $defs/$ref, Optional as anyOf null) and parses the reply.
messages = [{"role": "user", "content": "Describe a contact for the CRM."}]
completion = client.chat.completions.parse(model="gpt-4o", messages=messages, response_format=Contact)
contact = completion.choices[0].message.parsed
assert isinstance(contact, Contact), completion
assert isinstance(contact.address, Address) and isinstance(contact.status, Status)
assert all(isinstance(d, Deal) for d in contact.deals) and all(isinstance(t, str) for t in contact.tags)
assert completion.choices[0].finish_reason == "stop" and completion.choices[0].message.refusal is None
sent = json.loads(journal(BASE, "/v1/chat/completions")[-1]["body"])["response_format"]
assert sent["type"] == "json_schema" and sent["json_schema"]["strict"] is True, sent
schema = sent["json_schema"]["schema"]
assert "$defs" in schema and schema["properties"]["address"] == {"$ref": "#/$defs/Address"}, schema
assert {"type": "null"} in schema["properties"]["manager"]["anyOf"], schema["properties"]["manager"]
again = client.chat.completions.parse(model="gpt-4o", messages=messages, response_format=Contact)
assert again.choices[0].message.parsed == contact, "the same prompt gives the same value"
step("chat.completions.parse filled .parsed from the strict schema ($defs, $ref, anyOf null, enum, lists)")

# The beta namespace still routes to the same helper.
beta = client.beta.chat.completions.parse(model="gpt-4o-mini", messages=messages, response_format=Address)
assert isinstance(beta.choices[0].message.parsed, Address), beta
step("beta.chat.completions.parse")

# A scripted structured reply (fixtures/mocks/openai.yaml, rule lead-extraction).
lead_prompt = [{"role": "user", "content": "Please extract the lead from this email: John Smith of Acme..."}]
lead = client.chat.completions.parse(model="gpt-4o", messages=lead_prompt, response_format=Lead).choices[0].message.parsed
assert lead == Lead(name="John Smith", email="john@example.com", company="Acme", score=87,
                    status=Status.qualified, tags=["inbound", "enterprise"]), lead
step("scripted json reply checked against the schema and parsed")

# A scripted reply that does not fit the request's schema is an error naming the
# rule, sent with x-should-retry: false so that even a retrying client asks once.
admin(BASE, "DELETE", "journal")
retrying = OpenAI(api_key="sk-test", base_url=f"{BASE}/v1", max_retries=2)
try:
    retrying.chat.completions.parse(model="gpt-4o", messages=lead_prompt, response_format=Invoice)
    raise AssertionError("a scripted reply that does not fit must be an error")
except openai.InternalServerError as e:
    assert e.code == "mock_script_mismatch", e.body
    assert "rule `lead-extraction`" in e.body["message"] and "'Invoice'" in e.body["message"], e.body
assert len(journal(BASE, "/v1/chat/completions")) == 1, "not retried"
step("a scripted reply that does not fit names the rule and is not retried")

# JSON mode.
mode = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "answer in JSON"}],
                                      response_format={"type": "json_object"})
assert isinstance(json.loads(mode.choices[0].message.content), dict), mode
step("json_object gives a JSON object")

# A hand-written strict schema the API would refuse is refused here too.
try:
    client.chat.completions.create(
        model="gpt-4o", messages=messages,
        response_format={"type": "json_schema", "json_schema": {"name": "loose", "strict": True,
                         "schema": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}}})
    raise AssertionError("a strict schema without additionalProperties: false must be refused")
except openai.BadRequestError as e:
    assert e.body["message"] == ("Invalid schema for response_format 'loose': In context=(), "
                                 "'additionalProperties' is required to be supplied and to be false."), e.body
    assert e.param == "response_format", e.body
step("strict schema rules enforced with the API's message")

# Streaming with a response format: the SDK parses the accumulated content.
with client.chat.completions.stream(model="gpt-4o", messages=messages, response_format=Contact) as stream:
    for _ in stream:
        pass
    streamed = stream.get_final_completion().choices[0].message.parsed
assert streamed == contact, streamed
step("chat.completions.stream parsed the streamed structured reply")

# Strict function tools from pydantic models: the SDK parses the arguments.
class GetWeather(pydantic.BaseModel):
    city: str
    unit: str


tooled = client.chat.completions.parse(model="gpt-4o", messages=[{"role": "user", "content": "weather in Lisbon"}],
                                       tools=[openai.pydantic_function_tool(GetWeather, name="get_weather")])
args = tooled.choices[0].message.tool_calls[0].function.parsed_arguments
assert args == GetWeather(city="Lisbon", unit="celsius"), args
step("pydantic_function_tool arguments parsed")

# A token limit cuts the JSON, and parse says so.
try:
    client.chat.completions.parse(model="gpt-4o", messages=messages, response_format=Contact, max_completion_tokens=3)
    raise AssertionError("a cut structured reply must raise")
except openai.LengthFinishReasonError as e:
    assert e.completion.usage.completion_tokens == 3
step("LengthFinishReasonError when max_completion_tokens cuts the reply")

# The Responses API: responses.parse with text_format, and the raw text.format.
parsed = client.responses.parse(model="gpt-4o", input="Describe a contact for the CRM.", text_format=Contact)
assert parsed.output_parsed == contact, parsed.output_parsed
assert parsed.text.format.type == "json_schema" and parsed.text.format.strict is True
scripted = client.responses.parse(model="gpt-4.1", input="extract the lead from the signature", text_format=Lead)
assert scripted.output_parsed == lead
raw = client.responses.create(
    model="gpt-4o", input="an invoice please",
    text={"format": {"type": "json_schema", "name": "invoice", "strict": True, "schema": {
        "type": "object", "additionalProperties": False, "required": ["number", "total", "issued", "lines"],
        "properties": {"number": {"type": "string", "maxLength": 6}, "total": {"type": "number", "minimum": 10},
                       "issued": {"type": "string", "format": "date"},
                       "lines": {"type": "array", "minItems": 2, "items": {"type": "integer", "maximum": -1}}}}}})
invoice = json.loads(raw.output_text)
assert len(invoice["number"]) <= 6 and invoice["total"] >= 10 and len(invoice["issued"]) == 10, invoice
assert len(invoice["lines"]) >= 2 and all(line <= -1 for line in invoice["lines"]), invoice
with client.responses.stream(model="gpt-4o", input="Describe a contact for the CRM.", text_format=Contact) as stream:
    final = stream.get_final_response()
assert final.output_parsed == contact
try:
    client.responses.create(model="gpt-4o", input="x", text={"format": {"type": "json_schema", "name": "x", "strict": True,
                            "schema": {"type": "object", "additionalProperties": False, "required": [],
                                       "properties": {"a": {"type": "string"}}}}})
    raise AssertionError("a strict schema missing a required key must be refused")
except openai.BadRequestError as e:
    assert e.param == "text.format.schema" and e.code == "invalid_json_schema", e.body
    assert "Missing 'a'." in e.body["message"], e.body
step("responses.parse and text.format json_schema, plain and streamed")
