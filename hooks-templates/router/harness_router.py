"""Reference POST /metrics/harness for a Python (FastAPI) router.

Accepts the same events as `claude-metrics serve`: one event, a batch
{"events": [...]}, or the bare shape a shell script sends with no event_id.
Deduplicates by event_id (INSERT OR IGNORE), so the emitter's at-least-once
delivery is counted once. Folds events into harness_sessions (schema.sql).

Mount it in an existing app:

    from harness_router import create_router
    app.include_router(create_router("/var/lib/router/harness.db", token=os.environ.get("HARNESS_TOKEN")))

or run it alone:

    HARNESS_DB=./harness.db uvicorn --factory harness_router:create_app --host 127.0.0.1 --port 8013

Answers: 200 {"accepted", "duplicates", "rejected": [{index, event_id, reason}]}
(the emitter dead-letters the rejected ones); 400/422 with {"error": reason}
for a body or single event it cannot take; 401 without the bearer token when
one is set. GET /metrics/harness answers 204 (authorized) or 401, storing
nothing: `claude-metrics doctor` uses it to check the token.
Standard library + FastAPI only (works with FastAPI 0.9x and pydantic 1 or 2).
"""

import hashlib
import hmac
import json
import os
import re
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

SOURCES = ("interactive", "ralph", "api", "cron", "backfill")
MAX_BATCH_EVENTS = 1000
MAX_BODY_BYTES = 8 * 1024 * 1024
EVENT_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
SCHEMA = (Path(__file__).with_name("schema.sql")).read_text()
COMPLETION_EVENTS = {"ralph_task_completed", "SessionEnd"}
TOOL_EVENTS = {"PostToolUse", "PostToolUseFailure"}
TOKEN_KINDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def canonical_json(value):
    """The emitter's canonicalJson: sorted keys, no spaces, JSON.stringify scalars."""
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + canonical_json(value[k]) for k in sorted(value)) + "}"
    if isinstance(value, list):
        return "[" + ",".join(canonical_json(v) for v in value) + "]"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value, ensure_ascii=False)


def deterministic_id(*parts):
    """The emitter's deterministicId: sha256 over length-prefixed parts, shaped as a UUID (v8)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(f"{len(p)}:{p}".encode("utf-8"))
    b = bytearray(h.digest()[:16])
    b[6] = (b[6] & 0x0F) | 0x80
    b[8] = (b[8] & 0x3F) | 0x80
    x = b.hex()
    return f"{x[0:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:32]}"


def _parse_ts(value):
    if not isinstance(value, str) or not (10 <= len(value) <= 40):
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def validate_event(raw, received_at):
    """Returns (event, None) or (None, reason). Fills event_id and timestamp of the bare shape."""
    if not isinstance(raw, dict):
        return None, "expected a JSON object"
    ev = dict(raw)
    if "event_id" not in ev:
        # Derived from the body as sent (before the timestamp is filled), so a retried curl is one event.
        ev["event_id"] = deterministic_id("bare", canonical_json(raw))
        ev.setdefault("timestamp", received_at)
    if not isinstance(ev.get("event_id"), str) or not EVENT_ID_RE.match(ev["event_id"]):
        return None, "event_id: expected 1-128 characters of [A-Za-z0-9._:-]"
    if not isinstance(ev.get("event"), str) or not (1 <= len(ev["event"]) <= 128):
        return None, "event: expected a non-empty string"
    if ev.get("source") not in SOURCES:
        return None, f"source: must be one of {', '.join(SOURCES)}, got {json.dumps(ev.get('source'))}"
    ts = _parse_ts(ev.get("timestamp"))
    if ts is None:
        return None, "timestamp: not a date-time"
    ev["timestamp"] = ts
    for key in ("duration_ms", "cost_usd"):
        v = ev.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0):
            return None, f"{key}: expected a number >= 0"
    if ev.get("success") is not None and not isinstance(ev.get("success"), bool):
        return None, "success: expected true or false"
    return ev, None


def session_key(ev):
    """As serve keys them: the run, else the Claude Code session, else the task, else the event alone."""
    if ev.get("run_id") or ev.get("session_id"):
        return ev.get("run_id") or ev.get("session_id")
    if ev.get("task_id"):
        return f"task:{ev['source']}:{ev.get('label') or ''}:{ev['task_id']}"
    return f"event:{ev['event_id']}"


class HarnessStore:
    """SQLite in WAL mode; one connection guarded by a lock (FastAPI runs sync handlers in threads)."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def ingest(self, events, received_at):
        accepted = duplicates = 0
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                touched = set()
                for ev in events:
                    usage = ev.get("usage") or {}
                    key = session_key(ev)
                    cur = self.db.execute(
                        "INSERT OR IGNORE INTO harness_events (event_id, event, source, ts, received_at, session_key, session_id, run_id, task_id, label, project,"
                        " tool_name, success, duration_ms, exit_code, error, model, input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens,"
                        " cost_usd, num_turns, body) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (
                            ev["event_id"], ev["event"], ev["source"], ev["timestamp"], received_at, key,
                            ev.get("session_id"), ev.get("run_id"), ev.get("task_id"), ev.get("label"), ev.get("project"),
                            ev.get("tool_name"), None if ev.get("success") is None else int(ev["success"]), ev.get("duration_ms"),
                            ev.get("exit_code"), ev.get("error"), ev.get("model"),
                            *(usage.get(k) for k in TOKEN_KINDS), ev.get("cost_usd"), ev.get("num_turns"),
                            json.dumps(ev, ensure_ascii=False),
                        ),
                    )
                    if cur.rowcount == 1:
                        accepted += 1
                        touched.add(key)
                    else:
                        duplicates += 1
                for key in touched:
                    self._fold(key)
                self.db.execute("COMMIT")
            except Exception:
                self.db.execute("ROLLBACK")
                raise
        return accepted, duplicates

    def _fold(self, key):
        """Recompute one session row from its events: order-independent and idempotent."""
        rows = self.db.execute(
            "SELECT event, source, ts, session_id, run_id, task_id, label, project, success, duration_ms, error, model, num_turns, cost_usd,"
            " input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, tool_name FROM harness_events WHERE session_key = ? ORDER BY ts, event_id",
            (key,),
        ).fetchall()
        s = {"id": key, "events_count": len(rows), "tool_calls_count": 0, "cost_usd": 0.0, **{k: 0 for k in TOKEN_KINDS}}
        usage_seen = False
        completion = None
        for (event, source, ts, sid, rid, tid, label, project, success, duration, error, model, turns, cost, i, o, cc, cr, tool) in rows:
            s.setdefault("started_at", ts)
            s["source"] = s.get("source") or source
            for name, v in (("claude_session_id", sid), ("run_id", rid), ("task_id", tid), ("label", label), ("project", project), ("model", model)):
                if v is not None:
                    s[name] = v
            if error:
                s["error"] = error
            if event in TOOL_EVENTS:
                s["tool_calls_count"] += 1
            if event == "usage":
                usage_seen = True
                s["cost_usd"] += cost or 0
                for k, v in zip(TOKEN_KINDS, (i, o, cc, cr)):
                    s[k] += v or 0
            # A request from the API middleware in no job or session is a task of its own.
            if event in COMPLETION_EVENTS or (event == "api_request" and not (sid or rid or tid)):
                completion = (ts, success, duration, turns, cost, (i, o, cc, cr))
        if completion:
            ts, success, duration, turns, cost, tokens = completion
            s.update(completed_at=ts, success=1 if success is None else success, duration_ms=duration, num_turns=turns)
            if not usage_seen:
                s["cost_usd"] = cost or 0
                for k, v in zip(TOKEN_KINDS, tokens):
                    s[k] = v or 0
        cols = list(s)
        self.db.execute(
            f"INSERT OR REPLACE INTO harness_sessions ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
            [s[c] for c in cols],
        )


