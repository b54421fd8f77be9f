"""Parser: the reference's accept/reject rules, error categories, first-error order and line numbers (spec §1)."""

from __future__ import annotations

import pickle

import pytest

from resd_envs import manufactoria as mf
from resd_envs.errors import ResdEnvError
from resd_envs.manufactoria.grammar import LINE_RULES, lark_match_line, match_line
from resd_envs.manufactoria.parser import Factory, parse_lines
from resd_envs.manufactoria.scan import scan

OK = "START start:\n    NEXT r\nPULLER_RB r:\n    [R] end\n    [EMPTY] NONE\nEND end"


def category(text: str) -> tuple[str, int | None]:
    with pytest.raises(mf.ManufactoriaSyntaxError) as info:
        mf.parse(text)
    return info.value.category, info.value.line


def test_valid_program_structure() -> None:
    factory = mf.parse(OK)
    assert list(factory.nodes) == ["start", "r", "end"]
    r = factory.nodes["r"]
    assert r.kind == "PULLER_RB" and r.line == 3
    assert [(x.condition, x.target, x.line) for x in r.routes] == [("R", "end", 4), ("EMPTY", "NONE", 5)]
    assert pickle.loads(pickle.dumps(factory)).nodes == factory.nodes


def test_error_is_a_resd_error_with_fields() -> None:
    with pytest.raises(ResdEnvError) as info:
        mf.parse("START start:\n    NEXT x\nEND end")
    err = info.value
    assert isinstance(err, mf.ManufactoriaSyntaxError)
    assert (err.category, err.line, err.message) == ("undefined_reference", 1, "Node 'start' references undefined node 'x'")
    assert pickle.loads(pickle.dumps(err)).category == "undefined_reference"


@pytest.mark.parametrize("text", ["", "   \n\t\n", "# only a comment\n  # another", "```\n```", "```\n# c\n```"])
def test_empty_program(text: str) -> None:
    assert category(text) == ("empty_program", None)


@pytest.mark.parametrize(
    "text",
    [
        OK,
        "```\n" + OK + "\n```",  # bare fences are dropped
        OK.replace("\n", "\r\n"),  # CRLF
        "\n\n   " + OK + "\n\n",  # surrounding blank lines
        OK.replace("    ", "\t"),  # tabs
        OK.replace("    ", "        "),  # deeper indent
        OK.replace("    ", "    \t"),
        OK.replace("PULLER_RB r:", "PULLER_RB r:# c").replace("[R] end", "[R] end# c"),
        OK.replace("END end", "END end # x: y"),
        OK.replace("PULLER_RB r:", "  PULLER_RB r:"),  # header indented by < 4 spaces is fine
        OK.replace("[EMPTY] NONE", "# comment between routes\n    [EMPTY] NONE"),
        "END end\nPULLER_RB r:\n    [R] end\nSTART start:\n    NEXT r",  # any block order
        OK.replace(" r", " é1").replace(" r:", " é1:"),  # unicode ids
        OK + "\nPULLER_YG none_routes:",  # pullers may have zero routes
        OK.replace("[EMPTY] NONE", "[R] NONE\n    [R] r"),  # duplicate conditions are allowed
        OK.replace("NEXT r", "NEXT END"),  # uppercase END target parses (and rejects at run time)
        OK + "\nPULLER_RB 123:\n    [B] NONE",  # digit-only ids
    ],
)
def test_accepted_variants(text: str) -> None:
    assert mf.parse(text).nodes["start"].kind == "START"


