"""claude-metrics for an existing FastAPI / Starlette harness: one file, standard library only.

Three lines in your main.py:

    from claude_metrics_middleware import ClaudeMetricsMiddleware
    app.add_middleware(ClaudeMetricsMiddleware, paths=("/v1/chat/completions", "/v1/jobs"), require_project=False)
    # jobs: track_session_start(job_id, model=..., project=...) ... track_session_end(job_id, success=...)

Every request under `paths` becomes one `api_request` event (source `api`): method,
path, status, duration_ms, time to first byte, project (X-Project), session_id
(X-Session-ID), the model when the request body, the response or the handler
(`set_model`) says it. With require_project=True a request without X-Project gets
a 400 with a JSON reason before the handler runs (and is still recorded). A request
counts as failed when the handler raised or answered 5xx.

Recording never adds latency or failure to a request: it is a pure ASGI middleware
(a streamed response streams as before, chunk by chunk), the event goes into a
bounded in-memory queue (full: dropped and counted, never waited for), and a
sender (a task on the server's event loop; a thread outside one) posts batches to
the collector (POST {"events": [...]} with the bearer token). When the collector is
down or refuses, the batch is handed, ids and timestamps unchanged, to
`claude-metrics emit --wire`, which keeps it in the spool; once the collector
answers again the sender starts `claude-metrics flush`. Each
event's id is a UUIDv7 born once, so a retried or re-spooled event counts once.
Events still in memory when the process is killed with SIGKILL are lost (a normal
exit or SIGTERM flushes them, for up to `shutdown_timeout_s`).

Jobs that outlive the request that started them are sessions:
track_session_start(job_id, ...) and track_session_end(job_id, success=..., ...)
(and their async twins) record a start and a completion that the collector folds
into one session (key `run:job:<job_id>`), even when they come from different
processes or replicas; a job whose end never comes shows as not active once the
collector's active window (30 minutes) has passed without an event. Called inside
a recorded request, they tie that request to the job and take its X-Project.
`job_env(job_id)` gives the environment for a `claude` child whose hooks should
fold into the same session.

Configuration, as the CLI reads it: the endpoint from the argument, else
CLAUDE_METRICS_ENDPOINT, METRICS_ENDPOINT, the config file's "endpoint"
($CLAUDE_METRICS_CONFIG, $XDG_CONFIG_HOME/claude-metrics/config.json or
~/.config/claude-metrics/config.json), else http://127.0.0.1:8013/metrics/harness;
the token from the argument, CLAUDE_METRICS_TOKEN or the file's "token"; the
`claude-metrics` binary from $CLAUDE_METRICS or PATH; the project default and
label from CLAUDE_METRICS_PROJECT / CLAUDE_METRICS_LABEL. Problems are logged on
the `claude_metrics` logger, at most once a minute each; `stats()` has the counts.
"""

import asyncio
import atexit
import collections
import contextlib
import contextvars
import http.client
import json
import logging
import os
import random
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from time import perf_counter
from urllib.parse import urlsplit

__all__ = [
    "ClaudeMetricsMiddleware",
    "Recorder",
    "get_recorder",
    "track_session_start",
    "track_session_end",
    "atrack_session_start",
    "atrack_session_end",
    "track_session",
    "set_model",
    "bind_request_to_job",
    "job_env",
    "job_run_id",
    "flush",
    "aflush",
    "stats",
]

VERSION = "0.1.0"
SCHEMA_VERSION = 1
DEFAULT_ENDPOINT = "http://127.0.0.1:8013/metrics/harness"
DEFAULT_PATHS = ("/v1/chat/completions", "/v1/jobs")
MAX_BATCH_EVENTS = 500  # the collector takes 1000; 500 keeps a body well under its 1 MiB cap
MAX_BATCH_BYTES = 512 * 1024
REQUEST_PEEK_BYTES = 64 * 1024  # of a JSON request body, for its "model"
RESPONSE_PEEK_BYTES = 4096  # of the first response chunk, for its "model"
MAX_TEXT = 256

log = logging.getLogger("claude_metrics")
_rand = random.getrandbits
_MODEL_RE = re.compile(rb'"model"\s*:\s*"([^"\\]{1,256})"')
_HOST = socket.gethostname()[:256]
_EMITTER = f"claude-metrics-middleware/{VERSION}"
_CONTEXT_JSON = json.dumps({"host": _HOST, "emitter_version": _EMITTER}, separators=(",", ":"))


def uuidv7(ms=None):
    """A time-ordered UUIDv7 (RFC 9562), as the CLI makes them: the spool sorts by birth.

    The random bits come from `random` (no syscall): ids need uniqueness, not secrecy, and
    `random` reseeds itself in a forked child, so forked workers never share a sequence."""
    ms = int(time.time() * 1000) if ms is None else int(ms)
    r = _rand(74)
    x = "%032x" % ((ms & 0xFFFFFFFFFFFF) << 80 | 0x7 << 76 | (r >> 62) << 64 | 0x2 << 62 | (r & 0x3FFFFFFFFFFFFFFF))
    return f"{x[0:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:32]}"


_iso_cache = [None, ""]


def _iso(t):
    """Epoch seconds → 2026-01-02T03:04:05.678Z (the second's prefix is cached: the sender formats thousands)."""
    ms = int(t * 1000)
    sec = ms // 1000
    if _iso_cache[0] != sec:
        _iso_cache[0], _iso_cache[1] = sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return "%s.%03dZ" % (_iso_cache[1], ms % 1000)


_json_str = json.encoder.encode_basestring_ascii  # the C encoder: a quoted, escaped JSON string


def _text(v, limit=MAX_TEXT):
    if v is None:
        return None
    s = str(v).strip()
    return s[:limit] if s else None


