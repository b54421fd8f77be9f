"""FinerMini's kinds of value: the table covers FiNER-139, agrees with the sentences, and the kind feedback."""

from __future__ import annotations

import collections

import pytest

import resd_envs
from resd_envs.errors import ConfigError
from resd_envs.finer.labels import LABELS
from resd_envs.finer_mini.family import FinerMiniFamily
from resd_envs.finer_mini.kinds import KINDS, TAG_KINDS, kind_of, kind_rule

ENV_ID = "resd/FinerMini-v0"


def test_every_finer_label_has_exactly_one_known_kind() -> None:
    assert set(TAG_KINDS) == set(LABELS) and len(TAG_KINDS) == len(LABELS) == 139
    assert set(TAG_KINDS.values()) == set(KINDS)
    assert kind_of("Revenues") is KINDS["money"] and kind_of("NotAFinerTag") is None


def _marks_by_gold_kind() -> dict[str, collections.Counter]:
    """Per gold kind: tasks, entities written after ``$``, entities followed by ``%``."""
    marks: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for split in ("train", "test"):
        for row in resd_envs.load_tasks(ENV_ID, split):
            words = row["sentence"].split()
            at = words.index(row["entity"])
            count = marks[TAG_KINDS[row["gold"]]]
            count["tasks"] += 1
            count["dollar"] += at > 0 and words[at - 1] == "$"
            count["percent"] += at + 1 < len(words) and words[at + 1] == "%"
    return marks


def test_the_sentences_agree_with_the_kind_of_their_gold_tag() -> None:
    # a wrong kind in the table would show as money values without "$" or percentages without "%"
    marks = _marks_by_gold_kind()
    for key in ("money", "per_share"):
        assert marks[key]["dollar"] >= 0.95 * marks[key]["tasks"], key
    assert marks["percent"]["percent"] >= 0.9 * marks["percent"]["tasks"]
    for key, count in marks.items():
        if key not in ("money", "per_share"):
            assert count["dollar"] <= 0.01 * count["tasks"], key
        if key != "percent":
            assert count["percent"] == 0, key


def test_the_rule_names_kinds_only_when_they_differ() -> None:
    assert kind_rule("CommonStockSharesAuthorized", "DerivativeFixedInterestRate") == (
        "A number of shares needs a share-count tag, not a rate or percentage tag.")
    assert kind_rule("SharePrice", "Goodwill") == (
        "A price or amount per share needs a per-share tag, not a money-amount tag.")
    assert kind_rule("Goodwill", "Revenues") == ""  # both amounts of money: no rule to state
    assert kind_rule("Goodwill", "NotAFinerTag") == "" and kind_rule("NotAFinerTag", "Goodwill") == ""
    for gold in LABELS:
        rule = kind_rule(gold, "DebtInstrumentMaturityDate")
        assert gold not in rule and '"' not in rule  # general: no tag, no quoted value


def test_kind_feedback_adds_the_rule_and_keeps_scores_and_the_gold_hidden() -> None:
    plain, kind = FinerMiniFamily(), FinerMiniFamily(wrong_feedback="kind")
    seen = collections.Counter()
    for row in plain.tasks("test")[:200]:
        for candidate in row["candidates"]:
            response = f"<answer>{candidate}</answer>"
            before, after = plain.evaluate(row, response), kind.evaluate(row, response)
            assert after.test_results == before.test_results and after.extra == before.extra
            rule = kind_rule(row["gold"], candidate) if candidate != row["gold"] else ""
            assert after.feedback == (f"{before.feedback} {rule}" if rule else before.feedback)
            if candidate != row["gold"]:
                assert row["gold"] not in after.feedback.replace(candidate, "")  # a gold inside a longer tag name
                assert after.privileged_feedback == f"{after.feedback} The correct tag is {row['gold']}."
                seen["rule" if rule else "none"] += 1
    assert seen["rule"] > seen["none"] > 0  # about two thirds of the distractors measure another kind
    for response in ("hello", "<answer>a, b</answer>"):
        row = plain.tasks("test")[0]
        assert kind.evaluate(row, response).feedback == plain.evaluate(row, response).feedback
    assert kind.describe()["wrong_feedback"] == "kind" and plain.describe()["wrong_feedback"] == "plain"


def test_kind_feedback_reaches_the_env_and_combines_with_the_reply() -> None:
    env = resd_envs.make(ENV_ID, wrong_feedback="kind", gold_feedback="reply")
    env.reset(seed=0)
    task = env.unwrapped.task
    wrong = next(c for c in task["candidates"] if c != task["gold"] and kind_rule(task["gold"], c))
    observation, reward, _, _, info = env.step(f"<answer>{wrong}</answer>")
    assert reward == 0.0 and kind_rule(task["gold"], wrong) in observation
    rule = kind_rule(task["gold"], wrong)
    assert info["privileged_feedback"].endswith(f"{rule} The correct reply is <answer>{task['gold']}</answer>.")


def test_unknown_wrong_feedback_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match="wrong_feedback='why' is not one of 'plain', 'kind'"):
        FinerMiniFamily(wrong_feedback="why")
