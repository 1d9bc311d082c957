"""Helpers shared by the SDK fidelity tests: the mocks' admin API over urllib."""

import json
import os
import sys
import urllib.parse
import urllib.request


def env(name):
    value = os.environ.get(name)
    if not value:
        sys.exit(f"missing environment variable {name} (these scripts are run by mocks/tests/sdk.rs)")
    return value


def admin(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{base}/__admin/{path}", data=data, method=method)
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
        return json.loads(text) if text else None


def journal(base, path_prefix, method=None):
    query = f"journal?path={urllib.parse.quote(path_prefix, safe='')}" + (f"&method={method}" if method else "")
    return admin(base, "GET", query)


def step(message):
    print(f"ok: {message}", flush=True)
