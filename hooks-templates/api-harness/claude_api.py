"""Example HTTP API harness that shells out to `claude -p`, recorded by claude-metrics.

Built on claude_metrics_middleware.py (the same three lines an existing harness adds):
every request to /v1/run and /v1/jobs is an `api_request` event with its status,
duration, X-Project and X-Session-ID, and every `claude -p` call is a job, one
session in the collector with its outcome, duration, turns, tokens and cost (from
the result JSON), the hooks fired inside that Claude Code session folded into it.

    POST /v1/run   {"prompt": "..."}  runs claude now and answers with its result
    POST /v1/jobs  {"prompt": "..."}  202 {"job_id"}: claude runs in the background
    GET  /v1/jobs/{job_id}            {"status": "running" | "succeeded" | "failed", ...}

    CLAUDE_METRICS=/home/me/.local/bin/claude-metrics uvicorn claude_api:app --port 8080
    curl -s localhost:8080/v1/run -H 'X-Project: billing' -H 'X-Session-ID: req-42' \\
         -H 'content-type: application/json' -d '{"prompt": "summarize README.md"}'

CLAUDE_API_REQUIRE_PROJECT=1 answers 400 to a request without X-Project. stdout of
`claude` is parsed, never altered; when the collector is down the events are
spooled and delivered later: the API never waits on metrics.
"""

import json
import os
import subprocess
import threading
import uuid
from collections import OrderedDict

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from claude_metrics_middleware import ClaudeMetricsMiddleware, bind_request_to_job, job_env, track_session_end, track_session_start

CLAUDE = os.environ.get("CLAUDE_BIN", "claude")
LABEL = os.environ.get("CLAUDE_API_LABEL", "api")
TIMEOUT_S = float(os.environ.get("CLAUDE_API_TIMEOUT_S", "600"))
REQUIRE_PROJECT = os.environ.get("CLAUDE_API_REQUIRE_PROJECT", "") not in ("", "0", "false")
MAX_JOBS = 1000  # finished jobs kept for GET /v1/jobs/{id}

app = FastAPI(title="claude API harness (example)")
app.add_middleware(ClaudeMetricsMiddleware, paths=("/v1/run", "/v1/jobs"), require_project=REQUIRE_PROJECT, label=LABEL)

jobs = OrderedDict()
jobs_lock = threading.Lock()


def run_claude(prompt, env):
    """Runs `claude -p … --output-format json`: (exit code, result dict or None, stderr tail)."""
    try:
        proc = subprocess.run([CLAUDE, "-p", prompt, "--output-format", "json"], input=b"", capture_output=True,
                              timeout=TIMEOUT_S, check=False, env={**os.environ, **env})
    except subprocess.TimeoutExpired:
        return 124, None, f"timed out after {TIMEOUT_S:.0f}s"
    except OSError as err:
        return 127, None, f"cannot run {CLAUDE}: {err}"
    try:
        result = json.loads(proc.stdout.decode() or "null")
    except ValueError:
        result = None
    return proc.returncode, result if isinstance(result, dict) else None, proc.stderr.decode(errors="replace")[-2000:]


def run_job(job_id, prompt, env):
    """One claude call as one job: the end records outcome, tokens and cost; returns the job's public state."""
    code, result, stderr = run_claude(prompt, env)
    ok = code == 0 and result is not None and result.get("is_error") is not True
    error = None if ok else (f"claude: {result.get('subtype', 'error')}" if result else f"exit code {code}")
    track_session_end(job_id, success=ok, error=error, result=result, exit_code=code)
    state = {"job_id": job_id, "status": "succeeded" if ok else "failed", "exit_code": code}
    if result:
        state.update(result=result.get("result"), session_id=result.get("session_id"), cost_usd=result.get("total_cost_usd"))
    if not ok:
        state["stderr"] = stderr
    return state


def prompt_of(body):
    prompt = body.get("prompt")
    return prompt if isinstance(prompt, str) and prompt else None


@app.post("/v1/run")
def run(body: dict):
    prompt = prompt_of(body)
    if prompt is None:
        return JSONResponse({"error": "prompt: expected a non-empty string"}, status_code=400)
    job_id = f"run-{uuid.uuid4()}"
    track_session_start(job_id, model=body.get("model"), label=LABEL)
    state = run_job(job_id, prompt, job_env(job_id, label=LABEL))
    if state["status"] != "succeeded":
        return JSONResponse({"error": "claude failed", **state}, status_code=502)
    return state


@app.post("/v1/jobs", status_code=202)
def start_job(body: dict):
    prompt = prompt_of(body)
    if prompt is None:
        return JSONResponse({"error": "prompt: expected a non-empty string"}, status_code=400)
    job_id = f"job-{uuid.uuid4()}"
    track_session_start(job_id, model=body.get("model"), label=LABEL)
    env = job_env(job_id, label=LABEL)
    with jobs_lock:
        jobs[job_id] = {"job_id": job_id, "status": "running"}
        while len(jobs) > MAX_JOBS:
            jobs.popitem(last=False)

    def work():
        try:
            state = run_job(job_id, prompt, env)
        except Exception as err:  # the job failed, the API did not
            track_session_end(job_id, success=False, error=type(err).__name__)
            state = {"job_id": job_id, "status": "failed", "error": type(err).__name__}
        with jobs_lock:
            jobs[job_id] = state

    threading.Thread(target=work, name=f"job-{job_id}", daemon=True).start()
    return {"job_id": job_id, "status": "running"}


@app.get("/v1/jobs/{job_id}")
def get_job(job_id: str):
    with jobs_lock:
        state = jobs.get(job_id)
    if state is None:
        return JSONResponse({"error": f"no job {job_id}"}, status_code=404)
    bind_request_to_job(job_id)  # a poll belongs to its job's session, it is not a task of its own
    return state
