"""$count and $search with msgraph-sdk against the Graph mock: counts as Graph gives them (mailbox items freely,
directory objects only with ConsistencyLevel: eventual), real $search filtering, and Graph's refusals as ODataError."""

import asyncio

from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.item.contacts.contacts_request_builder import ContactsRequestBuilder
from msgraph.generated.users.item.messages.count.count_request_builder import CountRequestBuilder as MessageCount
from msgraph.generated.users.item.messages.messages_request_builder import MessagesRequestBuilder
from msgraph.generated.users.users_request_builder import UsersRequestBuilder

from _graph import ADELE, client
from _mocks import step


def messages_query(**params):
    return RequestConfiguration(query_parameters=MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(**params))


def eventual(query=None):
    config = RequestConfiguration(query_parameters=query)
    config.headers.add("ConsistencyLevel", "eventual")
    return config


async def refused(call, status, code):
    """Awaits `call`, which must fail as an ODataError with this status and code; returns its message."""
    try:
        await call
    except ODataError as e:
        assert e.response_status_code == status and e.error.code == code, (e.response_status_code, e.error.code, e.error.message)
        return e.error.message
    raise AssertionError(f"expected {status} {code}")


async def all_pages(builder, config):
    page = await builder.get(request_configuration=config)
    items = list(page.value)
    while page.odata_next_link:
        page = await builder.with_url(page.odata_next_link).get()
        items += page.value
    return items


async def main():
    graph, _, _ = client()
    adele = graph.users.by_user_id(ADELE)

    # $count on mailbox items: the /$count segment and $count=true, no ConsistencyLevel needed.
    assert await adele.messages.count.get() == 25
    assert await adele.contacts.count.get() == 3
    assert await adele.events.count.get() == 2
    assert await graph.users.by_user_id("megan.bowen@contoso.test").mail_folders.by_mail_folder_id("inbox").messages.count.get() == 3
    page = await adele.messages.get(request_configuration=messages_query(count=True, top=5))
    assert page.odata_count == 25 and len(page.value) == 5, (page.odata_count, len(page.value))
    plain = await adele.messages.get(request_configuration=messages_query(top=5))
    assert plain.odata_count is None, "no @odata.count unless asked for"
    step("messages/$count, contacts/$count, events/$count and $count=true (@odata.count 25 on a page of 5)")

    # Directory objects count only with ConsistencyLevel: eventual, as Graph's advanced queries.
    message = await refused(graph.users.count.get(), 400, "Request_BadRequest")
    assert message == "$count is not currently supported.", message
    assert await graph.users.count.get(request_configuration=eventual()) == 2
    users_count = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(count=True)
    silent = await graph.users.get(request_configuration=RequestConfiguration(query_parameters=users_count))
    assert silent.odata_count is None and len(silent.value) == 2, "without the header Graph silently drops $count=true"
    counted = await graph.users.get(request_configuration=eventual(users_count))
    assert counted.odata_count == 2
    step("users/$count: 400 without ConsistencyLevel, 2 with it; users?$count=true counts only with it")

    # $search filters for real: the default properties (from, subject, body), or a named one; counts agree.
    maria = await all_pages(adele.messages, messages_query(search='"Maria"', top=5))
    assert len(maria) == 8 and all(m.from_.email_address.name == "Maria Garcia" for m in maria), [m.subject for m in maria]
    wei = await all_pages(adele.messages, messages_query(search='"from:wei.chen"'))
    assert len(wei) == 8 and all(m.from_.email_address.address == "wei.chen@initech.test" for m in wei)
    assert await all_pages(adele.messages, messages_query(search='"pizza"')) == [], "no message mentions pizza"
    either = await all_pages(adele.messages, messages_query(search='"subject:Message 7" OR "subject:Message 25"', top=50))
    assert sorted(m.subject for m in either) == ["Message 25 from John Smith", "Message 7 from John Smith"], [m.subject for m in either]
    count_query = MessageCount.CountRequestBuilderGetQueryParameters(search='"body:\\"message number 1\\""')
    assert await adele.messages.count.get(request_configuration=RequestConfiguration(query_parameters=count_query)) == 11
    step("$search on messages filters (8 from Maria, 8 from wei.chen, none for pizza, OR of subjects; $count agrees)")

    # What Graph refuses with $search on messages, and what the mock does not model, each as an ODataError.
    message = await refused(adele.messages.get(request_configuration=messages_query(search='"Maria"', filter="isRead eq false")), 400, "SearchWithFilter")
    assert "$filter" in message, message
    message = await refused(adele.messages.get(request_configuration=messages_query(search='"Maria"', orderby=["receivedDateTime desc"])), 400, "SearchWithOrderBy")
    assert message == "The query parameter '$orderBy' is not supported with '$search'.", message
    message = await refused(adele.messages.get(request_configuration=messages_query(search='"received:2026-01-05"')), 501, "NotImplemented")
    assert "received" in message, message
    contacts_query = ContactsRequestBuilder.ContactsRequestBuilderGetQueryParameters(search='"Smith"')
    await refused(adele.contacts.get(request_configuration=RequestConfiguration(query_parameters=contacts_query)), 501, "NotImplemented")
    step("$search with $filter / $orderby refused as Graph does (SearchWithFilter, SearchWithOrderBy); unmodelled forms 501")

    # $search on users: only with ConsistencyLevel: eventual, by "property:value".
    search_users = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(search='"displayName:meg"')
    message = await refused(graph.users.get(request_configuration=RequestConfiguration(query_parameters=search_users)), 400, "Request_UnsupportedQuery")
    assert "ConsistencyLevel: eventual" in message, message
    found = await graph.users.get(request_configuration=eventual(search_users))
    assert [u.display_name for u in found.value] == ["Megan Bowen"], found.value
    step("$search on users: refused without ConsistencyLevel, finds Megan Bowen with it")


asyncio.run(main())
