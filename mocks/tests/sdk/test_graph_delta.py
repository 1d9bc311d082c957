"""msgraph-sdk's delta() request builders against the Graph mock: the URL they send, a first round of pages ending
in a deltaLink followed with `with_url`, then only the changes, deletions as `@removed`."""

import asyncio

from msgraph.generated.models.contact import Contact
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.message import Message

from _graph import ADELE, ADELE_PATH, BASE, MEGAN, client
from _mocks import journal, step


async def full_round(builder):
    """Follows nextLinks with `with_url` to the deltaLink; returns (items, deltaLink, pages)."""
    page = await builder.get()
    items, pages = list(page.value), 1
    while page.odata_next_link:
        assert page.odata_delta_link is None, "a page has a nextLink or a deltaLink, not both"
        assert page.odata_next_link.startswith(BASE), page.odata_next_link
        page = await builder.with_url(page.odata_next_link).get()
        items += page.value
        pages += 1
    assert page.odata_delta_link and page.odata_delta_link.startswith(BASE), page.odata_delta_link
    return items, page.odata_delta_link, pages


def removed(item):
    return (item.additional_data or {}).get("@removed")


async def main():
    graph, _, _ = client()
    messages = graph.users.by_user_id(ADELE).messages

    # The SDK calls the OData function with parentheses.
    first, delta_link, pages = await full_round(messages.delta)
    sent = journal(BASE, f"/v1.0/users/{ADELE_PATH}/messages/delta", "GET")
    assert sent[0]["path"] == f"/v1.0/users/{ADELE_PATH}/messages/delta()", sent[0]["path"]
    assert len(first) == 25 and len({m.id for m in first}) == 25 and pages == 3, (len(first), pages)
    assert not any(removed(m) for m in first), "a first round lists no deletions"
    step("messages/delta() sent as the SDK builds it; first round of 3 pages / 25 messages ends in a deltaLink")

    # Nothing changed: the deltaLink answers an empty round with a new deltaLink.
    unchanged = await messages.delta.with_url(delta_link).get()
    assert unchanged.value == [] and unchanged.odata_delta_link, unchanged.value

    # One created, one updated, one deleted: the next round has exactly those three.
    created = await messages.post(Message(subject="Draft for the delta round"))
    await messages.by_message_id(first[0].id).patch(Message(is_read=True))
    await messages.by_message_id(first[1].id).delete()
    changes, delta_link, _ = await full_round(messages.delta.with_url(unchanged.odata_delta_link))
    by_id = {m.id: m for m in changes}
    assert set(by_id) == {created.id, first[0].id, first[1].id}, [m.id for m in changes]
    assert by_id[first[0].id].is_read is True
    assert removed(by_id[first[1].id]) == {"reason": "deleted"}, by_id[first[1].id].additional_data
    assert by_id[created.id].subject == "Draft for the delta round"
    step("the deltaLink round has only the created, updated and deleted (@removed) messages")

    # Contacts: contacts/delta() the same way.
    contacts = graph.users.by_user_id(ADELE).contacts
    everyone, contacts_link, _ = await full_round(contacts.delta)
    assert sorted(c.display_name for c in everyone) == ["John Smith", "Maria Garcia", "Wei Chen"], everyone
    assert journal(BASE, f"/v1.0/users/{ADELE_PATH}/contacts/delta()", "GET"), "contacts/delta() as the SDK sends it"
    pat = await contacts.post(Contact(given_name="Pat", surname="Lee", email_addresses=[EmailAddress(address="pat@example.com")]))
    await contacts.by_contact_id(everyone[0].id).delete()
    changes, _, _ = await full_round(contacts.delta.with_url(contacts_link))
    assert {c.id for c in changes} == {pat.id, everyone[0].id}, [c.id for c in changes]
    assert [removed(c) for c in changes if c.id == everyone[0].id] == [{"reason": "deleted"}]
    step("contacts/delta(): first round of 3, then the created contact and the deleted one as @removed")

    # A mail folder: mailFolders/{f}/messages/delta().
    inbox = graph.users.by_user_id(MEGAN).mail_folders.by_mail_folder_id("inbox").messages
    megan, inbox_link, _ = await full_round(inbox.delta)
    assert len(megan) == 3, megan
    assert journal(BASE, f"/v1.0/users/{MEGAN.replace('@', '%40')}/mailFolders/inbox/messages/delta()", "GET")
    await inbox.by_message_id(megan[2].id).patch(Message(is_read=True))
    changes = await inbox.delta.with_url(inbox_link).get()
    assert [m.id for m in changes.value] == [megan[2].id] and changes.value[0].is_read is True
    step("mailFolders/inbox/messages/delta(): 3 messages, then only the one updated")


asyncio.run(main())