def _epoch(at):
    """`at` as epoch seconds: None (now), a number, or a datetime."""
    if at is None:
        return time.time()
    if isinstance(at, (int, float)):
        return float(at)
    return at.timestamp()


def _config_file(env):
    if env.get("CLAUDE_METRICS_CONFIG"):
        return env["CLAUDE_METRICS_CONFIG"]
    base = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config")
    return os.path.join(base, "claude-metrics", "config.json")


def _read_config_file(env):
    try:
        with open(_config_file(env), encoding="utf-8") as f:
            v = json.load(f)
        return v if isinstance(v, dict) else {}
    except (OSError, ValueError):
        return {}


def job_run_id(job_id):
    """The run id a job's events carry: the collector folds them into session `run:job:<job_id>`."""
    return f"job:{job_id}"[:MAX_TEXT]


class _Throttle:
    """Logs each kind of trouble at most once per interval, with how often it happened."""

    def __init__(self, interval_s=60.0):
        self.interval_s = interval_s
        self.last = {}
        self.count = {}
        self.lock = threading.Lock()

    def warn(self, kind, msg, *args):
        now = time.monotonic()
        with self.lock:
            self.count[kind] = self.count.get(kind, 0) + 1
            if now - self.last.get(kind, -1e9) < self.interval_s:
                return
            self.last[kind] = now
            n = self.count.pop(kind)
        log.warning(msg + (" (%d times since the last report)" % n if n > 1 else ""), *args)


_ASYNC, _THREAD = "async", "thread"


