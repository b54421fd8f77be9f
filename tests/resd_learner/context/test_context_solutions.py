"""Solution buffer and demonstration choice (official order)."""

from __future__ import annotations

import json

import pytest

from resd_learner.context import SolutionBuffer, choose_demonstration


def test_buffer_keeps_first_success_of_latest_step(make_sample):
    buf = SolutionBuffer()
    written = buf.store_step(
        [
            make_sample("a", response="fail"),
            make_sample("a", success=True, response="<think>x</think>first", group_index=1),
            make_sample("a", success=True, response="second", group_index=2),
            make_sample("b", success=True, response="b-ok"),
        ]
    )
    assert written == ["a", "b"] and len(buf) == 2
    assert buf.get("a") == "first" and buf.get("a", strip=False) == "<think>x</think>first"
    buf.store_step([make_sample("a", response="fail again")])  # no success: keep the old one
    assert buf.get("a") == "first"
    buf.store_step([make_sample("a", success=True, response="newer")])
    assert buf.get("a") == "newer" and buf.get("zzz") == ""


def test_state_round_trip_and_validation(make_sample):
    buf = SolutionBuffer()
    buf.store_step([make_sample("k", success=True, response="v")])
    clone = SolutionBuffer()
    clone.load_state_dict(json.loads(json.dumps(buf.state_dict())))
    assert clone.get("k") == "v" and "k" in clone
    with pytest.raises(ValueError, match="solution buffer state"):
        clone.load_state_dict({"solutions": ["k"]})


def test_choose_demonstration_order(make_sample):
    me_ok = make_sample("a", success=True, response="<think>t</think>mine", group_index=0)
    me_bad = make_sample("a", response="bad", group_index=0)
    peer_bad = make_sample("a", response="peer bad", group_index=1)
    peer_ok = make_sample("a", success=True, response="<think>u</think>peer", group_index=2)
    peer_ok2 = make_sample("a", success=True, response="peer2", group_index=3)
    other_task = make_sample("b", success=True, response="other task", group_index=1)
    buf = SolutionBuffer()
    buf.store_step([make_sample("a", success=True, response="<think>v</think>buffered")])
    # 1. own success (RESD / SDPO+ss)
    assert choose_demonstration(me_ok, [me_ok, peer_ok], buf, self_success=True) == "mine"
    # 2. first successful peer (plain SDPO excludes itself)
    assert (
        choose_demonstration(me_ok, [me_ok, peer_bad, peer_ok, peer_ok2], buf, self_success=False) == "peer"
    )
    assert choose_demonstration(me_bad, [me_bad, peer_ok2, peer_ok], buf, self_success=True) == "peer2"
    # 3. buffer (peers of another example do not count)
    assert choose_demonstration(me_bad, [me_bad, peer_bad, other_task], buf, self_success=True) == "buffered"
    assert (
        choose_demonstration(me_bad, [me_bad], buf, self_success=True, strip=False)
        == "<think>v</think>buffered"
    )
    # 4. none
    assert choose_demonstration(me_bad, [me_bad], None, self_success=True) == ""
    assert choose_demonstration(me_bad, [me_bad], SolutionBuffer(), self_success=True) == ""