@pytest.mark.parametrize(
    "text, want",
    [
        ("```manufactoria\n" + OK + "\n```", ("invalid_node_declaration", 1)),
        ("```python\n" + OK, ("invalid_node_declaration", 1)),
        ("~~~\n" + OK, ("invalid_node_declaration", 1)),
        (OK.replace("PULLER_RB r:", "puller_rb r:"), ("invalid_node_declaration", 3)),
        (OK.replace("PULLER_RB r:", "PULLER_RG r:"), ("invalid_node_declaration", 3)),
        (OK.replace("PULLER_RB r:", "PULLER_RB a-b:"), ("invalid_node_declaration", 3)),
        (OK.replace("PULLER_RB r:", "PULLER_RB r :"), ("invalid_node_declaration", 3)),
        (OK.replace("PULLER_RB r:", "PULLER_RB r::"), ("invalid_node_declaration", 3)),
        (OK.replace("PULLER_RB r:", "PULLER_RB r: extra"), ("invalid_node_declaration", 3)),
        (OK.replace("PULLER_RB r:", "PULLER_RB r b:"), ("invalid_node_declaration", 3)),
        (OK.replace("END end", "END end:"), ("end_has_colon", 6)),
        (OK.replace("PULLER_RB r:", "PULLER_RB r"), ("missing_colon", 3)),
        (OK + "\nSTART start:\n    NEXT r", ("duplicate_node_id", 7)),
        (OK.replace("START start:", "START begin:"), ("start_id_not_start", 1)),
        (OK.replace("END end", "END End"), ("end_id_not_end", 6)),
        (OK.replace("[R] end", "[r] end"), ("invalid_puller_route", 4)),
        (OK.replace("[R] end", "[ R] end"), ("invalid_puller_route", 4)),
        (OK.replace("[R] end", "[RB] end"), ("invalid_puller_route", 4)),
        (OK.replace("[R] end", "[] end"), ("invalid_puller_route", 4)),
        (OK.replace("[R] end", "[Empty] end"), ("invalid_puller_route", 4)),
        (OK.replace("[R] end", "R: end"), ("invalid_puller_route", 4)),
        (OK.replace("[R] end", "[R]end"), ("invalid_puller_route", 4)),
        (OK.replace("[R] end", "[R] end end"), ("invalid_puller_route", 4)),
        (OK.replace("[R] end", "NEXT end"), ("invalid_puller_route", 4)),
        (OK.replace("NEXT r", "[R] r"), ("invalid_next_route", 2)),
        (OK.replace("NEXT r", "NEXT r x"), ("invalid_next_route", 2)),
        (OK.replace("NEXT r", "next r"), ("invalid_next_route", 2)),
        (OK + "\n    NEXT r", ("end_has_routes", 7)),
        (OK.replace("    NEXT r", "  NEXT r"), ("start_route_count", 1)),  # 1-3 spaces: not a route
        (OK.replace("    NEXT r", "\u00a0\u00a0\u00a0\u00a0NEXT r"), ("start_route_count", 1)),
        (OK.replace("NEXT r", "NEXT r\n    NEXT r"), ("start_route_count", 1)),
        (OK + "\nPAINTER_RED p:", ("painter_route_count", 7)),
        (OK.replace("[R] end", "[Y] end"), ("invalid_condition_for_puller", 3)),
        (OK.replace("START start:\n    NEXT r\n", ""), ("missing_start", None)),
        (OK.replace("\nEND end", ""), ("missing_end", None)),
        (OK.replace("[R] end", "[R] End"), ("undefined_reference", 3)),
        (OK.replace("[R] end", "[R] none"), ("undefined_reference", 3)),
        (OK.replace("NEXT r", "NEXT Start"), ("undefined_reference", 1)),
        # an indented header is swallowed as a route of the block above
        ("START start:\n    NEXT r\n    PULLER_RB r:\n    [R] end\nEND end", ("invalid_next_route", 3)),
        # the fully indented self-test of the reference parser
        ("    START start:\n        NEXT entry\n\n    PULLER_RB entry:\n        [R] end\n\n    END end\n",
         ("invalid_next_route", 4)),
    ],
)
def test_rejected_with_category_and_line(text: str, want: tuple[str, int | None]) -> None:
    assert category(text) == want


def test_line_numbers_count_comments_blanks_and_skip_opening_fence() -> None:
    text = "\n\n```\n# header comment\n\nSTART start:\n    NEXT x\nEND end\n```"
    assert category(text) == ("undefined_reference", 3)


