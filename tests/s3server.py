"""An S3-compatible server for tests and benchmarks: moto's S3 in its own process on 127.0.0.1.

moto's server speaks the S3 HTTP API; s3fs reaches it through ``AWS_ENDPOINT_URL``. This module wraps
moto's WSGI application with two things a test of a storage layer needs:

* a request log by operation (``list``, ``get``, ``head``, ``put``, ``mpu_*``, ``delete``, ...), counted on
  the server, so requests from every process (the driver, Ray workers, a killed driver) are counted;
* injected transient errors: every ``every``-th S3 request answers ``503 SlowDown`` (throttling), ``500
  InternalError``, or has its connection reset before any response (``reset``), as object stores do now and
  then; clients must retry them without loss or duplication.

Control endpoints (not S3): ``GET /__ctl/counts``, ``GET /__ctl/log`` (the requests), ``POST /__ctl/reset``,
``POST /__ctl/faults?every=N&kind=K`` (``every=0`` turns faults off). Run as ``python -m tests.s3server``
(prints ``PORT <n>`` when ready), or use :class:`S3Server` as a context manager.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from typing import Any
from urllib.parse import parse_qs

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}
#: operations that create an object (a completed multipart upload is one object)
OBJECT_WRITES = ("put", "mpu_complete", "copy")


def classify(method: str, path: str, query: str, headers: dict[str, str]) -> str:
    """The S3 operation of a path-style request."""
    parts = [p for p in path.split("/") if p]
    q = parse_qs(query, keep_blank_values=True)
    has_key = len(parts) > 1
    if method == "GET":
        return "get" if has_key else ("list" if parts else "list_buckets")
    if method == "HEAD":
        return "head" if has_key else "head_bucket"
    if method == "PUT":
        if not has_key:
            return "create_bucket"
        if "uploadId" in q:
            return "upload_part"
        return "copy" if "HTTP_X_AMZ_COPY_SOURCE" in headers else "put"
    if method == "POST":
        if "delete" in q:
            return "delete_batch"
        if "uploads" in q:
            return "mpu_start"
        if "uploadId" in q:
            return "mpu_complete"
        return "post"
    if method == "DELETE":
        return "mpu_abort" if "uploadId" in q else ("delete" if has_key else "delete_bucket")
    return method.lower()


_SLOWDOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
             b"<Message>Please reduce your request rate.</Message><RequestId>injected</RequestId></Error>")
_INTERNAL = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
             b"<Message>We encountered an internal error. Please try again.</Message>"
             b"<RequestId>injected</RequestId></Error>")


class CountingApp:
    """moto's WSGI app behind a request counter and a fault injector."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.counts: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.log: list[tuple[str, str]] = []  # (operation, path) of the requests since the last reset
        self.every = 0
        self.kind = "503"
        self._n = 0
        self._lock = threading.Lock()

    def _control(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.endswith("/reset"):
            with self._lock:
                self.counts.clear()
                self.injected.clear()
                self.log.clear()
        elif path.endswith("/faults"):
            q = parse_qs(environ.get("QUERY_STRING", ""))
            with self._lock:
                self.every = int(q.get("every", ["0"])[0])
                self.kind = q.get("kind", ["503"])[0]
                self._n = 0
        with self._lock:
            blob: dict[str, Any] = {"counts": dict(self.counts), "injected": dict(self.injected)}
            if path.endswith("/log"):
                blob["log"] = self.log[-100_000:]
            body = json.dumps(blob).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/__ctl/"):
            return self._control(environ, start_response)
        op = classify(environ["REQUEST_METHOD"], path, environ.get("QUERY_STRING", ""), environ)
        fault = None
        with self._lock:
            if self.every and op not in ("create_bucket", "head_bucket", "list_buckets"):
                self._n += 1
                if self._n % self.every == 0:
                    kinds = ("503", "500", "reset") if self.kind == "mix" else (self.kind,)
                    fault = kinds[(self._n // self.every) % len(kinds)]
                    self.injected[op] += 1
            if fault is None:
                self.counts[op] += 1
                if op == "list":  # the prefix listed, as a path
                    prefix = parse_qs(environ.get("QUERY_STRING", "")).get("prefix", [""])[0]
                    path = f"{path.rstrip('/')}/{prefix}"
                self.log.append((op, path))
        if fault == "reset":
            sock = environ.get("werkzeug.socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.close()  # SO_LINGER 0: the client sees a reset, not an answer
            start_response("500 Internal Server Error", [("Content-Length", "0")])
            return [b""]
        if fault is not None:
            body = _SLOWDOWN if fault == "503" else _INTERNAL
            status = "503 Slow Down" if fault == "503" else "500 Internal Server Error"
            start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
            return [body]
        return self.app(environ, start_response)


def serve(port: int = 0) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import WSGIRequestHandler, make_server

    class _Quiet(WSGIRequestHandler):
        def log(self, *args: Any, **kwargs: Any) -> None:  # noqa: D102 - one line per request is noise
            pass

    app = CountingApp(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=_Quiet)
    sys.stdout.write(f"PORT {server.server_port}\n")
    sys.stdout.flush()
    server.serve_forever()


class S3Server:
    """A moto S3 server in a child process; ``env`` holds what a client process needs to reach it."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.endpoint = ""

    def start(self) -> S3Server:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.s3server"], cwd=root, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"the moto S3 server did not start: {line!r}")
        self.endpoint = f"http://127.0.0.1:{int(line.split()[1])}"
        return self

    @property
    def env(self) -> dict[str, str]:
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint, "AWS_ENDPOINT_URL_S3": self.endpoint}

    def _ctl(self, what: str, query: str = "", method: str = "GET") -> dict[str, Any]:
        req = urllib.request.Request(f"{self.endpoint}/__ctl/{what}{'?' + query if query else ''}", method=method)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def counts(self) -> Counter[str]:
        return Counter(self._ctl("counts")["counts"])

    def injected(self) -> Counter[str]:
        return Counter(self._ctl("counts")["injected"])

    def requests(self) -> list[tuple[str, str]]:
        """(operation, path) of every request since the last reset (the last 100,000)."""
        return [tuple(x) for x in self._ctl("log")["log"]]

    def reset(self) -> None:
        self._ctl("reset", method="POST")

    def faults(self, every: int, kind: str = "503") -> None:
        """Make every ``every``-th request fail with ``kind`` (``503``, ``500``, ``reset``, or ``mix``: the
        three in turn); 0: none."""
        self._ctl("faults", f"every={every}&kind={kind}", method="POST")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def wait_port(endpoint: str, timeout: float = 20.0) -> None:
    t0 = time.time()
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/__ctl/counts", timeout=2).read()
            return
        except OSError:
            if time.time() - t0 > timeout:
                raise
            time.sleep(0.1)


if __name__ == "__main__":
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
