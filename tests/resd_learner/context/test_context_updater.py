"""ContextUpdater end to end with a scripted fake ``generate``: reflect, tag, curate, concise, events."""

from __future__ import annotations

import json
import random
import re

import pytest

from resd_learner.context import ContextConfig, ContextUpdater, SampleView


def reflection(*tags, insight="check the loop exit"):
    return json.dumps(
        {
            "reasoning": "r",
            "error_identification": "e",
            "root_cause_analysis": "c",
            "correct_approach": "a",
            "key_insight": insight,
            "bullet_tags": [{"id": i, "tag": t} for i, t in tags],
        }
    )


def curation(*adds):
    return json.dumps(
        {
            "reasoning": "new lessons",
            "operations": [{"type": "ADD", "section": s, "content": c} for s, c in adds],
        }
    )


def task_of(messages):
    return re.search(r"TASKID=(\w+)", messages[-1]["content"]).group(1)


def by_task(table):
    """Script from {(kind, task): output}; unknown keys answer an empty JSON object."""
    return lambda kind, messages: table.get((kind, task_of(messages)), "{}")


def test_one_batched_call_per_role_and_lessons_added(scripted, make_sample):
    gen = scripted(
        by_task(
            {
                ("reflect", "a"): "<think>hmm</think>" + reflection(insight="A"),
                ("reflect", "b"): reflection(insight="B"),
                ("curate", "a"): curation(
                    ("mistakes", "Always test the empty tape."), ("code", "Use a loop template.")
                ),
                # same lesson as sample a's (case/punctuation differ) → skipped; one new lesson
                ("curate", "b"): curation(
                    ("err", "always test the EMPTY tape"), ("heuristics", "Trace two inputs by hand.")
                ),
            }
        )
    )
    up = ContextUpdater(ContextConfig(playbook_budget=50, deduplicate=True, curate_all_failures=False), gen, seed=0)
    samples = [make_sample("a"), make_sample("s", success=True), make_sample("b")]
    out = up.update(7, samples)
    # playbook empty → no success-tagging call; reflect and curate each ONE call of 2 prompts
    assert gen.calls == [("reflect", 2), ("curate", 2)]
    assert out.reflections[1] == "" and json.loads(out.reflections[0])["key_insight"] == "A"
    assert "<think>" not in out.reflections[0]
    assert [e.content for e in up.playbook.entries] == [
        "Use a loop template.",
        "Always test the empty tape.",
        "Trace two inputs by hand.",
    ]
    assert [e.id for e in up.playbook.entries] == ["code-00002", "err-00001", "prob-00003"]
    assert all(e.created_step == 7 and e.created_update == 0 for e in up.playbook.entries)
    assert out.stats["entries_added"] == 3 and out.stats["duplicates_skipped"] == 1
    assert out.stats["reflections"] == 2 and out.stats["curations_applied"] == 2
    adds = [e for e in out.events if e["event"] == "add"]
    assert [e["entry_id"] for e in adds] == ["err-00001", "code-00002", "prob-00003"]
    assert (
        adds[2]["reflection"] == out.reflections[2] and adds[2]["example_id"] == "b" and adds[0]["step"] == 7
    )
    assert out.playbook == up.playbook.render() and "[err-00001] helpful=0 harmful=0" in out.playbook
    json.dumps(out.events)  # JSON-serialisable


def seeded_updater(scripted, make_sample, script_step1, **cfg):
    """An updater whose step 0 added err-00001, code-00002, prob-00003 (no tags yet)."""
    table = {
        ("reflect", "a"): reflection(),
        ("curate", "a"): curation(("err", "L1"), ("code", "L2"), ("heuristics", "L3")),
    }
    gen = scripted(lambda kind, m: (script_step1 if gen.step1 else by_task(table))(kind, m))
    gen.step1 = False
    up = ContextUpdater(ContextConfig(**{"playbook_budget": 50, "deduplicate": True, "curate_all_failures": False, **cfg}), gen, seed=0)
    up.update(0, [make_sample("a")])
    gen.step1 = True
    return up, gen