@pytest.mark.parametrize(
    "text, want",
    [
        # a block's route-format errors come before its route count
        ("START start:\n    [R] x\n    NEXT a\n    NEXT b\nEND end", ("invalid_next_route", 2)),
        # the route count of a block comes before the next block's header error
        ("START start:\n  NEXT r\nEND end", ("start_route_count", 1)),
        # duplicate is reported before the START id rule
        ("START start:\n    NEXT end\nSTART start:\n    NEXT end\nEND end", ("duplicate_node_id", 3)),
        # block errors come before missing START/END, which come before references
        ("PULLER_RB r:\n    [R] ghost\nPULLER_RB r:", ("duplicate_node_id", 3)),
        ("PULLER_RB r:\n    [R] ghost", ("missing_start", None)),
        ("START start:\n    NEXT ghost", ("missing_end", None)),
        # references are checked node by node in definition order
        ("PULLER_RB a:\n    [R] g1\nSTART start:\n    NEXT g2\nEND end", ("undefined_reference", 1)),
        # a colon problem comes before duplicate and id checks
        ("START start:\n    NEXT end\nEND end\nEND end:", ("end_has_colon", 4)),
        # END may not be named differently, even before its routes are checked
        ("START start:\n    NEXT end\nEND fin\n    NEXT x", ("end_id_not_end", 3)),
    ],
)
def test_first_error_order(text: str, want: tuple[str, int | None]) -> None:
    assert category(text) == want


def test_first_wrong_colour_in_route_order_is_named() -> None:
    with pytest.raises(mf.ManufactoriaSyntaxError, match="Invalid condition 'G' for PULLER_RB"):
        mf.parse(OK.replace("[R] end", "[G] end\n    [Y] end"))


def test_non_string_input_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="must be a str"):
        mf.parse(None)  # type: ignore[arg-type]


LINES = [
    "START start:", "END end", "END end:", "PULLER_RB r: # c", "PULLER_RB r:#c", "PAINTER_RED é:", "START  start :",
    "START start::", "PULLER_RBX r:", "[R] end", "[EMPTY] NONE # x", "[R]end", "[ R] a", "[R]  a#", "NEXT a", "NEXT  a  # b",
    "NEXT a b", "NEXT", "NEXT\ta", "[Y] é", "START\u2003start:", "START start:\x1c#", "[B] a\rb", "", "#", "[G] a#b#c",
]


@pytest.mark.parametrize("rule", LINE_RULES)
def test_fast_line_matcher_equals_lark(rule: str) -> None:
    for line in LINES:
        assert match_line(rule, line) == lark_match_line(rule, line), (rule, line)


@pytest.mark.parametrize(
    "text",
    [OK, "```\n" + OK + "\n```", OK.replace("\nPULLER", "\n\nPULLER").replace("\nEND", "\n\n\nEND"),
     OK.replace("[EMPTY] NONE", "[EMPTY] NONE\nPULLER_YG NONE:")],
)
def test_plain_layout_takes_the_fast_path_with_the_same_nodes(text: str) -> None:
    plain = scan(text)
    assert plain is not None
    assert Factory.from_plain(plain).nodes == parse_lines(text).nodes == mf.parse(text).nodes


@pytest.mark.parametrize(
    "text",
    [
        OK + "\nPULLER_RB r:",  # duplicate id
        OK.replace("[R] end", "[R] ghost"),  # undefined reference
        OK.replace("START start:\n    NEXT r\n", ""),  # no START
        OK.replace("\nEND end", "\nPULLER_RB end:"),  # no END, an id 'end'
        OK.replace("[R] end", "[Y] end"),  # wrong colour
        OK + "\nPAINTER_RED p:",  # painter without route
        OK.replace("END end", "END end:"),
        OK.replace("[R] end", "[R] end # c"),  # valid, but not the plain layout
    ],
)
def test_plain_scanner_declines_invalid_and_non_plain_programs(text: str) -> None:
    assert scan(text) is None



def test_node_count_matches_nodes_on_both_parse_paths() -> None:
    from resd_envs.manufactoria.problems import all_problems
    from resd_envs.manufactoria.solutions import solution_program

    for problem in all_problems()[:40]:
        text = solution_program(problem)
        lazy = mf.parse(text)
        count = lazy.node_count  # read before .nodes, so the fast path's count is what is checked
        assert count == len(mf.parse(text).nodes) > 1
    # a comment sends a program through the line-by-line parser (nodes built eagerly)
    factory = mf.parse("START start: # go\n    NEXT end\n\nEND end\n")
    assert factory.node_count == len(factory.nodes) == 2
