"""The Graph SDK client of the Graph tests: client credentials against the mock's token endpoint."""

import urllib.parse

import httpx
from kiota_abstractions.authentication import AccessTokenProvider, AllowedHostsValidator, BaseBearerTokenAuthenticationProvider
from kiota_abstractions.method import Method
from kiota_abstractions.request_information import RequestInformation
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from _mocks import env

BASE = env("MOCK_GRAPH_URL")
TENANT = env("MOCK_GRAPH_TENANT")
ADELE = "adele.vance@contoso.test"
MEGAN = "megan.bowen@contoso.test"
ADELE_PATH = urllib.parse.quote(ADELE)  # as the SDK sends it: adele.vance%40contoso.test
ERRORS = {"XXX": ODataError}


class ClientCredentials(AccessTokenProvider):
    """OAuth2 client-credentials against the mock's token endpoint, cached like a real provider."""

    def __init__(self):
        self.token = None
        self.fetches = 0

    async def get_authorization_token(self, uri, additional_authentication_context=None):
        if self.token is None:
            async with httpx.AsyncClient() as http:
                response = await http.post(f"{BASE}/{TENANT}/oauth2/v2.0/token", data={
                    "grant_type": "client_credentials", "client_id": "tekup-app", "client_secret": "s3cret",
                    "scope": "https://graph.microsoft.com/.default"})
                response.raise_for_status()
                self.token = response.json()["access_token"]
                self.fetches += 1
        return self.token

    def get_allowed_hosts_validator(self):
        return AllowedHostsValidator([urllib.parse.urlparse(BASE).netloc])


def client():
    """A GraphServiceClient on the mock, its request adapter and its token provider."""
    tokens = ClientCredentials()
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(tokens))
    adapter.base_url = f"{BASE}/v1.0"
    return GraphServiceClient(request_adapter=adapter), adapter, tokens


def raw(method, path, body=None, headers=None):
    """A RequestInformation for the SDK's own adapter (auth, retry, error mapping), for what no request builder covers."""
    info = RequestInformation(method=Method[method])
    info.url = f"{BASE}/v1.0{path}"
    for k, v in (headers or {}).items():
        info.headers.try_add(k, v)
    if body is not None:
        info.set_stream_content(body, "application/json")
    return info
