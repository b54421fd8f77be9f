"""A small stand-in for DELTA's reference servers, answering in their documented shapes.

``POST /test_solution`` (Manufactoria): request ``{dsl, test_cases, max_execution_time}``; reply
``{valid, all_passed, results: [{input, expected_output, actual_output, expected_accepted,
actual_accepted, check_output, passed, path, rejection_reason, description}]}`` or, on a parse error,
``{valid: false, all_passed: false, message: "DSL Parse Error: ...", results: []}``.

``POST /test_program`` (BouncingSim): request ``{program, tests, max_execution_time}``; reply
``{results: [0/1, ...], runtimes: [...]}``; each test is an ``assert check_distance(...) <= TOL``
string run against the (trusted, test-generated) program.

The answers are computed with resd's own parser/machine (a stand-in, not the reference); ``lies``
lets a test make the server deviate on purpose so that the tool must find the disagreement.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from resd_envs import manufactoria as mf

_REASONS = {"routed_to_none": "Routed to NONE", "max_iterations": "Maximum iterations exceeded (possible infinite loop)"}


def _check_distance(a: list[list[float]], b: list[list[float]]) -> float:
    if not a or not b or len(a) != len(b):
        raise ValueError("bad lengths")
    return round(sum(math.hypot(p[0] - q[0], p[1] - q[1]) for p, q in zip(a, b)) / len(a), 3)


def manufactoria_reply(payload: dict[str, Any], lies: set[str]) -> dict[str, Any]:
    try:
        factory = mf.parse(payload["dsl"])
    except mf.ManufactoriaSyntaxError as error:
        return {"valid": False, "all_passed": False, "message": f"DSL Parse Error: {error}", "results": []}
    results = []
    for case in payload["test_cases"]:
        out = mf.run(factory, case["input"])
        accepted = out.accepted != (case["input"] in lies)  # a deliberate lie flips the verdict
        reason = None
        if not accepted:
            reason = _REASONS.get(out.rejection or "", "Unknown node: END")
        passed = accepted == case["expected_accepted"]
        results.append({"input": case["input"], "expected_output": case.get("expected_output", ""),
                        "actual_output": out.output_tape, "expected_accepted": case["expected_accepted"],
                        "actual_accepted": accepted, "check_output": case.get("check_output", True),
                        "passed": passed, "path": ["n"] * out.steps, "rejection_reason": reason,
                        "description": case.get("description", "")})
    return {"valid": True, "all_passed": all(r["passed"] for r in results), "results": results}


def ballsim_reply(payload: dict[str, Any], lies: set[str]) -> dict[str, Any]:
    results = []
    for test in payload["tests"]:
        namespace: dict[str, Any] = {"check_distance": _check_distance}
        try:
            exec(payload["program"], namespace)  # trusted: the fidelity tool's own lookup table
            exec(test, namespace)
            ok = 1
        except Exception:
            ok = 0
        if any(marker in test for marker in lies):
            ok = 1 - ok
        results.append(ok)
    return {"results": results, "runtimes": [0.001] * len(results)}


@contextmanager
def standin_server(lies: set[str] | None = None) -> Iterator[str]:
    """Serve both endpoints on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    told = set(lies or ())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/test_solution":
                reply = manufactoria_reply(body, told)
            elif self.path == "/test_program":
                reply = ballsim_reply(body, told)
            else:
                self.send_error(404)
                return
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