def test_reflection_and_success_tags_update_counts_and_last_used(scripted, make_sample):
    up, gen = seeded_updater(
        scripted,
        make_sample,
        by_task(
            {
                # repeated id: the last tag within one output wins (err-00001 → harmful); unknown id ignored
                ("reflect", "b"): reflection(
                    ("err-00001", "helpful"),
                    ("code-00002", "neutral"),
                    ("err-00001", "harmful"),
                    ("zzz-00009", "helpful"),
                ),
                ("reflect", "c"): reflection(("prob-00003", "helpful")),
                ("success", "s"): json.dumps(
                    {"reasoning": "x", "bullet_tags": [{"id": "prob-00003", "tag": "helpful"}]}
                ),
                ("curate", "b"): curation(),
                ("curate", "c"): curation(),
            }
        ),
    )
    out = up.update(1, [make_sample("b"), make_sample("s", success=True), make_sample("c")])
    assert gen.calls[-3:] == [("reflect", 2), ("success", 1), ("curate", 2)]
    err, code, prob = (up.playbook.get(i) for i in ("err-00001", "code-00002", "prob-00003"))
    assert (err.helpful, err.harmful, err.last_used) == (0, 1, 1)
    assert (code.helpful, code.harmful, code.last_used) == (0, 0, 0)  # neutral: nothing moves
    assert (prob.helpful, prob.harmful, prob.last_used) == (2, 0, 1)
    assert out.stats["tags_unknown_id"] == 1 and out.stats["tags_neutral"] == 1
    assert (
        out.stats["tags_helpful"] == 2 and out.stats["tags_harmful"] == 1 and out.stats["success_tagged"] == 1
    )
    tags = [
        (e["entry_id"], e["tag"], e["helpful"], e["harmful"], e["source"])
        for e in out.events
        if e["event"] == "tag"
    ]
    assert tags == [
        ("err-00001", "harmful", 0, 1, "reflection"),
        ("prob-00003", "helpful", 1, 0, "reflection"),
        ("prob-00003", "helpful", 2, 0, "success"),
    ]


def test_curation_sees_one_snapshot_and_only_adds_new_lessons(scripted, make_sample):
    up, gen = seeded_updater(
        scripted,
        make_sample,
        by_task(
            {
                ("reflect", "b"): reflection(),
                ("reflect", "c"): reflection(),
                ("curate", "b"): curation(("others", "l1!"), ("others", "New one")),
                ("curate", "c"): curation(("others", "new ONE"), ("others", "!!!")),  # "!!!" is no lesson
            }
        ),
    )
    out = up.update(1, [make_sample("b"), make_sample("c")])
    curate_prompts = gen.prompts[-1]
    assert len({p[-1]["content"].split("=== REFLECTION ===")[0] for p in curate_prompts}) == 1  # same stats
    assert all(
        "[prob-00003]" in p[-1]["content"] and "New one" not in p[-1]["content"] for p in curate_prompts
    )
    assert [e.content for e in up.playbook.entries][-1] == "New one" and len(up.playbook) == 4
    assert out.stats["entries_added"] == 1 and out.stats["duplicates_skipped"] == 2


def test_deduplicate_off_keeps_repeats(scripted, make_sample):
    up, _ = seeded_updater(
        scripted,
        make_sample,
        by_task({("reflect", "b"): reflection(), ("curate", "b"): curation(("others", "L1"))}),
        deduplicate=False,
    )
    up.update(1, [make_sample("b")])
    assert [e.content for e in up.playbook.entries].count("L1") == 2


MALFORMED = {
    "truncated": '{"reasoning": "the loop never ends", "bullet_tags": [{"id": "err-0',
    "prose": "The program failed because the loop never terminates.",
    "fenced": '```json\n{"reasoning": "r", "bullet_tags": [{"id": "err-00001", "tag": "harmful"}]}\n```',
    "wrong_types": '{"reasoning": 3, "bullet_tags": {"err-00001": "harmful"}}',
    "sentinel": "INCORRECT_DUE_TO_EMPTY_RESPONSE",
    "none": None,
}


def test_malformed_outputs_are_survived_and_counted(scripted, make_sample, caplog):
    names = list(MALFORMED)

    def script(kind, messages):
        name = task_of(messages)
        if kind == "reflect":
            return MALFORMED[name]
        text = MALFORMED[name] if name != "fenced" else curation(("others", "From fenced"))
        return text if kind == "curate" else "{}"

    up, gen = seeded_updater(scripted, make_sample, script)
    out = up.update(1, [make_sample(n) for n in names])
    s = out.stats
    # fenced parses; prose / wrong types / truncated (no pairs) / sentinel / None are malformed
    assert s["reflections_malformed"] == 5
    # the sentinel and the None output give no reflection, so they are not curated
    assert s["reflections_empty"] == 2 and s["reflections"] == 4
    assert out.reflections[names.index("sentinel")] == "" and out.reflections[names.index("none")] == ""
    assert out.reflections[names.index("prose")] == MALFORMED["prose"]  # kept as the reflection
    assert gen.calls[-1] == ("curate", 4)
    assert s["curations_failed"] == 3 and s["curations_applied"] == 1 and s["entries_added"] == 1
    assert up.playbook.get("err-00001").harmful == 1  # from the fenced reflection
    assert s["total/reflections_malformed"] == 5
    assert "malformed" in caplog.text


