"""Worker processes for :func:`resd_envs.verify`, started as ``python -m resd_envs.verify_worker``.

Why not ``multiprocessing``: its spawn and forkserver modes re-import the caller's ``__main__``
module in every worker (a script without an ``if __name__ == "__main__"`` guard then runs again, and
code piped to ``python -`` cannot be re-imported at all), and fork is unsafe in a trainer that already
runs torch or vLLM threads. A worker started with fork+exec of a fresh interpreter has none of these
problems.

Protocol (pickle frames over the worker's stdin/stdout; the worker's own prints go to stderr):
  parent -> worker: (env_id, family_kwargs) once, then (jobs, options) per chunk, ``None`` to stop;
  worker -> parent: ("ok", [VerifyResult, ...]) or ("error", "Type: message") per chunk.
The parent trusts these processes: they run our scorer, never model code (code-running families
isolate each submission in the sandbox themselves).
"""

from __future__ import annotations

import os
import pickle
import sys
from typing import Any, BinaryIO


def _serve(reader: BinaryIO, writer: BinaryIO) -> None:
    from resd_envs.api import _score_one, family

    env_id, family_kwargs = pickle.load(reader)
    fam = family(env_id, **family_kwargs)
    while True:
        message = pickle.load(reader)
        if message is None:
            return
        jobs, options = message
        try:
            reply: tuple[str, Any] = ("ok", [_score_one(fam, job, options) for job in jobs])
        except Exception as exc:  # reported to the parent, which raises it there
            reply = ("error", f"{type(exc).__name__}: {exc}")
        pickle.dump(reply, writer, protocol=pickle.HIGHEST_PROTOCOL)
        writer.flush()


def main() -> None:
    # Keep the protocol channel private: anything the family prints goes to stderr instead.
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        _serve(sys.stdin.buffer, channel)
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass


if __name__ == "__main__":
    main()