def create_router(db_path, token=None):
    store = HarnessStore(db_path)
    router = APIRouter()

    def authorized(request):
        if not token:
            return True
        got = request.headers.get("authorization", "")
        return got.startswith("Bearer ") and hmac.compare_digest(got[7:].encode(), token.encode())

    def error(status, reason, **extra):
        return JSONResponse({"error": reason, **extra}, status_code=status)

    @router.get("/metrics/harness")
    def probe(request: Request):
        return Response(status_code=204) if authorized(request) else error(401, "unauthorized: send Authorization: Bearer <token>")

    @router.post("/metrics/harness")
    async def ingest(request: Request):
        if not authorized(request):
            return error(401, "unauthorized: send Authorization: Bearer <token>")
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            return error(413, f"body larger than {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(raw)
        except ValueError as e:
            return error(400, f"not valid JSON: {e}")
        received_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if isinstance(body, dict) and "events" in body:
            items = body["events"]
            if not isinstance(items, list) or not items:
                return error(400, "events: expected a non-empty array")
            if len(items) > MAX_BATCH_EVENTS:
                return error(400, f"events: at most {MAX_BATCH_EVENTS} per batch, got {len(items)}")
            good, rejected = [], []
            for index, item in enumerate(items):
                ev, reason = validate_event(item, received_at)
                if ev is None:
                    rid = item.get("event_id") if isinstance(item, dict) else None
                    rejected.append({"index": index, "event_id": rid, "reason": reason})
                else:
                    good.append(ev)
            if not good:
                return error(400, "every event in the batch was rejected", rejected=rejected)
            accepted, duplicates = store.ingest(good, received_at)
            return {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}
        if isinstance(body, list):
            return error(400, 'expected an event object or {"events":[...]}, got an array')
        ev, reason = validate_event(body, received_at)
        if ev is None:
            return error(422, reason)
        accepted, duplicates = store.ingest([ev], received_at)
        return {"accepted": accepted, "duplicates": duplicates, "rejected": []}

    return router


def create_app():
    app = FastAPI(title="harness metrics (reference)")
    app.include_router(create_router(os.environ.get("HARNESS_DB", "harness.db"), token=os.environ.get("HARNESS_TOKEN") or None))
    return app

