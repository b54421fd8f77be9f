"""Manufactoria-Has: write a tape-machine program in the Manufactoria DSL that accepts exactly the tapes
a predicate describes (the 874 'has' problems of DELTA).

Public API::

    from resd_envs import manufactoria as mf
    factory = mf.parse(program_text)          # raises mf.ManufactoriaSyntaxError(.category, .line, .message)
    outcome = mf.run(factory, "RBYG")         # .result "accept"/"reject", .output_tape, .steps, .rejection
    program = mf.extract_program(response)    # the text the reward is computed on

The gymnasium env is ``resd/Manufactoria-Has-v0`` (:class:`~resd_envs.manufactoria.env.ManufactoriaHasEnv`).
"""

from resd_envs.manufactoria.extract import extract_program
from resd_envs.manufactoria.machine import MAX_ITERATIONS, RunResult, Trace, TraceStep, run, trace
from resd_envs.manufactoria.parser import ERROR_CATEGORIES, Factory, ManufactoriaSyntaxError, Node, Route, parse

__all__ = [
    "ERROR_CATEGORIES",
    "MAX_ITERATIONS",
    "Factory",
    "ManufactoriaSyntaxError",
    "Node",
    "Route",
    "RunResult",
    "Trace",
    "TraceStep",
    "extract_program",
    "parse",
    "run",
    "trace",
]
