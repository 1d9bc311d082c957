"""JSON batching with msgraph-sdk's BatchRequestContent / BatchRequestBuilder against the Graph mock: inner requests
through the mock's routes and journal, JSON bodies, dependsOn and 424, the 20-request limit, per-request throttling."""

import asyncio
import json

from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.contact import Contact
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.item.messages.messages_request_builder import MessagesRequestBuilder
from msgraph_core.requests.batch_request_builder import BatchRequestBuilder
from msgraph_core.requests.batch_request_content import BatchRequestContent
from msgraph_core.requests.batch_request_item import BatchRequestItem

from _graph import ADELE, ADELE_PATH, BASE, ERRORS, client, raw
from _mocks import admin, journal, step


def content(graph):
    """Three requests built by the SDK's request builders: a user, two messages, a new contact."""
    adele = graph.users.by_user_id(ADELE)
    top2 = RequestConfiguration(query_parameters=MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(top=2, select=["subject"]))
    items = [
        BatchRequestItem(adele.to_get_request_information(), id="user"),
        BatchRequestItem(adele.messages.to_get_request_information(top2), id="messages"),
        BatchRequestItem(adele.contacts.to_post_request_information(
            Contact(given_name="Bo", surname="Batch", email_addresses=[EmailAddress(address="bo@example.com")])), id="contact"),
    ]
    return items, BatchRequestContent({i.id: i for i in items})


