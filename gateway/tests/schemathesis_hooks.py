"""Schemathesis hooks of the gateway's fuzz test (gateway/tests/fuzz.rs), loaded by
SCHEMATHESIS_HOOKS=schemathesis_hooks.

Two things the OpenAPI document alone cannot tell schemathesis:

- The URLs a tenant names and our processes later connect to (a webhook endpoint, a health
  check's target) point at loopback in the fuzz run, whatever was generated: the stack under test
  reaches nothing outside 127.0.0.0/8. What was generated stays in the path (or the port), so the
  gateway still sees odd input there.
- GET /api/events/stream answers Server-Sent Events and never ends by itself, while schemathesis
  reads a body to its end (schemathesis/schemathesis#3633). Its status and headers are what there is
  to check, so the body of an event stream is not read and the connection is closed.
"""

from urllib.parse import quote

import schemathesis

LOOPBACK = "127.0.0.1"


def _loopback_url(value):
    if not isinstance(value, str) or value.startswith(f"http://{LOOPBACK}:9/"):
        return value
    return f"http://{LOOPBACK}:9/{quote(value, safe='')}"


def _loopback_host_port(value):
    if not isinstance(value, str):
        return value
    return f"{LOOPBACK}:{value.rpartition(':')[2]}"


def _urls_on_loopback(path, body):
    if not isinstance(body, dict):
        return
    if "webhook_url" in body:
        body["webhook_url"] = _loopback_url(body["webhook_url"])
    if path == "/api/monitoring/health-checks" and "target" in body:
        if body.get("kind") == "tcp":
            body["target"] = _loopback_host_port(body["target"])
        else:
            body["target"] = _loopback_url(body["target"])


def _end_event_streams(response, *args, **kwargs):
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        # What `requests` would have read to the end of the stream: nothing yet.
        response._content = b""
        response._content_consumed = True
        response.raw.close()
    return response


# Just before sending, so it holds for the cases of every phase (generated, coverage, stateful).
@schemathesis.hook
def before_call(ctx, case, kwargs):
    _urls_on_loopback(case.operation.path, case.body)
    if case.operation.path == "/api/events/stream":
        kwargs.setdefault("hooks", {}).setdefault("response", []).append(_end_event_streams)
