"""Which REST API version a Kubeflow / RHOAI Model Registry speaks, and a client bound to it.

Every GA RHOAI release (2.16 -> 3.5) and upstream servers up to 0.3.14 serve only
`/api/model_registry/v1alpha3`; upstream >= 0.3.15 (RHOAI 3.6+) serve `/v1` (and still v1alpha3).
The `model-registry` client >= 0.3.15 hard-codes `/v1` and has no base-path option.

Why we keep that real client and rewrite its path prefix (rather than plain REST for both): the
two versions have the same wire schemas for everything we use (experiment tracking, which v1
dropped, is never called), so the client's typed models, request building and error mapping stay
valid; only the route prefix differs. That prefix is added at one place, `ApiClient.param_serialize`,
so one small subclass there is the whole adaptation. The version is detected once per connection.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass

from .base import KUBEFLOW_AUTH_HINT, RegistryEndpointError, RegistryUnavailable, status_error

log = logging.getLogger(__name__)

API_ROOT = "/api/model_registry/"
CLIENT_VERSION = "v1"  # what the pinned model-registry client writes into every path
API_VERSIONS = ("v1", "v1alpha3")  # probe order: the current API first, then the GA RHOAI one
_PROBE = "registered_models?pageSize=1"


def api_prefix(version: str) -> str:
    return f"{API_ROOT}{version}"


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, reduced to what an error message needs."""

    url: str
    status: int
    reason: str
    content_type: str
    body: bytes
    headers: dict[str, str]

    def snippet(self, limit: int = 80) -> str:
        text = self.body.decode("utf-8", errors="replace")
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
        if title:
            text = f"<title>{title.group(1)}</title>"
        text = " ".join(text.split())
        return (text[:limit] + "...") if len(text) > limit else text

    def describe(self) -> str:
        """'HTTP 200 OK, text/html: "<title>Log in</title>"' (one line)."""
        kind = self.content_type or "no content type"
        body = f'"{self.snippet()}"' if self.body.strip() else "empty body"
        return f"HTTP {self.status} {self.reason}, {kind}: {body}".replace("  ", " ")

    def json(self) -> object | None:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def fetch(url: str, token: str | None, timeout: float, verify: bool = True) -> Answer:
    """GET url; every HTTP status comes back as an Answer, transport failures raise OSError."""
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    ctx = None
    if url.startswith("https://"):
        ctx = ssl.create_default_context()
        if not verify:
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:  # noqa: S310 - http(s) only
            return Answer(url, resp.status, resp.reason or "", resp.headers.get_content_type()
                          if resp.headers.get("Content-Type") else "", resp.read(1 << 16), dict(resp.headers))
    except urllib.error.HTTPError as err:
        body = err.read(1 << 16) if err.fp else b""
        ctype = err.headers.get_content_type() if err.headers and err.headers.get("Content-Type") else ""
        return Answer(url, err.code, err.reason or "", ctype, body, dict(err.headers or {}))


def _is_api_list(answer: Answer) -> bool:
    data = answer.json()
    return isinstance(data, dict) and isinstance(data.get("items", []), list) and (
        "items" in data or "size" in data or "pageSize" in data
    )


