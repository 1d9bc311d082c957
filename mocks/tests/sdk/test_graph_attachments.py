"""Message attachments with msgraph-sdk against the Graph mock: seeded file attachments, adding one (size computed,
@odata.type kept so the SDK builds a FileAttachment), reading it back and its raw $value, refusals, deletion."""

import asyncio

from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.file_attachment import FileAttachment
from msgraph.generated.models.item_attachment import ItemAttachment
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.item.messages.messages_request_builder import MessagesRequestBuilder

from _graph import ADELE, ADELE_PATH, BASE, ERRORS, client, raw
from _mocks import journal, step


def by_subject(subject):
    return RequestConfiguration(query_parameters=MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(filter=f"subject eq '{subject}'"))


async def main():
    graph, adapter, _ = client()
    messages = graph.users.by_user_id(ADELE).messages

    # Seeded: message 2 carries two text files (fixtures/mocks/graph.yaml).
    [quoted] = (await messages.get(request_configuration=by_subject("Message 2 from Maria Garcia"))).value
    assert quoted.has_attachments is True
    listed = (await messages.by_message_id(quoted.id).attachments.get()).value
    assert [type(a).__name__ for a in listed] == ["FileAttachment", "FileAttachment"], listed
    assert [a.name for a in listed] == ["quote-Q-1042.txt", "terms.txt"]
    assert listed[0].content_bytes == b"Quote Q-1042: 12 licences at 49 EUR per month." and listed[0].size == 46
    assert listed[0].content_type == "text/plain" and listed[0].is_inline is False
    step("seeded file attachments listed as FileAttachment with their bytes")

    # Add one to a message that had none: 201 with the size computed, the message now has attachments.
    [plain] = (await messages.get(request_configuration=by_subject("Message 3 from Wei Chen"))).value
    assert plain.has_attachments is False
    csv = b"customer,amount\nAcme,1200\n"
    created = await messages.by_message_id(plain.id).attachments.post(FileAttachment(name="invoice.csv", content_type="text/csv", content_bytes=csv))
    assert isinstance(created, FileAttachment) and created.id and created.size == len(csv), created
    assert created.odata_type == "#microsoft.graph.fileAttachment"
    fetched = await messages.by_message_id(plain.id).attachments.by_attachment_id(created.id).get()
    assert isinstance(fetched, FileAttachment) and fetched.content_bytes == csv and fetched.name == "invoice.csv"
    assert (await messages.by_message_id(plain.id).get()).has_attachments is True
    step("fileAttachment added: 201, size computed, read back with its bytes, the message hasAttachments")

    # The raw bytes at .../attachments/{id}/$value (no request builder in the SDK: through its adapter).
    info = raw("GET", f"/users/{ADELE_PATH}/messages/{plain.id}/attachments/{created.id}/$value")
    assert await adapter.send_primitive_async(info, "bytes", ERRORS) == csv
    sent = journal(BASE, f"/v1.0/users/{ADELE_PATH}/messages/{plain.id}/attachments/{created.id}/$value")
    assert sent and sent[-1]["status"] == 200
    step("$value answers the raw bytes")

    # Refusals as ODataError: an item attachment (not modelled), an unknown message.
    try:
        await messages.by_message_id(plain.id).attachments.post(ItemAttachment(name="forwarded"))
        raise AssertionError("item attachments are not modelled")
    except ODataError as e:
        assert e.response_status_code == 501 and "fileAttachment" in e.error.message, e.error.message
    try:
        await messages.by_message_id("AAMkNOPE").attachments.get()
        raise AssertionError("an unknown message has no attachments")
    except ODataError as e:
        assert e.response_status_code == 404 and e.error.code == "ErrorItemNotFound"
    step("item attachment refused (501, names fileAttachment); unknown message 404 ErrorItemNotFound")

    # Delete: 204, then 404, and the message has no attachments again.
    await messages.by_message_id(plain.id).attachments.by_attachment_id(created.id).delete()
    try:
        await messages.by_message_id(plain.id).attachments.by_attachment_id(created.id).get()
        raise AssertionError("a deleted attachment is gone")
    except ODataError as e:
        assert e.response_status_code == 404
    assert (await messages.by_message_id(plain.id).get()).has_attachments is False
    step("attachment deleted: 404 after, the message hasAttachments false again")


asyncio.run(main())
