"""A minimal JSON-over-HTTP client for reference servers (standard library only).

DELTA's servers are FastAPI apps: ``POST <base>/test_solution`` (Manufactoria) and
``POST <base>/test_program`` (BouncingSim), both taking and returning JSON.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from resd_envs.errors import ResdEnvError

#: Seconds to wait for one reference reply.
TIMEOUT = 60.0


class ReferenceServerError(ResdEnvError):
    """The reference server could not be reached or answered something unusable."""


def check_url(url: str) -> str:
    """The base URL without a trailing slash.

    Raises:
        ReferenceServerError: not an ``http://`` or ``https://`` URL with a host.
    """
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ReferenceServerError(
            f"--reference-url {url!r} is not an http(s) URL with a host, e.g. http://127.0.0.1:1235"
        )
    return url.rstrip("/")


def post_json(base: str, endpoint: str, payload: dict[str, Any], timeout: float = TIMEOUT) -> Any:
    """POST ``payload`` as JSON to ``base + endpoint`` and return the decoded JSON reply.

    Raises:
        ReferenceServerError: connection failure, timeout, an HTTP error status, or a reply that is not JSON.
    """
    url = base + endpoint
    data = json.dumps(payload).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            body = reply.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode("utf-8", "replace")
        raise ReferenceServerError(f"{url} answered HTTP {exc.code}: {detail}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ReferenceServerError(
            f"cannot reach the reference server at {url} ({reason}); is it running? "
            "(DELTA: uvicorn ...manufactoria_api:app --port 1235, ...ballsim_api:app --port 1234)"
        ) from exc
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise ReferenceServerError(f"{url} answered with something that is not JSON: {body[:200]!r}") from exc
