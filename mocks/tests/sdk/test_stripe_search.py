"""The official `stripe` SDK's search calls against the Stripe mock: the query
language, search_result paging, and queries refused as Stripe refuses them."""

import time

import stripe

from _mocks import env, step

BASE = env("MOCK_STRIPE_URL")
client = stripe.StripeClient("sk_test_123", base_addresses={"api": BASE})
# The resource style (stripe.Customer.search) uses the global configuration.
stripe.api_key = "sk_test_123"
stripe.api_base = BASE

before = int(time.time()) - 1
created = []
for i in range(12):
    created.append(
        client.v1.customers.create(
            params={
                "email": f"user{i}@search.example",
                "name": f"User {i}",
                "metadata": {"tier": "gold" if i % 2 == 0 else "silver", "n": str(i)},
            }
        )
    )
client.v1.customers.create(params={"email": "outsider@elsewhere.example", "name": "Outsider"})
newest_first = [c.id for c in reversed(created)]

# Exact match, resource style.
found = stripe.Customer.search(query="email:'USER3@search.example'")
assert found.object == "search_result" and found.url == "/v1/customers/search", found
assert [c.id for c in found.data] == [created[3].id], found
assert found.has_more is False and found.next_page is None, found
assert "total_count" not in found, "total_count only when expanded"
step("exact match (case-insensitive on email) as a search_result")

# Substring match, paged by limit and next_page, followed by the SDK to the end.
page = stripe.Customer.search(query="email~'search.example'", limit=5)
assert len(page.data) == 5 and page.has_more and page.next_page, page
assert [c.id for c in page.data] == newest_first[:5], "newest first"
second = stripe.Customer.search(query="email~'search.example'", limit=5, page=page.next_page)
assert [c.id for c in second.data] == newest_first[5:10], second
assert [c.id for c in page.auto_paging_iter()] == newest_first
assert [c.id for c in stripe.Customer.search_auto_paging_iter(query="email~'search.example'", limit=4)] == newest_first
step("substring match paged with limit/next_page; auto_paging_iter and search_auto_paging_iter reach all 12")

# StripeClient style: metadata, OR, negation, created comparisons, total_count.
gold = client.v1.customers.search(params={"query": "metadata['tier']:'gold'", "limit": 100})
assert sorted(c.id for c in gold.data) == sorted(c.id for c in created[0::2]), gold
either = client.v1.customers.search(params={"query": "name:'user 1' OR name:'User 2'"})
assert sorted(c.id for c in either.data) == sorted([created[1].id, created[2].id]), either
not_gold = client.v1.customers.search(params={"query": "-metadata['tier']:'gold' AND email~'search.example'", "limit": 100})
assert sorted(c.id for c in not_gold.data) == sorted(c.id for c in created[1::2]), not_gold
recent = client.v1.customers.search(params={"query": f"created>={before} created<={int(time.time()) + 1}", "limit": 100})
assert len(recent.data) == 13, recent
future = client.v1.customers.search(params={"query": f"created>{int(time.time()) + 3600}"})
assert future.data == [] and future.has_more is False, future
counted = client.v1.customers.search(params={"query": "email~'search.example'", "limit": 2, "expand": ["total_count"]})
assert counted.total_count == 12 and len(counted.data) == 2, counted
step("metadata, OR, negation, created ranges and expand[]=total_count through client.v1.customers.search")

# Payment intents: status, customer, amount.
buyer = created[0].id
for amount in (1000, 2500, 5000):
    client.v1.payment_intents.create(params={"amount": amount, "currency": "usd", "customer": buyer, "payment_method": "pm_card_visa", "confirm": True})
client.v1.payment_intents.create(params={"amount": 7000, "currency": "usd", "customer": buyer})
paid = client.v1.payment_intents.search(params={"query": f"status:'succeeded' AND customer:'{buyer}'"})
assert [pi.amount for pi in paid.data] == [5000, 2500, 1000], paid
big = stripe.PaymentIntent.search(query=f"customer:'{buyer}' amount>2000")
assert [pi.amount for pi in big.data] == [7000, 5000, 2500], big
exact = stripe.PaymentIntent.search(query="amount:2500 currency:'usd'")
assert [pi.amount for pi in exact.data] == [2500], exact
open_ = client.v1.payment_intents.search(params={"query": "status:'requires_payment_method'"})
assert [pi.amount for pi in open_.data] == [7000], open_
step("payment intents searched by status, customer and amount")

# Invoices: customer, status, total.
invoice = client.v1.invoices.create(params={"customer": buyer})
client.v1.invoice_items.create(params={"customer": buyer, "amount": 1500, "currency": "usd", "invoice": invoice.id})
client.v1.invoices.pay(invoice.id)
client.v1.invoices.create(params={"customer": buyer})
paid_invoices = client.v1.invoices.search(params={"query": f"customer:'{buyer}' AND status:'paid'"})
assert [i.id for i in paid_invoices.data] == [invoice.id], paid_invoices
assert [i.id for i in stripe.Invoice.search(query="total>1000").data] == [invoice.id]
assert len(stripe.Invoice.search(query="status:'draft'").data) == 1
step("invoices searched by customer, status and total")


def refused(query, needle, resource=client.v1.customers, param="query"):
    try:
        resource.search(params={"query": query})
    except stripe.InvalidRequestError as e:
        assert e.http_status == 400 and e.param == param, (query, e)
        assert needle in e.user_message, (query, e.user_message)
        return e.user_message
    raise AssertionError(f"the query {query!r} must be refused")


message = refused("email:'a@b.c' AND name:'x' OR name:'y'", "AND and OR cannot be combined")
assert "position 27" in message, message
assert "position 6" in refused("email:amy@example.com", "must be in quotes")
refused("colour:'red'", "unsupported search field")
refused("email:'never closed", "never closed")
refused("status~'succ'", "does not support substring", client.v1.payment_intents)
refused("email~'ab'", "at least 3 characters")
refused("amount>'lots'", "not an integer", client.v1.payment_intents)
refused("", "Missing required param: query")
try:
    client.v1.customers.search(params={"query": "name:'User 1'", "page": page.next_page})
    raise AssertionError("a cursor of another query must be refused")
except stripe.InvalidRequestError as e:
    assert e.http_status == 400 and e.param == "page", e
step("malformed queries refused with 400, param query and the position; foreign cursors refused")
