"""Example HTTP API harness that shells out to `claude -p`, recorded by claude-metrics.

A middleware reads X-Project and X-Session-ID from each request; the handler
runs Claude Code through `claude-metrics run --source api …`, which records the
call as one task (outcome, duration, turns, tokens, cost from the result JSON)
and ties the hooks fired inside that Claude Code session to it. stdout of
`claude` passes through untouched, and when the collector is down the events
are spooled and delivered later: the API never waits on metrics.

    CLAUDE_METRICS=/home/me/.local/bin/claude-metrics uvicorn claude_api:app --port 8080
    curl -s localhost:8080/v1/run -H 'X-Project: billing' -H 'X-Session-ID: req-42' \\
         -H 'content-type: application/json' -d '{"prompt": "summarize README.md"}'
"""

import contextvars
import json
import os
import shutil
import subprocess
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

CLAUDE_METRICS = os.environ.get("CLAUDE_METRICS") or shutil.which("claude-metrics") or "claude-metrics"
CLAUDE = os.environ.get("CLAUDE_BIN", "claude")
LABEL = os.environ.get("CLAUDE_API_LABEL", "api")
TIMEOUT_S = float(os.environ.get("CLAUDE_API_TIMEOUT_S", "600"))

project_var = contextvars.ContextVar("project", default=None)
session_var = contextvars.ContextVar("session_id", default=None)

app = FastAPI(title="claude API harness (example)")


@app.middleware("http")
async def metrics_context(request: Request, call_next):
    """Carries the caller's project and session id to whatever runs claude in this request."""
    p = project_var.set(request.headers.get("x-project"))
    s = session_var.set(request.headers.get("x-session-id"))
    try:
        return await call_next(request)
    finally:
        project_var.reset(p)
        session_var.reset(s)


def claude_command(prompt, project, task_id):
    """`claude-metrics run` wraps the call: one recorded task per request."""
    cmd = [CLAUDE_METRICS, "run", "--source", "api", "--label", LABEL, "--task-id", task_id]
    if project:
        cmd += ["--project", project]
    return cmd + ["--", CLAUDE, "-p", prompt, "--output-format", "json"]


def run_claude(prompt):
    task_id = session_var.get() or f"req-{uuid.uuid4()}"
    proc = subprocess.run(
        claude_command(prompt, project_var.get(), task_id),
        input=b"", capture_output=True, timeout=TIMEOUT_S, check=False,
    )
    try:
        result = json.loads(proc.stdout.decode() or "null")
    except ValueError:
        result = None
    return proc.returncode, result, proc.stderr.decode(errors="replace")[-2000:], task_id


@app.post("/v1/run")
def run(body: dict):
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        return JSONResponse({"error": "prompt: expected a non-empty string"}, status_code=400)
    code, result, stderr, task_id = run_claude(prompt)
    if code != 0 or not isinstance(result, dict):
        return JSONResponse({"error": "claude failed", "exit_code": code, "stderr": stderr, "task_id": task_id}, status_code=502)
    return {"task_id": task_id, "result": result.get("result"), "session_id": result.get("session_id"), "cost_usd": result.get("total_cost_usd")}