async def main():
    graph, adapter, _ = client()
    batches = BatchRequestBuilder(adapter, ERRORS)

    # BatchRequestItem takes each request's url as the request builder expands it: relative to /v1.0 in this SDK
    # release (the client's base URL is not part of the template's parameters), which is what Graph wants.
    items, batch = content(graph)
    assert [i.url.split("?")[0] for i in items] == [f"/users/{ADELE_PATH}", f"/users/{ADELE_PATH}/messages", f"/users/{ADELE_PATH}/contacts"], [i.url for i in items]
    answer = await batches.post(batch)
    assert answer.get_response_status_codes() == {"user": 200, "messages": 200, "contact": 201}, answer.get_response_status_codes()
    assert answer.get_response_by_id("contact").content_type.startswith("application/json")
    # msgraph-core 1.5.2 on kiota-serialization-json 1.16 reads `body` with get_bytes_value, which returns None for
    # a JSON object (kiota-python issue 737): Graph's bodies, and the mock's, are lost here. Should a new pin fix
    # it, this fails: then read them with answer.response_body(id, Type) instead of the raw call below.
    assert answer.get_response_by_id("user").body is None
    inner = journal(BASE, f"/v1.0/users/{ADELE_PATH}")
    assert sorted((r["method"], r["headers"].get("x-tekup-batch-request-id")) for r in inner) == [
        ("GET", "messages"), ("GET", "user"), ("POST", "contact")], inner
    contacts = await graph.users.by_user_id(ADELE).contacts.get()
    assert "Bo Batch" in [c.display_name for c in contacts.value], "the batched POST created the contact"
    step("BatchRequestBuilder: 200/200/201, each inner request journaled with its batch id, the contact created")

    # The bodies as Graph sends them (JSON objects), from the same batch serialized by the SDK and sent through
    # the SDK's adapter, read as bytes since BatchResponseContent drops them (above).
    _, batch = content(graph)
    info = await batches.to_post_request_information(batch)
    body = json.loads(await adapter.send_primitive_async(info, "bytes", ERRORS))
    by_id = {r["id"]: r for r in body["responses"]}
    assert by_id["user"]["body"]["displayName"] == "Adele Vance"
    assert [m["subject"] for m in by_id["messages"]["body"]["value"]] == ["Message 25 from John Smith", "Message 24 from Wei Chen"]
    assert by_id["messages"]["body"]["@odata.nextLink"].startswith(BASE)
    assert by_id["contact"]["body"]["displayName"] == "Bo Batch" and by_id["contact"]["headers"]["Content-Type"].startswith("application/json")
    step("inner bodies are JSON objects, with absolute nextLinks to the mock")

    # dependsOn: msgraph-core writes 'depends_on', which Graph ignores; the wire name is dependsOn. A request
    # whose dependency failed answers 424 and never runs.
    requests = [
        {"id": "1", "method": "GET", "url": f"/users/{ADELE}/messages/AAMkNOPE"},
        {"id": "2", "method": "POST", "url": f"/users/{ADELE}/contacts", "dependsOn": ["1"],
         "headers": {"Content-Type": "application/json"}, "body": {"givenName": "Never", "surname": "Created"}},
        {"id": "3", "method": "GET", "url": f"/users/{ADELE}", "dependsOn": ["2"]},
        {"id": "4", "method": "GET", "url": f"/users/{ADELE}/contacts?$count=true", "dependsOn": []},
        {"id": "5", "method": "GET", "url": f"/users/{ADELE}/events", "dependsOn": ["4"]},
    ]
    body = json.loads(await adapter.send_primitive_async(raw("POST", "/$batch", json.dumps({"requests": requests}).encode()), "bytes", ERRORS))
    statuses = {r["id"]: r["status"] for r in body["responses"]}
    assert statuses == {"1": 404, "2": 424, "3": 424, "4": 200, "5": 200}, statuses
    failed = next(r for r in body["responses"] if r["id"] == "2")
    assert failed["body"]["error"]["code"] == "FailedDependency", failed
    contacts = await graph.users.by_user_id(ADELE).contacts.get()
    assert "Never Created" not in [c.display_name for c in contacts.value], "a 424 request never ran"
    step("dependsOn: a failed request's dependents answer 424 and do not run; independent ones run")

    # The limit of 20: the SDK refuses a 21st request itself, and the mock refuses a 21-request batch as Graph does.
    _, batch = content(graph)
    for n in range(17):
        batch.add_request(f"extra{n}", BatchRequestItem(graph.users.by_user_id(ADELE).to_get_request_information()))
    try:
        batch.add_request("one-too-many", BatchRequestItem(graph.users.by_user_id(ADELE).to_get_request_information()))
        raise AssertionError("BatchRequestContent takes at most 20 requests")
    except RuntimeError as e:
        assert "20" in str(e), e
    too_many = [{"id": str(n), "method": "GET", "url": "/users"} for n in range(21)]
    try:
        await adapter.send_primitive_async(raw("POST", "/$batch", json.dumps({"requests": too_many}).encode()), "bytes", ERRORS)
        raise AssertionError("21 requests must be refused")
    except ODataError as e:
        assert e.response_status_code == 400 and e.error.code == "BadRequest" and "20" in e.error.message, e.error.message
    step("21 requests: refused by BatchRequestContent and, sent anyway, by the mock with a 400 naming the limit of 20")

    # Throttling is per inner request, as Graph's: a 429 fault on one path shows in that response only.
    admin(BASE, "POST", "faults", {"kind": "rate-limit", "retry-after": "2s", "times": 1, "path": f"/v1.0/users/{ADELE_PATH}/events"})
    requests = [{"id": "a", "method": "GET", "url": f"/users/{ADELE_PATH}/events"}, {"id": "b", "method": "GET", "url": f"/users/{ADELE_PATH}/contacts"}]
    body = json.loads(await adapter.send_primitive_async(raw("POST", "/$batch", json.dumps({"requests": requests}).encode()), "bytes", ERRORS))
    by_id = {r["id"]: r for r in body["responses"]}
    assert by_id["a"]["status"] == 429 and by_id["a"]["headers"]["Retry-After"] == "2", by_id["a"]
    assert by_id["b"]["status"] == 200
    step("per-request throttling: a 429 with Retry-After inside a 200 batch")


asyncio.run(main())