def test_wrong_number_of_completions_is_a_clear_error(make_sample):
    up = ContextUpdater(ContextConfig(), lambda batch: ["{}"], seed=0)
    with pytest.raises(ValueError, match="returned 1 completions for 2 reflector prompts"):
        up.update(0, [make_sample("a"), make_sample("b")])
    with pytest.raises(TypeError, match="SampleView"):
        up.update(0, [{"example_id": "a"}])


def test_disabled_updater_only_fills_the_solution_buffer(scripted, make_sample):
    gen = scripted(lambda kind, m: "{}")
    up = ContextUpdater(ContextConfig(enabled=False), gen, seed=0)
    out = up.update(0, [make_sample("a"), make_sample("b", success=True, response="<think>t</think>ok")])
    assert gen.calls == [] and out.reflections == ["", ""] and out.stats["solutions_stored"] == 1
    assert up.solutions.get("b") == "ok"


def test_frequency_trigger_prunes_without_budget(scripted, make_sample):
    # budget 2 < 3 entries would fire the limit trigger; raise it to see the frequency trigger alone
    up, gen = seeded_updater(
        scripted, make_sample, lambda kind, m: "{}", playbook_budget=10, concise_frequency=2, reflect=True
    )
    up.playbook.get("err-00001").helpful = 1  # helpful; the others stay unused
    up.update(1, [make_sample("s", success=True)])  # update 1: no trigger (1 % 2 != 0)
    assert len(up.playbook) == 3
    out = up.update(2, [make_sample("s", success=True)])  # update 2: frequency trigger, staleness
    removed = [
        (e["entry_id"], e["reason"], e["category"], e["trigger"])
        for e in out.events
        if e["event"] == "remove"
    ]
    assert removed == [
        ("code-00002", "concise:staleness", "stale", "frequency"),
        ("prob-00003", "concise:staleness", "stale", "frequency"),
    ]
    assert up.playbook.ids() == ["err-00001"]


def test_limit_trigger_enforces_budget(scripted, make_sample):
    up, gen = seeded_updater(
        scripted, make_sample, lambda kind, m: "{}", playbook_budget=10, concise_frequency=0
    )
    for entry_id, last in (("err-00001", 0), ("code-00002", 1), ("prob-00003", 2)):
        e = up.playbook.get(entry_id)
        e.helpful, e.last_used = 1, last
    up.config.playbook_budget = 2
    out = up.update(1, [make_sample("s", success=True)])
    removed = [(e["entry_id"], e["reason"], e["trigger"]) for e in out.events if e["event"] == "remove"]
    assert removed == [("err-00001", "budget", "limit")]
    assert out.stats["entries_removed_budget"] == 1


def test_post_curation_concise_prioritized_drops_new_unused_entries(scripted, make_sample):
    up, gen = seeded_updater(
        scripted,
        make_sample,
        by_task(
            {
                ("reflect", "b"): reflection(("err-00001", "helpful"), ("code-00002", "helpful")),
                ("curate", "b"): curation(("others", "fresh lesson")),
            }
        ),
        playbook_budget=3,
        concise_method="prioritized",
        concise_frequency=0,
    )
    out = up.update(1, [make_sample("b")])
    kinds = [(e["event"], e["entry_id"], e.get("trigger")) for e in out.events if e["event"] != "tag"]
    # 4 entries > budget 3 after curation: prioritized removes all unused ones, the new one included
    assert kinds == [
        ("add", "misc-00004", None),
        ("remove", "prob-00003", "post_curation"),
        ("remove", "misc-00004", "post_curation"),
    ]
    assert up.playbook.ids() == ["code-00002", "err-00001"]


def test_post_curation_concise_staleness_keeps_new_entries(scripted, make_sample):
    up, gen = seeded_updater(
        scripted,
        make_sample,
        by_task(
            {
                ("reflect", "b"): reflection(("err-00001", "helpful")),
                ("curate", "b"): curation(("others", "fresh lesson")),
            }
        ),
        playbook_budget=3,
        concise_frequency=0,
    )
    out = up.update(1, [make_sample("b")])
    # survivors err(last 1) code(0) prob(0) misc(1): evict one of the tied oldest (code/prob) by RNG
    removed = [e for e in out.events if e["event"] == "remove"]
    assert len(removed) == 1 and removed[0]["entry_id"] in ("code-00002", "prob-00003")
    assert removed[0]["reason"] == "budget" and "misc-00004" in up.playbook


