"""The official `stripe` SDK against the Stripe mock, including signed webhooks."""

import http.server
import json
import queue
import threading

import stripe

from _mocks import admin, env, journal, step

BASE = env("MOCK_STRIPE_URL")
client = stripe.StripeClient("sk_test_123", base_addresses={"api": BASE}, max_network_retries=2)

# A receiver for webhooks, as an application would run one.
received = queue.Queue()


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        received.put((body.decode(), self.headers["stripe-signature"]))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()
endpoint = client.v1.webhook_endpoints.create(
    params={"url": f"http://127.0.0.1:{server.server_port}/stripe", "enabled_events": ["customer.created", "payment_intent.succeeded"]}
)
assert endpoint.secret.startswith("whsec_"), endpoint
step("webhook endpoint registered through the API")

# A created customer can be fetched and updated.
customer = client.v1.customers.create(params={"email": "ada@example.com", "name": "Ada", "metadata": {"tenant": "acme"}})
assert customer.id.startswith("cus_") and customer.metadata["tenant"] == "acme"
fetched = client.v1.customers.retrieve(customer.id)
assert fetched.email == "ada@example.com" and fetched.last_response.headers["request-id"].startswith("req_")
updated = client.v1.customers.update(customer.id, params={"name": "Ada Lovelace"})
assert updated.name == "Ada Lovelace"
listed = client.v1.customers.list(params={"email": "ada@example.com"})
assert [c.id for c in listed.data] == [customer.id]
step("customer created, fetched, updated, listed")

# The webhook for customer.created verifies with the endpoint secret; a tampered copy does not.
payload, signature = received.get(timeout=10)
event = stripe.Webhook.construct_event(payload, signature, endpoint.secret)
assert event.type == "customer.created" and event.data.object.id == customer.id
tampered = payload.replace("ada@example.com", "eve@example.com")
assert tampered != payload
try:
    stripe.Webhook.construct_event(tampered, signature, endpoint.secret)
    raise AssertionError("a tampered payload must be refused")
except stripe.SignatureVerificationError:
    pass
try:
    stripe.Webhook.construct_event(payload, signature, "whsec_not_the_secret")
    raise AssertionError("a wrong secret must be refused")
except stripe.SignatureVerificationError:
    pass
step("webhook accepted by construct_event, tampered and wrong-secret copies refused")

# Payment intents: success, decline, missing resource.
intent = client.v1.payment_intents.create(
    params={"amount": 2000, "currency": "usd", "customer": customer.id, "payment_method": "pm_card_visa", "confirm": True}
)
assert intent.status == "succeeded" and intent.amount_received == 2000
payload, signature = received.get(timeout=10)
assert stripe.Webhook.construct_event(payload, signature, endpoint.secret).type == "payment_intent.succeeded"
try:
    client.v1.payment_intents.create(params={"amount": 500, "currency": "usd", "payment_method": "pm_card_chargeDeclined", "confirm": True})
    raise AssertionError("the decline test card must be declined")
except stripe.CardError as e:
    assert e.code == "card_declined" and e.http_status == 402, e
try:
    client.v1.customers.retrieve("cus_missing")
    raise AssertionError("an unknown customer must be 404")
except stripe.InvalidRequestError as e:
    assert e.code == "resource_missing" and e.http_status == 404 and e.request_id.startswith("req_"), e
step("payment intent succeeded, card declined, resource missing")

# Invoices.
invoice = client.v1.invoices.create(params={"customer": customer.id})
client.v1.invoice_items.create(params={"customer": customer.id, "amount": 1500, "currency": "usd", "invoice": invoice.id})
paid = client.v1.invoices.pay(invoice.id)
assert paid.status == "paid" and paid.amount_paid == 1500, paid
step("invoice paid")

# Idempotency: the same key returns the same object, other parameters are refused.
first = client.v1.customers.create(params={"email": "idem@example.com"}, options={"idempotency_key": "idem-1"})
again = client.v1.customers.create(params={"email": "idem@example.com"}, options={"idempotency_key": "idem-1"})
assert first.id == again.id
try:
    client.v1.customers.create(params={"email": "other@example.com"}, options={"idempotency_key": "idem-1"})
    raise AssertionError("reusing a key with other parameters must fail")
except stripe.IdempotencyError:
    pass
step("Idempotency-Key honoured")

# The SDK retries a reset connection with the same idempotency key; one customer results.
admin(BASE, "DELETE", "journal")
admin(BASE, "POST", "faults", {"kind": "reset", "times": 1, "path": "/v1/customers", "method": "POST"})
retried = client.v1.customers.create(params={"email": "retry@example.com"})
posts = journal(BASE, "/v1/customers", "POST")
assert [p["fault"] for p in posts] == ["reset", None], posts
keys = {p["headers"]["idempotency-key"] for p in posts}
assert len(keys) == 1, keys
assert [c.id for c in client.v1.customers.list(params={"email": "retry@example.com"}).data] == [retried.id]
step("reset connection retried with the same Idempotency-Key, one customer created")
server.shutdown()

# An endpoint the mock does not serve: Stripe's own wording, naming it as not mocked.
try:
    client.v1.products.list()
    raise AssertionError("GET /v1/products is not served")
except stripe.InvalidRequestError as e:
    assert e.http_status == 404, e
    assert e.user_message.startswith("Unrecognized request URL (GET: /v1/products)."), e.user_message
    assert "not mocked by tekup-mocks" in e.user_message, e.user_message
step("an unserved endpoint answers Stripe's Unrecognized request URL, naming it as not mocked")
