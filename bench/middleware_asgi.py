"""What the middleware costs per request without the network (run by bench/middleware.mjs).

A bare ASGI app answering a chat completion, called directly N times, with and
without ClaudeMetricsMiddleware (its events going to the live collector given as
argv[1]): the request path's added wall time, and the added CPU of the whole
process per request, the sender thread's batching, JSON and HTTP included.
Alternating repetitions, medians.
"""

import asyncio
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.environ["HARNESS_MIDDLEWARE_DIR"])
import claude_metrics_middleware as cm  # noqa: E402

N = 20_000
REPS = 5
BODY = json.dumps({"model": "claude-bench", "messages": [{"role": "user", "content": "hi"}]}).encode()
REPLY = b'{"id":"c1","object":"chat.completion","model":"claude-bench","choices":[{"message":{"role":"assistant","content":"Hello"}}]}'
SCOPE = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": b"",
         "headers": [(b"content-type", b"application/json"), (b"x-project", b"bench"), (b"x-session-id", b"bench-session")]}


async def app(scope, receive, send):
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": REPLY})


async def receive():
    return {"type": "http.request", "body": BODY, "more_body": False}


async def send(message):
    pass


async def drive(a, n):
    for _ in range(n):
        await a(dict(SCOPE), receive, send)


def main():
    rec = cm.Recorder(endpoint=sys.argv[1], max_queue=N * 2)
    wrapped = cm.ClaudeMetricsMiddleware(app, recorder=rec)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(drive(wrapped, 1000))  # warm-up, starts the sender
    loop.run_until_complete(rec.aflush(30))
    wall = {"base": [], "mw": []}
    cpu = {"base": [], "mw": []}
    for r in range(REPS):
        for k in (("base", "mw") if r % 2 == 0 else ("mw", "base")):
            c0, w0 = time.process_time(), time.perf_counter()
            loop.run_until_complete(drive(app if k == "base" else wrapped, N))
            w1 = time.perf_counter()
            if k == "mw":
                loop.run_until_complete(rec.aflush(60))  # the sender's work is part of the cost
            c1 = time.process_time()
            wall[k].append((w1 - w0) / N * 1e6)
            cpu[k].append((c1 - c0) / N * 1e6)
    s = rec.stats()
    loop.close()
    med = statistics.median
    print(f"in-process, {N} requests x {REPS} (medians): request path +{med(wall['mw']) - med(wall['base']):.1f} us/request "
          f"(bare app {med(wall['base']):.1f} us); CPU incl. the sender +{med(cpu['mw']) - med(cpu['base']):.1f} us/request; "
          f"{s['sent']} events sent, {s['dropped_queue_full']} dropped")


main()