def test_post_curation_concise_can_be_turned_off(scripted, make_sample):
    up, _ = seeded_updater(
        scripted,
        make_sample,
        by_task({("reflect", "b"): reflection(), ("curate", "b"): curation(("others", "fresh lesson"))}),
        playbook_budget=3,
        concise_frequency=0,
        concise_after_curation=False,
    )
    up.update(1, [make_sample("b")])
    assert len(up.playbook) == 4


def churn_script(kind, messages):
    """Deterministic in the prompt: reflect tags every visible id helpful; curate adds two lessons."""
    text = messages[-1]["content"]
    task = task_of(messages)
    if kind == "curate":
        n = len(re.findall(r"\[\w+-\d{5}\]", text))
        return curation(("others", f"lesson {task} {n} a"), ("err", f"lesson {task} {n} b"))
    ids = re.findall(r"\[(\w+-\d{5})\]", text)
    return reflection(*[(i, "helpful") for i in ids])


def test_state_dict_round_trip_restores_identical_future(scripted, make_sample):
    cfg = dict(playbook_budget=3, concise_method="staleness", concise_frequency=2)
    original = ContextUpdater(ContextConfig(**cfg), scripted(churn_script), seed=123)
    steps = [
        [make_sample(f"x{k}"), make_sample(f"y{k}"), make_sample(f"s{k}", success=True)] for k in range(6)
    ]
    for k in range(3):
        original.update(k, steps[k])
    state = json.loads(json.dumps(original.state_dict()))
    restored = ContextUpdater(ContextConfig(**cfg), scripted(churn_script), seed=999)
    restored.load_state_dict(state)
    assert restored.playbook.render() == original.playbook.render()
    budget_removals = 0
    for k in range(3, 6):
        a, b = original.update(k, steps[k]), restored.update(k, steps[k])
        assert a.events == b.events and a.stats == b.stats and a.reflections == b.reflections
        budget_removals += a.stats["entries_removed_budget"]
    assert budget_removals > 0  # the RNG was really exercised after the restore
    assert restored.state_dict() == original.state_dict()
    assert restored.solutions.get("s5") == original.solutions.get("s5") == "answer"
    # control: the same state with a different RNG diverges, so the RNG state is what made them equal
    other = ContextUpdater(ContextConfig(**cfg), scripted(churn_script), seed=0)
    other.load_state_dict(state)
    other.rng = random.Random(999)
    diverged = False
    replay = ContextUpdater(ContextConfig(**cfg), scripted(churn_script), seed=0)
    replay.load_state_dict(state)
    for k in range(3, 6):
        diverged |= other.update(k, steps[k]).events != replay.update(k, steps[k]).events
    assert diverged


def test_load_state_dict_rejects_bad_state(scripted):
    up = ContextUpdater(ContextConfig(), scripted(lambda k, m: "{}"), seed=0)
    with pytest.raises(ValueError, match="version"):
        up.load_state_dict({"version": 99})
    good = up.state_dict()
    with pytest.raises(ValueError, match="malformed"):
        up.load_state_dict({**good, "rng": {"version": 3}})
    with pytest.raises(ValueError, match="solution buffer"):
        up.load_state_dict({**good, "solutions": {"solutions": {"a": 1}}})


def test_config_validation_lists_every_problem():
    with pytest.raises(ValueError) as err:
        ContextConfig(concise_method="reset", playbook_budget=0, concise_frequency=-1, reflect=False)
    message = str(err.value)
    for fragment in (
        "concise_method='reset'",
        "playbook_budget=0",
        "concise_frequency=-1",
        "curate=True needs",
    ):
        assert fragment in message
    with pytest.raises(TypeError, match="ContextConfig"):
        ContextUpdater({"enabled": True}, lambda b: [], seed=0)  # type: ignore[arg-type]


def test_sample_view_fields():
    s = SampleView(example_id="e", group_index=0, prompt="p", response="r", reward=0.5, success=False)
    assert s.feedback == ""


def test_every_failure_is_curated_by_default_and_dedup_is_off(scripted, make_sample):
    """Official rules: a failure with an empty reflection still reaches the curator; no content dedup."""
    assert ContextConfig().curate_all_failures and not ContextConfig().deduplicate
    gen = scripted(lambda kind, messages: "")
    ContextUpdater(ContextConfig(), gen, seed=0).update(1, [make_sample("a")])
    assert [kind for kind, _ in gen.calls] == ["reflect", "curate"]
    gen = scripted(lambda kind, messages: "")
    ContextUpdater(ContextConfig(curate_all_failures=False), gen, seed=0).update(1, [make_sample("a")])
    assert [kind for kind, _ in gen.calls] == ["reflect"]