def detect_api_version(base_url: str, token: str | None, timeout: float, verify: bool = True,
                       not_served: dict[str, Answer] | None = None) -> str:
    """Probe v1, then v1alpha3; return the first that answers the API's JSON.

    `not_served` (version -> its 404 answer) persists across retries, so a retry after a transient
    failure on v1alpha3 does not probe v1 again.

    Raises RegistryAuthError (401/403), RegistryUnavailable (5xx, unreachable: worth retrying) or
    RegistryEndpointError (404 on both, an HTML page, an empty or non-JSON body), each one line
    naming the URL, what came back and the likely cause.
    """
    not_served = {} if not_served is None else not_served
    for version in API_VERSIONS:
        if version in not_served:
            continue
        probe = f"{base_url}{api_prefix(version)}/{_PROBE}"
        try:
            ans = fetch(probe, token, timeout, verify)
        except OSError as exc:
            reason = getattr(exc, "reason", exc)
            raise RegistryUnavailable(
                f"model registry at {base_url} unreachable ({type(exc).__name__}: {reason});"
                " likely cause: wrong host/port, or the server is down"
            ) from None
        err = status_error(f"model registry at {base_url}", f"connect (GET {probe})", ans.status,
                           ans.describe().removeprefix("HTTP "), KUBEFLOW_AUTH_HINT)
        if err is not None:
            raise err
        if ans.status == 200 and _is_api_list(ans):
            _log_deprecation(base_url, version, ans)
            log.debug("model registry at %s speaks %s", base_url, api_prefix(version))
            return version
        if ans.status == 404:
            not_served[version] = ans  # this version is not served here: try the next one
            continue
        raise RegistryEndpointError(not_the_api(base_url, probe, ans))
    tried = " and ".join(api_prefix(v) for v in API_VERSIONS)
    what = "; ".join(dict.fromkeys(a.describe() for a in not_served.values()))
    raise RegistryEndpointError(
        f"model registry at {base_url} answered 404 on both {tried} ({what}); likely cause: wrong URL"
        " (give the registry's REST endpoint, e.g. https://<registry>-rest.<apps-domain>, without a path)"
        " or a server speaking neither API version"
    )


def not_the_api(base_url: str, probe: str, ans: Answer, api: str = "Model Registry", cause: str | None = None) -> str:
    """One line: what answered the probe instead of the API's JSON, and the likely cause."""
    if cause:
        pass
    elif not ans.body.strip():
        cause = "a route or proxy with nothing behind it, or a wrong URL"
    elif "html" in ans.content_type or ans.body.lstrip()[:1] == b"<":
        cause = "a login page or proxy in front of the registry (missing/invalid token) or a wrong URL"
    else:
        cause = "not a Model Registry server (wrong URL) or an unsupported API version"
    return (
        f"registry at {base_url} answered GET {probe} with {ans.describe()}, not the {api}"
        f" API's JSON; likely cause: {cause}"
    )


def _log_deprecation(base_url: str, version: str, ans: Answer) -> None:
    headers = {k.lower(): v for k, v in ans.headers.items()}
    marks = [f"{name}: {headers[name.lower()]}" for name in ("Deprecation", "Sunset") if name.lower() in headers]
    if marks:
        log.warning(
            "model registry at %s marks %s as deprecated (%s): plan the move to a newer API version",
            base_url, api_prefix(version), ", ".join(marks),
        )


def versioned_api_client(host_url: str, port: int, *, secure: bool, token: str | None, version: str):
    """The `model-registry` ModelRegistryAPIClient, with its `/v1` route prefix replaced by `version`."""
    from model_registry.core import ModelRegistryAPIClient
    from mr_openapi import ApiClient

    old, new = api_prefix(CLIENT_VERSION) + "/", api_prefix(version) + "/"

    class _PrefixedApiClient(ApiClient):
        def param_serialize(self, *args, **kwargs):
            method, url, headers, body, post_params = super().param_serialize(*args, **kwargs)
            return method, url.replace(old, new, 1), headers, body, post_params

    class _VersionedAPIClient(ModelRegistryAPIClient):
        from contextlib import asynccontextmanager as _acm

        @_acm
        async def get_client(self):
            from mr_openapi import ModelRegistryServiceApi

            api_client = _PrefixedApiClient(self.config)
            try:
                yield ModelRegistryServiceApi(api_client)
            finally:
                await api_client.close()

    if secure:
        base = ModelRegistryAPIClient.secure_connection(host_url, port, user_token=token or "")
    else:
        base = ModelRegistryAPIClient.insecure_connection(host_url, port, token)
    return _VersionedAPIClient(base.config)