class Recorder:
    """The process's event pipeline: a bounded buffer and one sender.

    `record(event)` never blocks and never raises: it appends to a deque (no lock;
    past `max_queue` it drops and counts). The sender wakes every `linger_s`, turns
    what waits into JSON (the request path only queues the numbers and strings it saw,
    see _WIDTH) and posts it in batches. In a server the sender is a task on the server's own event loop,
    with a non-blocking HTTP client: no second thread competes with the requests for
    the GIL (a thread did, and cost the p99 milliseconds). Outside an event loop (a
    job runner script) it is a daemon thread. Only a hand-off to the spool runs in a
    worker thread. One per process is normal (`get_recorder()`); the middleware and
    the job functions share it.
    """

    def __init__(self, endpoint=None, token=None, max_queue=10_000, batch_size=200, linger_s=0.2,
                 timeout_s=2.0, max_backoff_s=30.0, claude_metrics=None, shutdown_timeout_s=3.0, env=None):
        env = os.environ if env is None else env
        file = _read_config_file(env)
        self.endpoint = endpoint or env.get("CLAUDE_METRICS_ENDPOINT") or env.get("METRICS_ENDPOINT") or file.get("endpoint") or DEFAULT_ENDPOINT
        self.token = token or env.get("CLAUDE_METRICS_TOKEN") or file.get("token") or None
        self._explicit = {k: v for k, v in (("CLAUDE_METRICS_ENDPOINT", endpoint), ("CLAUDE_METRICS_TOKEN", token)) if v}
        self.claude_metrics = claude_metrics or env.get("CLAUDE_METRICS") or shutil.which("claude-metrics")
        self.max_queue = max(1, int(max_queue))
        self.batch_size = max(1, min(int(batch_size), MAX_BATCH_EVENTS))
        self.linger_s = float(linger_s)
        self.timeout_s = float(timeout_s)
        self.max_backoff_s = float(max_backoff_s)
        self.shutdown_timeout_s = float(shutdown_timeout_s)
        u = urlsplit(self.endpoint)
        self._scheme, self._host, self._port = u.scheme, u.hostname or "127.0.0.1", u.port
        self._target = (u.path or "/") + (f"?{u.query}" if u.query else "")
        self._throttle = _Throttle()
        self._stats_lock = threading.Lock()
        self._stats = dict(sent=0, duplicates=0, rejected=0, spooled=0, dropped_queue_full=0,
                           dropped_undeliverable=0, post_failures=0, flushes_started=0)
        self._jobs = {}  # job_id -> (started epoch s, project, model, label): this process's open jobs
        self._jobs_lock = threading.Lock()
        self._reset()
        atexit.register(self._at_exit)

    # ---- producer side (request path) -------------------------------------

    def _reset(self):
        """Fresh buffer and no thread: at creation and in a forked child (the parent's thread is not there)."""
        self._buf = collections.deque()  # _WIDTH items per event, see _WIDTH
        self._wake = threading.Event()
        self._taken = 0  # events the sender took from the buffer (written by the sender only)
        self._inflight = 0
        self._inflight_batch = None
        self._sender = None
        self._aloop = None
        self._thread = None
        self._start_lock = threading.Lock()
        self._conn = None
        self._areader = self._awriter = None
        self._failures = 0
        self._open_until = 0.0
        self._handed_off_since_ok = False
        self._last_flush_start = -1e9
        self._children = []

    def record(self, event):
        """Queues one event (a dict); False when the buffer was full (dropped, counted)."""
        return self._put((event,) + _PAD)

    def _put(self, items):
        """Queues one event as its _WIDTH items (a request's fields, or an event and padding) in one
        deque.extend: atomic under the GIL, so the sender always finds whole events."""
        buf = self._buf
        if len(buf) >= self.max_queue * _WIDTH:
            self._bump("dropped_queue_full")
            self._throttle.warn("full", "claude-metrics: event queue full (%d); event dropped", self.max_queue)
            return False
        buf.extend(items)
        if self._sender is not _ASYNC or self._aloop.is_closed():
            self._start()
        elif len(buf) >= self.batch_size * _WIDTH and not self._wake.is_set():
            self._wake.set()
        return True

    def _take(self, n):
        """Up to n events from the buffer: a request as its tuple of fields, anything else as itself.
        One consumer at a time (the sender, or the exit flush when the sender is gone)."""
        pop = self._buf.popleft
        out = []
        with contextlib.suppress(IndexError):
            for _ in range(n):
                first = pop()
                if type(first) is float:  # a request's start time: its 18 other fields follow, in order
                    out.append((first, pop(), pop(), pop(), pop(), pop(), pop(), pop(), pop(), pop(), pop(), pop(),
                                pop(), pop(), pop(), pop(), pop(), pop(), pop()))
                else:
                    for _ in _PAD:
                        pop()
                    out.append(first)
        return out

    def _put_back(self, batch):
        """A batch the sender could not finish goes back to the front, in order (texts keep their ids)."""
        for e in reversed(batch):
            self._buf.extendleft(reversed(e if type(e) is tuple else (e,) + _PAD))

    def _start(self):
        """The sender for where we are: a task on this thread's running event loop, else a thread."""
        with self._start_lock:
            loop = asyncio._get_running_loop()
            if loop is not None:
                if self._sender is not _ASYNC or self._aloop is not loop:
                    self._aloop, self._sender = loop, _ASYNC
                    self._areader = self._awriter = None
                    loop.create_task(self._arun(loop))
            elif self._sender is _ASYNC and not self._aloop.is_closed():
                pass  # a worker thread of the server's loop: that sender takes it
            elif self._thread is None or not self._thread.is_alive():
                self._sender = _THREAD
                t = threading.Thread(target=self._run, name="claude-metrics-sender", daemon=True)
                t.start()
                self._thread = t
            if len(self._buf) >= self.batch_size * _WIDTH:
                self._wake.set()

    def _bump(self, key, n=1):
        with self._stats_lock:
            self._stats[key] += n

    def stats(self):
        with self._stats_lock:
            s = dict(self._stats)
        queued = len(self._buf) // _WIDTH
        s["recorded"] = self._taken + queued
        s["queued"] = queued + self._inflight
        s["endpoint"] = self.endpoint
        return s

    def _busy(self):
        return bool(self._buf) or self._inflight > 0

    def flush(self, timeout_s=5.0):
        """Until every queued event was sent or handed to the spool; False on timeout.

        Waits for the sender when it runs elsewhere; otherwise (no running loop, at exit,
        or called on the loop's own thread) delivers right here, in this thread."""
        loop = self._aloop
        async_alive = self._sender is _ASYNC and loop is not None and loop.is_running()
        if async_alive and asyncio._get_running_loop() is not loop or self._sender is _THREAD and self._thread.is_alive():
            end = time.monotonic() + timeout_s
            while self._busy():
                if time.monotonic() >= end:
                    return False
                self._wake.set()
                time.sleep(0.01)
            return True
        self._drain_here()
        return not self._buf

    async def aflush(self, timeout_s=5.0):
        """flush for async code: waits without blocking the event loop."""
        end = time.monotonic() + timeout_s
        if self._sender is not _ASYNC:
            return await asyncio.get_running_loop().run_in_executor(None, self.flush, timeout_s)
        while self._busy():
            if time.monotonic() >= end:
                return False
            await asyncio.sleep(0.01)
        return True

    def _drain_here(self):
        """Synchronous delivery in the calling thread; includes a batch a stopped loop left
        half-sent (sent again if it did arrive: same ids, the collector counts it once)."""
        batch = list(self._inflight_batch or [])
        self._inflight_batch = None
        n = len(batch)
        batch += self._take(len(self._buf) // _WIDTH)
        self._taken += len(batch) - n
        for i in range(0, len(batch), self.batch_size):
            chunk = batch[i:i + self.batch_size]
            try:
                self._deliver(self._serialize(chunk))
            except Exception:
                log.exception("claude-metrics: sender error; %d events lost", len(chunk))
                self._bump("dropped_undeliverable", len(chunk))

    def _at_exit(self):
        if self._sender is not None:
            self.flush(self.shutdown_timeout_s)

    # ---- sender thread ----------------------------------------------------

    def _run(self):
        buf = self._buf
        while True:
            self._wake.wait(self.linger_s)
            self._wake.clear()
            if self._sender is _ASYNC and not self._aloop.is_closed():
                return  # an event loop's task took over
            if not buf:
                self._reap()
                continue
            while buf:
                batch = self._take(self.batch_size)
                self._inflight = len(batch)
                self._taken += len(batch)
                try:
                    self._deliver(self._serialize(batch))
                except Exception:  # never let the sender die
                    log.exception("claude-metrics: sender error; %d events lost", len(batch))
                    self._bump("dropped_undeliverable", len(batch))
                finally:
                    self._inflight = 0

    async def _arun(self, loop):
        """The sender as a task on the server's event loop: sleeps, serializes in slices, posts."""
        buf = self._buf
        while self._aloop is loop:
            await asyncio.sleep(self.linger_s)
            while buf and self._aloop is loop:
                batch = self._take(self.batch_size)
                self._inflight, self._inflight_batch = len(batch), batch
                self._taken += len(batch)
                try:
                    for i, e in enumerate(batch):
                        # In place: a batch cut short below goes back with the texts (and ids) made so far.
                        batch[i] = _event_json(e)
                        if i % 25 == 24:
                            await asyncio.sleep(0)  # requests go on between slices
                    await self._adeliver(batch)
                except asyncio.CancelledError:
                    # The server is stopping: the batch goes back, for the exit flush (same ids).
                    if self._inflight_batch is batch:
                        self._inflight_batch = None
                        self._taken -= len(batch)
                        self._put_back(batch)
                    raise
                except Exception:
                    log.exception("claude-metrics: sender error; %d events lost", len(batch))
                    self._bump("dropped_undeliverable", len(batch))
                finally:
                    if self._inflight_batch is batch:
                        self._inflight_batch = None
                    self._inflight = 0

    @staticmethod
    def _serialize(batch):
        """Events → JSON texts, once: a retry or the spool gets the same text, the same event_id."""
        out = []
        for i, e in enumerate(batch):
            out.append(_event_json(e))
            if i % 25 == 24:
                time.sleep(0)  # let the event loop's thread have the GIL between slices
        return out

    @staticmethod
    def _body(events):
        return ('{"events":[' + ",".join(events) + "]}").encode("utf-8")

    def _deliver(self, events):
        """Sends JSON texts (synchronously): posted, or handed to the spool."""
        body = self._body(events)
        if len(body) > MAX_BATCH_BYTES and len(events) > 1:
            half = len(events) // 2
            self._deliver(events[:half])
            self._deliver(events[half:])
            return
        if time.monotonic() < self._open_until:
            self._hand_off(events, body)
            return
        then = self._after_post(events, *self._post(body))
        if then == "split":
            half = len(events) // 2
            self._deliver(events[:half])
            self._deliver(events[half:])
        elif then == "hand_off":
            self._hand_off(events, body)

    async def _adeliver(self, events):
        """_deliver on the event loop: a non-blocking POST; the spool hand-off in a worker thread."""
        body = self._body(events)
        if len(body) > MAX_BATCH_BYTES and len(events) > 1:
            half = len(events) // 2
            await self._adeliver(events[:half])
            await self._adeliver(events[half:])
            return
        then = "hand_off" if time.monotonic() < self._open_until else self._after_post(events, *(await self._apost(body)))
        if then == "split":
            half = len(events) // 2
            await self._adeliver(events[:half])
            await self._adeliver(events[half:])
        elif then == "hand_off":
            await asyncio.get_running_loop().run_in_executor(None, self._hand_off, events, body)

    def _after_post(self, events, kind, status, text):
        """Counts the answer and moves the breaker: 'done', 'split' or 'hand_off'."""
        if kind == "ok":
            self._failures = 0
            self._open_until = 0.0
            self._count_answer(events, text)
            if self._handed_off_since_ok:
                self._start_flush()
            return "done"
        if kind == "split" and len(events) > 1:
            return "split"
        if kind in ("rejected", "split"):
            # The collector read the batch and refused every event in it (400/422): sending it
            # again would be refused again. Logged with the reason; the spool's dead/ is for
            # events that reached it, these never will.
            self._bump("rejected", len(events))
            self._throttle.warn("rejected", "claude-metrics: collector rejected %d events: HTTP %s %s", len(events), status, text[:300])
            return "done"
        self._bump("post_failures")
        self._failures += 1
        backoff = min(self.max_backoff_s, 0.5 * (2 ** min(self._failures - 1, 16)))
        self._open_until = time.monotonic() + backoff
        self._throttle.warn("post", "claude-metrics: collector %s: %s; events go to the spool (next try in %.1fs)", self.endpoint, text[:200], backoff)
        return "hand_off"

    def _count_answer(self, events, text):
        try:
            r = json.loads(text) if text else {}
        except ValueError:
            r = {}
        rejected = r.get("rejected") if isinstance(r, dict) else None
        n_rej = len(rejected) if isinstance(rejected, list) else 0
        dup = r.get("duplicates", 0) if isinstance(r, dict) and isinstance(r.get("duplicates"), int) else 0
        self._bump("sent", len(events) - n_rej)
        if dup:
            self._bump("duplicates", dup)
        if n_rej:
            self._bump("rejected", n_rej)
            self._throttle.warn("rejected", "claude-metrics: collector rejected %d of %d events, e.g. %s", n_rej, len(events), json.dumps(rejected[0])[:300])

    def _post(self, body):
        """One POST on a kept-alive connection: ('ok'|'split'|'rejected'|'retry', status, text)."""
        headers = {"Content-Type": "application/json", "User-Agent": _EMITTER, "Content-Length": str(len(body))}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        for attempt in (0, 1):  # a kept-alive connection the server closed gets one fresh try
            try:
                if self._conn is None:
                    cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
                    self._conn = cls(self._host, self._port, timeout=self.timeout_s)
                self._conn.request("POST", self._target, body=body, headers=headers)
                res = self._conn.getresponse()
                text = res.read().decode("utf-8", "replace")
                if res.will_close:
                    self._close()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as err:
                self._close()
                if attempt == 1:
                    return "retry", None, f"{type(err).__name__}: {err}"
            except (OSError, http.client.HTTPException) as err:
                self._close()
                return "retry", None, f"{type(err).__name__}: {err}"
        return self._classify(res.status, text)

    @staticmethod
    def _classify(s, text):
        if 200 <= s < 300:
            return "ok", s, text
        if s == 413:
            return "split", s, text
        if s in (400, 422):
            return "rejected", s, text
        # 401/403 (token), 404 (wrong URL), 408, 429, 5xx: the spool keeps them until it is fixed.
        return "retry", s, f"HTTP {s} {text[:200]}"

    def _head(self, n):
        h = [f"POST {self._target} HTTP/1.1", f"Host: {self._host}" + (f":{self._port}" if self._port else ""),
             "Content-Type: application/json", f"Content-Length: {n}", f"User-Agent: {_EMITTER}"]
        if self.token:
            h.append(f"Authorization: Bearer {self.token}")
        return ("\r\n".join(h) + "\r\n\r\n").encode("latin-1")

    async def _apost(self, body):
        """_post on asyncio streams (keep-alive, one fresh try when a kept connection was closed)."""
        for attempt in (0, 1):
            reused = self._awriter is not None
            try:
                return await asyncio.wait_for(self._aexchange(self._head(len(body)) + body), self.timeout_s)
            except (ConnectionError, asyncio.IncompleteReadError) as err:
                self._aclose()
                if attempt == 1 or not reused:
                    return "retry", None, f"{type(err).__name__}: {err}"
            except (OSError, asyncio.TimeoutError, ValueError, IndexError) as err:
                self._aclose()
                return "retry", None, f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        return "retry", None, "unreachable"

    async def _aexchange(self, data):
        if self._awriter is None:
            https = self._scheme == "https"
            self._areader, self._awriter = await asyncio.open_connection(
                self._host, self._port or (443 if https else 80), ssl=ssl.create_default_context() if https else None)
        r, w = self._areader, self._awriter
        w.write(data)
        await w.drain()
        line = await r.readline()
        if not line:
            raise ConnectionResetError("connection closed by the collector")
        status = int(line.split(None, 2)[1])
        length, chunked, close = None, False, line.startswith(b"HTTP/1.0")
        while True:
            h = await r.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            k, _, v = h.partition(b":")
            k, v = k.strip().lower(), v.strip().lower()
            if k == b"content-length":
                length = int(v)
            elif k == b"transfer-encoding":
                chunked = b"chunked" in v
            elif k == b"connection":
                close = v == b"close"
        if chunked:
            parts = []
            while True:
                size = int((await r.readline()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while (await r.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(await r.readexactly(size))
                await r.readexactly(2)
            text = b"".join(parts)
        elif length is not None:
            text = await r.readexactly(length)
        else:
            text, close = await r.read(), True
        if close:
            self._aclose()
        return self._classify(status, text.decode("utf-8", "replace"))

    def _aclose(self):
        if self._awriter is not None:
            with contextlib.suppress(Exception):
                self._awriter.close()
        self._areader = self._awriter = None

    def _close(self):
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _child_env(self):
        env = dict(os.environ)
        env.update(self._explicit)
        # emit's default deadline (300 ms) is for hooks; a batch from here may take longer to spool.
        env.setdefault("CLAUDE_METRICS_TIMEOUT_MS", "3000")
        env.setdefault("CLAUDE_METRICS_SOURCE", "api")
        return env

    def _hand_off(self, events, body):
        """The spool keeps what the collector did not take: `claude-metrics emit --wire`, ids unchanged."""
        if not self.claude_metrics:
            self._bump("dropped_undeliverable", len(events))
            self._throttle.warn("nobin", "claude-metrics: collector unreachable and no claude-metrics binary (set CLAUDE_METRICS or PATH); %d events dropped", len(events))
            return
        try:
            r = subprocess.run([self.claude_metrics, "emit", "--wire"], input=body, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=self._child_env(), timeout=15, check=False)
            if r.returncode != 0:
                raise OSError(f"exit code {r.returncode}")
        except (OSError, subprocess.SubprocessError) as err:
            self._bump("dropped_undeliverable", len(events))
            self._throttle.warn("emit", "claude-metrics: could not hand %d events to %s emit --wire: %s", len(events), self.claude_metrics, err)
            return
        self._bump("spooled", len(events))
        self._handed_off_since_ok = True

    def _start_flush(self):
        """After an outage: deliver what the spool kept, in the background, at most every 10 s."""
        now = time.monotonic()
        if not self.claude_metrics or now - self._last_flush_start < 10:
            return
        self._last_flush_start = now
        self._handed_off_since_ok = False
        self._reap()
        try:
            self._children.append(subprocess.Popen([self.claude_metrics, "flush"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.DEVNULL, env=self._child_env(), start_new_session=True))
            self._bump("flushes_started")
        except OSError as err:
            self._throttle.warn("flush", "claude-metrics: could not start %s flush: %s", self.claude_metrics, err)

    def _reap(self):
        self._children = [c for c in self._children if c.poll() is None]

    # ---- jobs ---------------------------------------------------------------

    def _job_opened(self, job_id, at, project, model, label):
        with self._jobs_lock:
            if len(self._jobs) >= 10_000:  # bounded: ends that never come must not grow it forever
                self._jobs.pop(next(iter(self._jobs)))
            self._jobs[job_id] = (at, project, model, label)

    def _job_closed(self, job_id):
        with self._jobs_lock:
            return self._jobs.pop(job_id, None)


_recorder = None
_recorder_lock = threading.Lock()


def get_recorder(**kwargs):
    """The process's recorder, created on first use (with these arguments, else from the environment)."""
    global _recorder
    if _recorder is None:
        with _recorder_lock:
            if _recorder is None:
                _recorder = Recorder(**kwargs)
    return _recorder


def flush(timeout_s=5.0):
    """Waits for queued events to be sent or spooled (e.g. before a job runner exits)."""
    return get_recorder().flush(timeout_s)


async def aflush(timeout_s=5.0):
    """flush for async code: waits without blocking the event loop."""
    return await get_recorder().aflush(timeout_s)


def stats():
    """Counts: recorded, sent, duplicates, rejected, spooled, dropped_queue_full, dropped_undeliverable, queued, ..."""
    return get_recorder().stats()


# ---- requests -----------------------------------------------------------------

_current = contextvars.ContextVar("claude_metrics_request", default=None)

# A request being handled (its _Facts), as the job functions and set_model see it.

# What the request path queues, one per request: these _WIDTH fields, straight into the deque
# (`Recorder._put`); the sender takes them back as one tuple for `_request_json`.
#  0 wall0 (time.time at start)   1 duration (s)   2 time to the response's start (s, or None)
#  3 status (or None)   4 error (or None)   5 method   6 path   7 route   8 X-Project, 9 X-Session-ID
#  (the raw bytes or None)   10 response bytes   11 chunks   12 first response chunk (≤ RESPONSE_PEEK_BYTES)
# 13 request body peek   14 model   15 run_id   16 task_id   17 default project   18 label
# Only numbers, strings, bytes and None, and no container of them: nothing the garbage collector
# tracks waits in the queue. A tuple per request did (holding the scope's header list and the
# request's shared list, more): every request waiting for the sender counted toward the next young
# collection, and each collection moved them and whatever else was alive (open connections) a
# generation up, where only a full collection of the app's heap (28-37 ms) frees it.
# Another event (a job's, as a dict; or a JSON text going back after a cut-short batch) takes
# the same room: itself and _WIDTH - 1 Nones, so len(deque) // _WIDTH is the count of events.
# Not 20: CPython 3.11 counts a 20-tuple's birth toward the next collection and not always its
# death (measured: +0.2 per tuple made and dropped; 19 and 21: 0), and the request path makes one.
_WIDTH = 19
_PAD = (None,) * (_WIDTH - 1)


def _raw_ids(headers):
    """(X-Project, X-Session-ID) as the raw bytes (or None): the request path's only look at the headers."""
    project = session_id = None
    for name, value in headers:
        if name == b"x-project":
            project = value
        elif name == b"x-session-id":
            session_id = value
    return project, session_id


def _header_values(headers):
    """(X-Project, X-Session-ID) from ASGI headers (lower-cased names), trimmed, None when absent or blank."""
    project = session_id = None
    for name, value in headers:
        if name == b"x-project":
            project = _text(value.decode("latin-1"))
        elif name == b"x-session-id":
            session_id = _text(value.decode("latin-1"))
    return project, session_id


def _req_project(st):
    """The project of a request being handled: its X-Project, else the middleware's default."""
    return _header_values(st.headers)[0] or st.project


_json_cache = {}


def _json_text(s):
    """A short text as a JSON string; the values that repeat (methods, routes, projects) come from a small cache."""
    j = _json_cache.get(s)
    if j is None:
        j = _json_str(s)
        if len(_json_cache) < 4096:
            _json_cache[s] = j
    return j


def _event_json(e):
    """A queued event → its JSON text: a request's fields, an event dict, or a text made before (kept as is)."""
    t = type(e)
    if t is tuple:
        return _request_json(e)
    if t is str:
        return e
    return json.dumps(e, separators=(",", ":"), ensure_ascii=False)


def _request_json(e):
    """A request's tuple → its `api_request` event as JSON text (built by hand: several times faster
    than a dict through json.dumps). Runs on the sender; the id is born here, once."""
    (wall0, d, ttfb, status, error, method, path, route, raw_project, raw_session, nbytes, chunks,
     resp_peek, req_peek, model, run_id, task_id, default_project, label) = e
    status = status or 500
    if error is None and status >= 500:
        error = f"HTTP {status}"
    header_project = _text(raw_project.decode("latin-1")) if raw_project is not None else None
    session_id = _text(raw_session.decode("latin-1")) if raw_session is not None else None
    p = ['{"schema_version":1,"event_id":"', uuidv7(wall0 * 1000), '","event":"api_request","source":"api","timestamp":"',
         _iso(wall0 + d), '","duration_ms":', repr(round(d * 1000, 3)), ',"success":', "false" if error is not None else "true",
         ',"attrs":{"method":', _json_text(method), ',"path":', _json_text(path[:1024]), ',"route":', _json_text(route),
         ',"status":', str(int(status)), ',"ttfb_ms":', repr(round(ttfb * 1000, 3)) if ttfb is not None else "null",
         ',"response_bytes":', str(nbytes), ',"chunks":', str(chunks), '},"context":', _CONTEXT_JSON]
    for k, v in (("project", header_project or default_project), ("session_id", session_id), ("label", label),
                 ("run_id", run_id), ("task_id", task_id)):
        if v:
            p += [',"', k, '":', _json_text(v)]
    model = model or _model_in(resp_peek) or _model_in(req_peek, whole_json=True)
    if model:
        p += [',"model":', _json_text(model)]
    if error is not None:
        p += [',"error":', _json_str(error[:4096])]
    p.append("}")
    return "".join(p)


def _model_in(peek, whole_json=False):
    if not peek:
        return None
    if whole_json:
        try:
            v = json.loads(peek)
            if isinstance(v, dict) and isinstance(v.get("model"), str):
                return _text(v["model"])
        except ValueError:
            pass
    m = _MODEL_RE.search(peek)
    return _text(m.group(1).decode("utf-8", "replace")) if m else None


def bind_request_to_job(job_id):
    """Inside a recorded request: fold it into a job's session without starting or ending the job
    (a status poll, a cancel), so it is not counted as a task of its own."""
    st = _in_request()
    if st is not None:
        st.run_id, st.task_id = job_run_id(job_id), str(job_id)[:MAX_TEXT]


def set_model(model):
    """Inside a recorded request: the model this request used (when neither body says it)."""
    st = _in_request()
    if st is not None:
        st.model = _text(model)


def _in_request():
    st = _current.get()
    return st if st is not None and not st.sealed else None


_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))
_MISSING_PROJECT = json.dumps({"detail": "X-Project header required: name the project this request is for", "error": "missing_project"}).encode()


class ClaudeMetricsMiddleware:
    """Pure ASGI middleware: records each request under `paths` as one `api_request` event.

    paths: prefixes (a prefix matches itself and what is below it: /v1/jobs, /v1/jobs/42).
    require_project: answer 400 before the handler when X-Project is missing.
    project / label: defaults when the request names none (else CLAUDE_METRICS_PROJECT / _LABEL).
    endpoint, token, max_queue, ...: passed to the process's Recorder when this creates it.

    The request path only notes what it sees (two clock readings at the start, the status,
    byte counts, a reference to the first response chunk and to the JSON request body, the
    raw X-Project and X-Session-ID, the end time) on one _Exchange and queues them as plain
    values (see _WIDTH): no header parsing, no ids, no JSON (the sender does that), and
    nothing left behind that the garbage collector has to look at.
    """

    def __init__(self, app, paths=DEFAULT_PATHS, require_project=False, project=None, label=None, recorder=None, **recorder_kwargs):
        self.app = app
        self.paths = tuple(p.rstrip("/") or "/" for p in paths)
        self._exact = {p: p for p in self.paths}
        self.require_project = require_project
        self.project = _text(project or os.environ.get("CLAUDE_METRICS_PROJECT"))
        self.label = _text(label or os.environ.get("CLAUDE_METRICS_LABEL"))
        self.recorder = recorder or get_recorder(**recorder_kwargs)

    def _route(self, path):
        route = self._exact.get(path)
        if route is not None:
            return route
        for p in self.paths:
            if path.startswith(p + "/") or p == "/":
                return p
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        route = self._route(path)
        if route is None:
            await self.app(scope, receive, send)
            return
        x = _Exchange(self, scope, path, route, send, receive)
        if self.require_project and _header_values(x.headers)[0] is None:
            await x.send({"type": "http.response.start", "status": 400,
                          "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(_MISSING_PROJECT)).encode())]})
            await x.send({"type": "http.response.body", "body": _MISSING_PROJECT})
            return
        token = _current.set(x.facts)
        try:
            await self.app(scope, x.receive if x.method in _BODY_METHODS else receive, x.send)
        except BaseException as err:
            if not x.facts.sealed:
                # No response yet: the server answers 500 (Starlette's ServerErrorMiddleware).
                # Mid-stream: the client got a broken response. Either way the request failed.
                gone = isinstance(err, asyncio.CancelledError)
                if x.status is None:
                    x.status = 499 if gone else 500  # 499: nginx's "client closed request"
                x.seal("cancelled: client disconnected or server stopping" if gone else type(err).__name__)
            raise
        finally:
            _current.reset(token)
            if not x.facts.sealed:
                x.seal("no response" if x.status is None else None)


class _Exchange:
    """One recorded request while it runs: what the middleware notes of it, its send and receive
    wrappers, and (through `_current`) what set_model and the job functions add to it.

    One object with slots instead of closures: closing over this much state made ~17 cells, two
    functions and two lists per request, each an object the garbage collector counts; with 20
    requests in flight those counts alone brought every young collection sooner.
    """

    __slots__ = ("facts", "headers", "t0", "wall0", "method", "path",
                 "route", "status", "ttfb", "nbytes", "chunks", "resp_peek", "req_peek", "peek", "_send", "_receive", "_put")

    def __init__(self, mw, scope, path, route, send, receive):
        self.t0, self.wall0 = perf_counter(), time.time()
        self.headers = scope["headers"]
        self.facts = _Facts(self.headers, mw.project, mw.label)
        self.status = self.ttfb = self.resp_peek = self.req_peek = self.peek = None
        self.method, self.path, self.route = scope["method"], path, route
        self.nbytes = self.chunks = 0
        self._send, self._receive, self._put = send, receive, mw.recorder._put

    async def send(self, message):
        t = message["type"]
        if t == "http.response.body":
            body = message.get("body", b"")
            if body:
                self.chunks += 1
                self.nbytes += len(body)
                if self.resp_peek is None:
                    # bytes, never the app's memoryview or bytearray: the queue holds only atoms
                    self.resp_peek = body if len(body) <= RESPONSE_PEEK_BYTES and type(body) is bytes else bytes(body[:RESPONSE_PEEK_BYTES])
            await self._send(message)
            if not message.get("more_body", False) and not self.facts.sealed:
                self.seal(None)
            return
        if t == "http.response.start":
            self.status = message["status"]
            await self._send(message)
            self.ttfb = perf_counter()
            return
        await self._send(message)

    async def receive(self):
        # Keeps the body (up to REQUEST_PEEK_BYTES) when it is a JSON object, for its "model".
        message = await self._receive()
        if self.req_peek is None and message["type"] == "http.request":
            chunk = message.get("body", b"")
            peek = self.peek
            if not message.get("more_body", False) and not peek:
                if chunk[:1] != b"{":
                    self.req_peek = b""
                else:
                    self.req_peek = chunk if len(chunk) <= REQUEST_PEEK_BYTES and type(chunk) is bytes else bytes(chunk[:REQUEST_PEEK_BYTES])
            else:
                if chunk and (peek or chunk[:1] == b"{") and sum(map(len, peek or ())) < REQUEST_PEEK_BYTES:
                    if peek is None:
                        peek = self.peek = []
                    peek.append(bytes(chunk[:REQUEST_PEEK_BYTES]))
                if not message.get("more_body", False):
                    self.req_peek = b"".join(peek or ())[:REQUEST_PEEK_BYTES]
        return message

    def seal(self, error):
        """The request is over: its fields go to the queue (see _WIDTH); nothing changes them after."""
        f = self.facts
        f.sealed = True
        project, session_id = _raw_ids(self.headers)
        t0, ttfb = self.t0, self.ttfb
        self._put((self.wall0, perf_counter() - t0, ttfb - t0 if ttfb is not None else None, self.status, error, self.method,
                   self.path, self.route, project, session_id, self.nbytes, self.chunks, self.resp_peek, self.req_peek, f.model, f.run_id,
                   f.task_id, f.project, f.label))


class _Facts:
    """What the handler may add to its request (set_model, the job functions), found through `_current`.

    Apart from the _Exchange: the context holds this until every task and callback that copied it
    is gone, and holding the exchange (and through its send and receive the server's objects for
    the request) kept whole requests alive that long: measured in uvicorn, 5x the young collections."""

    __slots__ = ("sealed", "model", "run_id", "task_id", "headers", "project", "label")

    def __init__(self, headers, project, label):
        self.sealed = False
        self.model = self.run_id = self.task_id = None
        self.headers, self.project, self.label = headers, project, label


# ---- jobs ---------------------------------------------------------------------


def _job_event(name, job_id, at, project, label, model, extra):
    e = {
        "schema_version": SCHEMA_VERSION,
        "event_id": uuidv7(at * 1000),
        "event": name,
        "source": "api",
        "timestamp": _iso(at),
        "run_id": job_run_id(job_id),
        "task_id": str(job_id)[:MAX_TEXT],
        "context": {"host": _HOST, "emitter_version": _EMITTER},
    }
    for k, v in (("project", project), ("label", label), ("model", model)):
        if v:
            e[k] = v
    e.update({k: v for k, v in extra.items() if v is not None})
    return e


def track_session_start(job_id, model=None, project=None, label=None, at=None, attrs=None):
    """A job started: the first event of its session. Never blocks, never raises.

    Inside a recorded request, the request is tied to the job and its X-Project is the default.
    `at` (epoch seconds or datetime) backdates it; `attrs` adds small key/value facts.
    """
    try:
        rec = get_recorder()
        req = _in_request()
        project = _text(project) or (_req_project(req) if req else None) or _text(os.environ.get("CLAUDE_METRICS_PROJECT"))
        label = _text(label) or (req.label if req else None) or _text(os.environ.get("CLAUDE_METRICS_LABEL"))
        model = _text(model)
        t = _epoch(at)
        if req is not None:
            req.run_id, req.task_id = job_run_id(job_id), str(job_id)[:MAX_TEXT]
        rec._job_opened(str(job_id), t, project, model, label)
        extra = {"attrs": {"kind": "job", **(attrs or {})}}
        rec.record(_job_event("ralph_task_started", job_id, t, project, label, model, extra))
    except Exception:  # recording never hurts the harness
        log.exception("claude-metrics: track_session_start failed")


def track_session_end(job_id, success=None, error=None, result=None, model=None, project=None, label=None,
                      duration_ms=None, exit_code=None, at=None, attrs=None):
    """A job ended: completes its session with the outcome. Never blocks, never raises.

    success: defaults to no error (and, with `result`, not result["is_error"]).
    result: a `claude -p --output-format json` result; its cost, tokens, turns and
    Claude Code session id are recorded. The duration is measured when the start was in
    this process, else the collector takes it from the start it stored.
    """
    try:
        rec = get_recorder()
        req = _in_request()
        t = _epoch(at)
        opened = rec._job_closed(str(job_id))
        if opened is not None:
            started, p0, m0, l0 = opened
            project = project or p0
            model = model or m0
            label = label or l0
            if duration_ms is None:
                duration_ms = max(0.0, (t - started) * 1000)
        project = _text(project) or (_req_project(req) if req else None) or _text(os.environ.get("CLAUDE_METRICS_PROJECT"))
        label = _text(label) or (req.label if req else None) or _text(os.environ.get("CLAUDE_METRICS_LABEL"))
        if req is not None:
            req.run_id, req.task_id = job_run_id(job_id), str(job_id)[:MAX_TEXT]
        extra = {"attrs": {"kind": "job", **(attrs or {})}, "exit_code": exit_code}
        if isinstance(result, dict):
            usage = result.get("usage") if isinstance(result.get("usage"), dict) else {}
            usage = {k: usage[k] for k in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
                     if isinstance(usage.get(k), int) and usage[k] >= 0}
            extra.update(cost_usd=result.get("total_cost_usd"), num_turns=result.get("num_turns"),
                         duration_api_ms=result.get("duration_api_ms"), result_subtype=_text(result.get("subtype"), 64),
                         is_error=result.get("is_error") if isinstance(result.get("is_error"), bool) else None,
                         session_id=_text(result.get("session_id")), usage=usage or None)
            model = model or _text(result.get("model"))
            if success is None:
                success = result.get("is_error") is not True
        if success is None:
            success = error is None
        extra["success"] = bool(success)
        if error is not None:
            extra["error"] = str(error)[:4096]
        if duration_ms is not None:
            extra["duration_ms"] = round(float(duration_ms), 3)
        rec.record(_job_event("ralph_task_completed", job_id, t, project, label, _text(model), extra))
    except Exception:
        log.exception("claude-metrics: track_session_end failed")


async def atrack_session_start(job_id, **kwargs):
    """track_session_start for async code (it does not block either way)."""
    track_session_start(job_id, **kwargs)


async def atrack_session_end(job_id, **kwargs):
    """track_session_end for async code (it does not block either way)."""
    track_session_end(job_id, **kwargs)


class track_session:
    """`with track_session(job_id, model=...) as job:` (or `async with`): start, then end with
    success, or with failure and the exception's type when the block raises. Set `job.result`
    (a claude -p result) or `job.success` / `job.error` inside the block to say more."""

    def __init__(self, job_id, **start_kwargs):
        self.job_id = job_id
        self.start_kwargs = start_kwargs
        self.result = None
        self.success = None
        self.error = None

    def __enter__(self):
        track_session_start(self.job_id, **self.start_kwargs)
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            track_session_end(self.job_id, success=False, error=self.error or exc_type.__name__, result=self.result)
        else:
            track_session_end(self.job_id, success=self.success, error=self.error, result=self.result)
        return False

    async def __aenter__(self):
        return self.__enter__()

    async def __aexit__(self, exc_type, exc, tb):
        return self.__exit__(exc_type, exc, tb)


def job_env(job_id, project=None, label=None):
    """Environment for a `claude` child of this job: its hooks and transcript usage fold into the job's session."""
    env = {"CLAUDE_METRICS_RUN_ID": job_run_id(job_id), "CLAUDE_METRICS_TASK_ID": str(job_id)[:MAX_TEXT], "CLAUDE_METRICS_SOURCE": "api"}
    req = _in_request()
    project = _text(project) or (_req_project(req) if req else None)
    if project:
        env["CLAUDE_METRICS_PROJECT"] = project
    if label:
        env["CLAUDE_METRICS_LABEL"] = label
    return env


if hasattr(os, "register_at_fork"):
    # A forked worker (gunicorn --preload, multiprocessing) starts with its own queue and thread.
    os.register_at_fork(after_in_child=lambda: _recorder._reset() if _recorder is not None else None)
