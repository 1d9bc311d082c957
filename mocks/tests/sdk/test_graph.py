"""The official `msgraph-sdk` against the Graph mock: token, paging, mail, contacts, errors, throttling."""

import asyncio

from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.contact import Contact
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.message import Message
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.recipient import Recipient
from msgraph.generated.users.item.messages.messages_request_builder import MessagesRequestBuilder
from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody
from msgraph_core.tasks.page_iterator import PageIterator

from _graph import ADELE, ADELE_PATH, BASE, MEGAN
from _graph import client as new_client
from _mocks import admin, journal, step


async def main():
    client, adapter, tokens = new_client()

    user = await client.users.by_user_id(ADELE).get()
    assert user.display_name == "Adele Vance", user
    step("user fetched with a client-credentials token")

    # Page chain followed to its end by the SDK's PageIterator.
    config = RequestConfiguration(query_parameters=MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(top=10, select=["subject", "receivedDateTime"]))
    first = await client.users.by_user_id(ADELE).messages.get(request_configuration=config)
    assert len(first.value) == 10 and first.odata_next_link.startswith(BASE), first.odata_next_link
    subjects = []
    iterator = PageIterator(first, adapter)
    await iterator.iterate(lambda m: subjects.append(m.subject) or True)
    assert len(subjects) == 25 and len(set(subjects)) == 25, subjects
    pages = [r for r in journal(BASE, f"/v1.0/users/{ADELE_PATH}/messages", "GET")]
    assert len(pages) == 3, [p["query"] for p in pages]
    step("page chain of 3 pages / 25 messages followed to its end")

    # sendMail: 202, then visible in the recipient's inbox and the sender's Sent Items.
    body = SendMailPostRequestBody(message=Message(
        subject="Security incident SEC-7", body=ItemBody(content_type=BodyType.Text, content="An incident was opened."),
        to_recipients=[Recipient(email_address=EmailAddress(address=MEGAN))]), save_to_sent_items=True)
    await client.users.by_user_id(ADELE).send_mail.post(body)
    inbox = await client.users.by_user_id(MEGAN).mail_folders.by_mail_folder_id("inbox").messages.get()
    assert any(m.subject == "Security incident SEC-7" for m in inbox.value), [m.subject for m in inbox.value]
    sent = await client.users.by_user_id(ADELE).mail_folders.by_mail_folder_id("sentitems").messages.get()
    assert sent.value[0].subject == "Security incident SEC-7"
    step("sendMail delivered and saved to Sent Items")

    # Contacts: create, then find by e-mail with $filter.
    created = await client.users.by_user_id(ADELE).contacts.post(Contact(
        given_name="Pat", surname="Lee", email_addresses=[EmailAddress(address="pat@example.com", name="Pat Lee")]))
    assert created.id and created.display_name == "Pat Lee"
    from msgraph.generated.users.item.contacts.contacts_request_builder import ContactsRequestBuilder
    query = ContactsRequestBuilder.ContactsRequestBuilderGetQueryParameters(filter="emailAddresses/any(a:a/address eq 'pat@example.com')")
    found = await client.users.by_user_id(ADELE).contacts.get(request_configuration=RequestConfiguration(query_parameters=query))
    assert [c.id for c in found.value] == [created.id]
    events = await client.users.by_user_id(ADELE).events.get()
    assert {e.subject for e in events.value} == {"Pipeline review", "Acme demo"}
    step("contact created and found by $filter; events listed")

    # Errors arrive as ODataError with Graph's code and innerError request ids.
    try:
        await client.users.by_user_id(ADELE).messages.by_message_id("AAMkNOPE").get()
        raise AssertionError("an unknown message must be 404")
    except ODataError as e:
        assert e.response_status_code == 404
        assert e.error.code == "ErrorItemNotFound", e.error.code
        assert e.error.inner_error.request_id, "innerError carries a request id"
    step("ODataError with ErrorItemNotFound and innerError request-id")

    # Throttling: the SDK's retry handler honours Retry-After on our 429s.
    admin(BASE, "DELETE", "journal")
    admin(BASE, "POST", "faults", {"kind": "rate-limit", "retry-after": "1s", "times": 2, "path": f"/v1.0/users/{ADELE_PATH}/contacts"})
    contacts = await client.users.by_user_id(ADELE).contacts.get()
    assert len(contacts.value) == 4
    statuses = [r["status"] for r in journal(BASE, f"/v1.0/users/{ADELE_PATH}/contacts")]
    assert statuses == [429, 429, 200], statuses
    assert tokens.fetches == 1
    step("throttled twice with Retry-After, retried by the SDK, journal shows [429, 429, 200]")


asyncio.run(main())
