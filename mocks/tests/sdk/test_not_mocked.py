"""Each official SDK calling an endpoint the mocks do not serve: the SDK raises
its ordinary API error (so the application's error handling runs as it would
against the real API), and the message says the call is not mocked, so a
reader of the failure knows it is the mock's gap and not their code's."""

import asyncio
import urllib.parse

import openai
import stripe
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from kiota_abstractions.authentication import AccessTokenProvider, AllowedHostsValidator, BaseBearerTokenAuthenticationProvider
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from _mocks import env, journal, step

OPENAI = env("MOCK_OPENAI_URL")
STRIPE = env("MOCK_STRIPE_URL")
GEMINI = env("MOCK_GEMINI_URL")
GRAPH = env("MOCK_GRAPH_URL")


def says_not_mocked(message, call):
    assert "not mocked by tekup-mocks" in message, f"{call}: {message!r}"
    assert call in message, f"the message names the call {call}: {message!r}"


# OpenAI: the Batch API is not mocked.
client = openai.OpenAI(api_key="sk-test", base_url=f"{OPENAI}/v1", max_retries=0)
try:
    client.batches.list()
    raise AssertionError("GET /v1/batches must fail")
except openai.NotFoundError as e:
    says_not_mocked(e.message, "GET /v1/batches")
    assert e.body["type"] == "invalid_request_error", e.body
step("openai: NotFoundError naming GET /v1/batches as not mocked")

# Stripe: products are not mocked.
stripe_client = stripe.StripeClient("sk_test_123", base_addresses={"api": STRIPE}, max_network_retries=0)
try:
    stripe_client.v1.products.list()
    raise AssertionError("GET /v1/products must fail")
except stripe.InvalidRequestError as e:
    says_not_mocked(e.user_message or str(e), "GET /v1/products")
    assert e.http_status == 404
step("stripe: InvalidRequestError naming GET /v1/products as not mocked")

# Gemini: the Files API is not mocked.
gemini = genai.Client(api_key="test-key", http_options=genai_types.HttpOptions(base_url=GEMINI))
try:
    list(gemini.files.list())
    raise AssertionError("listing files must fail")
except genai_errors.ClientError as e:
    assert e.code == 404, e.code
    assert e.status == "NOT_FOUND", e.status
    says_not_mocked(e.message, "/files")  # the SDK picks the API version
step("genai: ClientError 404 naming the files endpoint as not mocked")


# Graph: calendars are not mocked.
class Token(AccessTokenProvider):
    async def get_authorization_token(self, uri, additional_authentication_context=None):
        return "any-token"

    def get_allowed_hosts_validator(self):
        return AllowedHostsValidator([urllib.parse.urlparse(GRAPH).netloc])


async def graph():
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(Token()))
    adapter.base_url = f"{GRAPH}/v1.0"
    client = GraphServiceClient(request_adapter=adapter)
    try:
        await client.users.by_user_id("adele").calendars.get()
        raise AssertionError("GET /v1.0/users/adele/calendars must fail")
    except ODataError as e:
        says_not_mocked(e.error.message, "GET /v1.0/users/adele/calendars")
        assert e.error.code, "Graph's error code is set"


asyncio.run(graph())
step("msgraph: ODataError naming GET /v1.0/users/adele/calendars as not mocked")

# Each of those calls was journaled with its status: a test can see the gap afterwards.
assert [r["status"] for r in journal(OPENAI, "/v1/batches")] == [404]
assert [r["status"] for r in journal(STRIPE, "/v1/products")] == [404]
step("the not-mocked calls are in the journals")
