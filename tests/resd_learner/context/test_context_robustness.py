"""Import hygiene and property tests: parsers and the updater never raise on arbitrary model text."""

from __future__ import annotations

import json
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from resd_learner.context import ContextConfig, ContextUpdater, SampleView
from resd_learner.context.parsing import extract_json_object, parse_curation, parse_tags

JSONISH = st.text(alphabet='{}[]":,\\ abcdefghijklmnopqrstuvwxyz0123456789-_\n`', max_size=200)


def test_context_package_does_not_import_torch():
    code = "import sys, resd_learner.context; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@settings(max_examples=200, deadline=None)
@given(st.one_of(JSONISH, st.text(max_size=200)))
def test_parsers_never_raise(text):
    obj = extract_json_object(text)
    assert obj is None or isinstance(obj, dict)
    tags = parse_tags(text)
    assert all(t in ("helpful", "harmful", "neutral") for _, t in tags.tags)
    cur = parse_curation(text)
    assert cur.ok or cur.adds == []


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.one_of(
            JSONISH,
            st.just(
                '{"bullet_tags": [{"id": "misc-00001", "tag": "harmful"}], '
                '"operations": [{"type": "ADD", "section": "x", "content": "y"}]}'
            ),
        ),
        min_size=6,
        max_size=6,
    )
)
def test_updater_survives_any_outputs(outputs):
    queue = list(outputs)
    up = ContextUpdater(
        ContextConfig(playbook_budget=2), lambda batch: [queue.pop(0) if queue else "" for _ in batch], seed=0
    )
    for step in range(3):
        out = up.update(
            step,
            [
                SampleView("a", 0, "task a", "resp", 0.0, False, "fb"),
                SampleView("b", 0, "task b", "ok", 1.0, True, ""),
            ],
        )
        assert all(isinstance(v, (int, float)) for v in out.stats.values())
        json.dumps(out.events)
    assert len(up.playbook) <= 2  # post-curation concise enforces the budget
