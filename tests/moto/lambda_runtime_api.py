#!/usr/bin/env python3
"""A minimal Lambda Runtime API (2018-06-01) for running a function's `bootstrap` on this machine.

    lambda_runtime_api.py BOOTSTRAP EVENTS.json [--env NAME=VALUE ...] [--timeout SECONDS]

EVENTS.json is a JSON list of events. The bootstrap is started with AWS_LAMBDA_RUNTIME_API pointing
here (plus the variables Lambda always sets), each event is handed out in turn through
/runtime/invocation/next, and the answers posted to /response or /error are collected. Prints one JSON
object: {"init_error": ..., "results": [{"request_id", "status": "response"|"error", "body"}], "exit_code",
"init_ms"}. An init error (/runtime/init/error) ends the run. Standard library only.
"""

import argparse
import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"


class State:
    def __init__(self, events):
        self.pending = queue.Queue()
        for event in events:
            self.pending.put(event)
        self.total = len(events)
        self.results = []
        self.init_error = None
        self.first_next_at = None
        self.done = threading.Event()


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_):
            pass

        def _body(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                raw = self._read_chunked()
            try:
                return json.loads(raw or b"null")
            except ValueError:
                return raw.decode("utf-8", "replace")

        def _read_chunked(self):
            data = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()

        def _reply(self, status, body=b"", headers=None):
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path != f"{PREFIX}/invocation/next":
                return self._reply(404)
            if state.first_next_at is None:
                state.first_next_at = time.monotonic()
            try:
                event = state.pending.get(timeout=None if state.total else 0.1)
            except queue.Empty:
                event = None
            if event is None:
                state.done.set()
                # Hold the connection: the function waits here until it is stopped.
                time.sleep(3600)
                return
            request_id = str(uuid.uuid4())
            self.server.current = request_id
            body = json.dumps(event).encode()
            deadline = int((time.time() + 30) * 1000)
            self._reply(200, body, {
                "Content-Type": "application/json",
                "Lambda-Runtime-Aws-Request-Id": request_id,
                "Lambda-Runtime-Deadline-Ms": str(deadline),
                "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:local",
                "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
            })

        def do_POST(self):
            body = self._body()
            if self.path == f"{PREFIX}/init/error":
                state.init_error = body
                self._reply(202, b'{"status":"OK"}')
                state.done.set()
                return
            parts = self.path[len(PREFIX):].strip("/").split("/")
            if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                state.results.append({"request_id": parts[1], "status": parts[2], "body": body})
                self._reply(202, b'{"status":"OK"}')
                if len(state.results) == state.total:
                    state.done.set()
                return
            self._reply(404)

    return Handler


def invoke(bootstrap, events, env_overrides=None, timeout=60.0, log_path=None):
    """Runs `bootstrap` under this Runtime API, hands it `events` in turn, returns what happened."""
    state = State(events)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(os.environ)
    env.update({
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": os.path.basename(os.path.dirname(os.path.abspath(bootstrap))) or "local",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/local",
        "AWS_LAMBDA_LOG_STREAM_NAME": "local",
        "LAMBDA_TASK_ROOT": os.path.dirname(os.path.abspath(bootstrap)),
    })
    env.update(env_overrides or {})
    started = time.monotonic()
    with open(log_path or os.devnull, "ab") as log:
        process = subprocess.Popen([bootstrap], env=env, stdout=log, stderr=log)
        finished = state.done.wait(timeout)
        try:
            exit_code = process.wait(timeout=2 if state.init_error is not None else 0.2)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
            exit_code = None
    server.shutdown()
    init_ms = None if state.first_next_at is None else round((state.first_next_at - started) * 1000, 1)
    return {
        "timed_out": not finished,
        "init_error": state.init_error,
        "init_ms": init_ms,
        "results": state.results,
        "exit_code": exit_code,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bootstrap")
    parser.add_argument("events")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the function")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    with open(args.events) as f:
        events = json.load(f)
    overrides = dict(pair.partition("=")[::2] for pair in args.env)
    outcome = invoke(args.bootstrap, events, overrides, args.timeout, os.environ.get("LAMBDA_LOG"))
    json.dump(outcome, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
