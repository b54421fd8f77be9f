"""Interpreter semantics (spec §2): queue tape, foreign colours, NONE, end vs END, the 1000-iteration cap."""

from __future__ import annotations

import random

import pytest

from resd_envs import manufactoria as mf

READER = "START start:\n\tNEXT rb\nPULLER_RB rb:\n\t[R] rb\n\t[B] rb\n\t[EMPTY] end\nEND end"
YG_FIRST = "START start:\n\tNEXT rd\nPULLER_YG rd:\n\t[Y] rd\n\t[G] rd\n\t[EMPTY] rb\nPULLER_RB rb:\n\t[R] rd\n\t[B] rd\n\t[EMPTY] end\nEND end"


def outcome(text: str, tape: str) -> tuple[str, str, int, str | None]:
    out = mf.run(text, tape)
    assert mf.trace(text, tape).result == out
    return out.result, out.output_tape, out.steps, out.rejection


def painters(n: int) -> str:
    lines = ["START start:", "    NEXT p0" if n else "    NEXT end"]
    for i in range(n):
        lines += [f"PAINTER_RED p{i}:", f"    NEXT {'p' + str(i + 1) if i + 1 < n else 'end'}"]
    return "\n".join(lines + ["END end"])


def test_chain_of_998_painters_accepts_999_rejects() -> None:
    assert outcome(painters(998), "") == ("accept", "R" * 998, 1000, None)
    assert outcome(painters(999), "B") == ("reject", "B" + "R" * 999, 1000, "max_iterations")


def test_huge_programs_stay_linear() -> None:
    text = painters(20000)  # far longer than any run can execute
    factory = mf.parse(text)
    assert mf.run(factory, "Y") == mf.trace(factory, "Y", keep=0).result == ("reject", "Y" + "R" * 999, 1000, "max_iterations")


@pytest.mark.parametrize("length, result", [(996, "accept"), (997, "accept"), (998, "reject"), (1500, "reject")])
def test_rb_reading_loop_boundary(length: int, result: str) -> None:
    res, tape, steps, _ = outcome(READER, "R" * length)
    assert res == result
    assert steps == (length + 3 if result == "accept" else 1000)
    if result == "reject":
        assert tape == "R" * (length - 999)  # start + 999 pulls executed


def test_symbols_read_through_two_pullers_cost_two_iterations() -> None:
    assert outcome(YG_FIRST, "Y" * 996)[0] == "accept"
    assert outcome(YG_FIRST, "Y" * 997)[:3] == ("reject", "", 1000)
    assert outcome(YG_FIRST, "R" * 498)[:3] == ("accept", "", 1000)
    assert outcome(YG_FIRST, "R" * 499)[:3] == ("reject", "", 1000)
    assert outcome(YG_FIRST, "R" * 600)[:3] == ("reject", "R" * 101, 1000)


def test_puller_does_not_consume_foreign_symbols() -> None:
    text = "START start:\n    NEXT rb\nPULLER_RB rb:\n    [R] end\nEND end"
    assert outcome(text, "YR") == ("reject", "YR", 3, "routed_to_none")
    assert outcome(text, "BR") == ("reject", "R", 3, "routed_to_none")  # B is consumed, no [B] branch
    assert outcome(text, "RBYG") == ("accept", "BYG", 3, None)  # the reference example accepts any R-first tape
    assert outcome(text, "") == ("reject", "", 3, "routed_to_none")
    assert outcome(text, "xR") == ("reject", "xR", 3, "routed_to_none")  # any character may be on a tape


def test_uppercase_end_target_rejects_unless_defined() -> None:
    assert outcome("START start:\n    NEXT END\nEND end\n", "GG") == ("reject", "GG", 2, "unknown_node")
    defined = "START start:\n    NEXT END\nPAINTER_GREEN END:\n    NEXT end\nEND end"
    assert outcome(defined, "R") == ("accept", "RG", 3, None)


def test_node_named_none_is_unreachable() -> None:
    text = "START start:\n    NEXT NONE\nPAINTER_RED NONE:\n    NEXT end\nEND end"
    assert outcome(text, "") == ("reject", "", 2, "routed_to_none")


def test_start_can_be_reentered() -> None:
    text = "START start:\n    NEXT rb\nPULLER_RB rb:\n    [R] start\n    [EMPTY] end\nEND end"
    assert outcome(text, "RR") == ("accept", "", 7, None)  # start rb start rb start rb end


def test_first_duplicate_condition_wins() -> None:
    text = "START start:\n    NEXT rb\nPULLER_RB rb:\n    [R] NONE\n    [R] end\nEND end"
    assert outcome(text, "R")[0] == "reject"


def test_painter_loops_hit_the_cap_with_exact_tape() -> None:
    cycle = "START start:\n    NEXT w\nPAINTER_YELLOW w:\n    NEXT x\nPAINTER_GREEN x:\n    NEXT w\nEND end"
    res, tape, steps, rej = outcome(cycle, "RB")
    assert (res, steps, rej) == ("reject", 1000, "max_iterations")
    assert tape == "RB" + "YG" * 499 + "Y"


@pytest.mark.parametrize(
    "text, tape",
    [
        # rotating the tape: (node, tape) repeats, so cycles are skipped arithmetically
        ("START start:\n    NEXT rb\nPULLER_RB rb:\n    [R] pr\n    [B] pb\nPAINTER_RED pr:\n    NEXT rb\n"
         "PAINTER_BLUE pb:\n    NEXT rb\nEND end", "RBBRB"),
        # growing tape (no repeat)
        ("START start:\n    NEXT rb\nPULLER_RB rb:\n    [R] p1\n    [EMPTY] end\nPAINTER_RED p1:\n    NEXT p2\n"
         "PAINTER_RED p2:\n    NEXT rb\nEND end", "R"),
        # empty-tape painter that then reads its own colour
        ("START start:\n    NEXT yg\nPULLER_YG yg:\n    [Y] yg\n    [EMPTY] p\nPAINTER_YELLOW p:\n    NEXT yg\nEND end", ""),
        # non-consuming loop of pullers on a foreign front symbol
        ("START start:\n    NEXT a\nPULLER_YG a:\n    [EMPTY] b\nPULLER_YG b:\n    [EMPTY] a\nEND end", "R"),
    ],
)
def test_loops_agree_with_step_by_step(text: str, tape: str) -> None:
    assert outcome(text, tape)[2] == 1000


def test_macro_run_equals_trace_on_random_tapes() -> None:
    rng = random.Random(7)
    for _ in range(300):
        tape = "".join(rng.choice("RBYG") for _ in range(rng.randint(0, 1200)))
        for text in (READER, YG_FIRST):
            outcome(text, tape)


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="tape"):
        mf.run(READER, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Factory"):
        mf.run(42, "R")  # type: ignore[arg-type]
    with pytest.raises(mf.ManufactoriaSyntaxError):
        mf.run("not a program", "R")
