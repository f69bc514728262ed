"""The router's side of the Harness Activity panel: /harness/api/* -> the collector's /api/*.

The router's dashboard shows Claude Code usage beside its own by embedding
`<claude-harness-activity endpoint="/harness">` (npm: claude-metrics/panel) or
calling `createClient({ endpoint: '/harness' })` (claude-metrics/client). Both
fetch `/harness/api/...` from the router's own origin, so no CORS and no
collector token in the browser: this router forwards GETs of the read-only JSON
API to the collector with the token it holds, and nothing else (no ingest, no
/metrics, no dashboard).

Mount it in an existing app:

    from harness_proxy import create_proxy
    app.include_router(create_proxy(os.environ["HARNESS_COLLECTOR_URL"], token=os.environ.get("HARNESS_TOKEN")))

or run it alone:

    HARNESS_COLLECTOR_URL=http://127.0.0.1:8013 uvicorn --factory harness_proxy:create_app --port 8080

Protect /harness like the rest of the router's dashboard (the router's own auth
dependency: `create_proxy(..., dependencies=[Depends(require_login)])`).
Standard library + FastAPI only. Answers the collector's status and JSON as is;
502 with {"error": ...} when the collector cannot be reached, 504 when it is slow.
"""

import json
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

# The collector's read-only dashboard API; anything else under /harness is refused here.
API_PATH = re.compile(r"^(summary|sessions|daily|filters|config|sessions/[^/]+(/events)?)$")
FORWARDED_PARAMS = {"source", "project", "label", "since", "until", "limit", "offset", "days", "after"}
MAX_RESPONSE_BYTES = 16 * 1024 * 1024


def create_proxy(collector_url, token=None, prefix="/harness", timeout_s=10.0, dependencies=None):
    base = collector_url.rstrip("/")
    if base.endswith("/metrics/harness"):
        base = base[: -len("/metrics/harness")]
    router = APIRouter(dependencies=dependencies or [])

    @router.get(prefix + "/api/{path:path}")
    def harness_api(path: str, request: Request):  # sync: FastAPI runs it in its thread pool
        if not API_PATH.match(path):
            return JSONResponse({"error": f"not a harness API: /api/{path}"}, status_code=404)
        params = [(k, v) for k, v in request.query_params.multi_items() if k in FORWARDED_PARAMS]
        url = f"{base}/api/{urllib.parse.quote(path, safe='/:@')}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        headers = {"accept": "application/json", "user-agent": "harness-proxy"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s) as res:
                return _answer(res.status, res.read(MAX_RESPONSE_BYTES + 1))
        except urllib.error.HTTPError as e:
            # The collector's own 4xx (bad filter, unknown session) with its reason; a 401 here means our token is wrong.
            body = e.read(MAX_RESPONSE_BYTES + 1)
            if e.code in (401, 403):
                return JSONResponse({"error": "the collector refused the router's token (HARNESS_TOKEN)"}, status_code=502)
            return _answer(e.code, body)
        except (socket.timeout, TimeoutError):
            return JSONResponse({"error": f"the collector did not answer within {timeout_s} s"}, status_code=504)
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            return JSONResponse({"error": f"the collector at {base} is unreachable: {reason}"}, status_code=502)

    return router


def _answer(status, body):
    if len(body) > MAX_RESPONSE_BYTES:
        return JSONResponse({"error": "the collector's answer is too large"}, status_code=502)
    try:
        json.loads(body)
    except ValueError:
        return JSONResponse({"error": "the collector did not answer with JSON (is HARNESS_COLLECTOR_URL the collector?)"}, status_code=502)
    return Response(content=body, status_code=status, media_type="application/json", headers={"cache-control": "no-store"})


def create_app():
    app = FastAPI(title="harness proxy")
    app.include_router(create_proxy(os.environ.get("HARNESS_COLLECTOR_URL", "http://127.0.0.1:8013"), token=os.environ.get("HARNESS_TOKEN") or None))
    return app
