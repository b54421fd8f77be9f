"""Teacher prompt builder: section order, feedback rule, trimming, response ids, SDPO variant."""

from __future__ import annotations

import pytest

from resd_learner.context import (
    TeacherPromptTooLong,
    build_sdpo_teacher_inputs,
    build_teacher_inputs,
    template_for_env,
)
from resd_learner.context.prompts.teacher import CLOSING, ROLE_SENTENCES

HEADER = "<|im_start|>assistant\n"


class CharTokenizer:
    """Duck-typed tokenizer: one token per character (so budgets can be reasoned about exactly)."""

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True, **kwargs):
        assert tokenize is False
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return text + (HEADER if add_generation_prompt else "")

    def encode(self, text, add_special_tokens=False):
        return [ord(c) for c in text]

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(i) for i in ids)


TOK = CharTokenizer()
MESSAGES = [
    {"role": "system", "content": "SYS"},
    {"role": "user", "content": "old turn"},
    {"role": "assistant", "content": "old answer"},
    {"role": "user", "content": "Build a machine for X."},
]
RESPONSE = [ord(c) for c in "<think>plan</think>my answer"] + [10**6, 0, 7]  # ids no text maps back to


def build(**kw):
    args = dict(
        prompt_messages=MESSAGES,
        response_ids=RESPONSE,
        feedback="FEEDBACK-TEXT",
        reflection="REFLECTION-TEXT",
        playbook="## OTHERS\n[misc-00001] helpful=1 harmful=0 :: PB-TEXT",
        solution="",
        template="manufactoria",
        max_length=100_000,
        previous_trial="PREV-TEXT",
    )
    args.update(kw)
    return build_teacher_inputs(TOK, **args)


def prompt_text(out):
    return TOK.decode(out.input_ids[: out.response_start])


def assert_in_order(text, marks):
    """Every mark occurs in ``text``, in the given order."""
    positions = [text.index(m) for m in marks]
    assert positions == sorted(positions), marks


def test_sections_in_fixed_order_with_role_and_closing():
    out = build()
    text = prompt_text(out)
    assert_in_order(text, [
        ROLE_SENTENCES["manufactoria"],
        "---------- PROMPT ----------",
        "Build a machine for X.",
        "---------- PLAYBOOK ----------",
        "PB-TEXT",
        "---------- PREVIOUS TRIAL ----------",
        "PREV-TEXT",
        "---------- ENVIRONMENT FEEDBACK ----------",
        "FEEDBACK-TEXT",
        "---------- REFLECTION ----------",
        "REFLECTION-TEXT",
        CLOSING["manufactoria"],
    ])
    assert "SUCCESSFUL TRIAL" not in text  # empty sections are left out
    assert out.sections == ("prompt", "playbook", "previous_trial", "feedback", "reflection")
    # system messages kept, earlier non-system turns dropped, one user turn, assistant header last
    assert text.startswith("<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\n") and "old turn" not in text
    assert text.endswith(HEADER) and out.text == text and out.trimmed == {}


def test_task_last_layout_moves_only_the_prompt_section():
    official, task_last = build(), build(layout="task_last")
    text = prompt_text(task_last)
    assert_in_order(text, [
        ROLE_SENTENCES["manufactoria"],
        "---------- PLAYBOOK ----------",
        "---------- PREVIOUS TRIAL ----------",
        "---------- ENVIRONMENT FEEDBACK ----------",
        "---------- REFLECTION ----------",
        "---------- PROMPT ----------\nBuild a machine for X.",
        CLOSING["manufactoria"],
    ])
    assert task_last.sections == ("playbook", "previous_trial", "feedback", "reflection", "prompt")
    # the same sections with the same text: only the order differs
    assert sorted(text) == sorted(prompt_text(official)) and text != prompt_text(official)
    assert task_last.input_ids[task_last.response_start :] == RESPONSE
    # trimming still takes the playbook first and never touches the task
    tight = build(layout="task_last", max_length=official.response_start - 20)
    assert list(tight.trimmed) == ["playbook"] and "Build a machine for X." in prompt_text(tight)
    with pytest.raises(ValueError, match="unknown teacher layout 'sideways'.*task_last"):
        build(layout="sideways")


def test_lessons_first_layout_puts_the_attempts_evidence_last():
    out = build(layout="lessons_first", solution="SOLUTION-TEXT", feedback_only_without_solution=False)
    text = prompt_text(out)
    assert_in_order(text, ["PB-TEXT", "REFLECTION-TEXT", "Build a machine for X.", "PREV-TEXT", "FEEDBACK-TEXT",
                           "SOLUTION-TEXT", CLOSING["manufactoria"]])
    assert out.sections == ("playbook", "reflection", "prompt", "previous_trial", "feedback", "solution")
    # without playbook and reflection it is the official prompt, byte for byte
    bare = dict(playbook="", reflection="")
    assert build(layout="lessons_first", **bare).input_ids == build(**bare).input_ids


def test_feedback_dropped_when_a_solution_exists():
    with_solution = prompt_text(build(solution="SOLUTION-TEXT"))
    assert "FEEDBACK-TEXT" not in with_solution and "ENVIRONMENT FEEDBACK" not in with_solution
    assert with_solution.index("REFLECTION-TEXT") < with_solution.index(
        "---------- SUCCESSFUL TRIAL ----------"
    )
    assert "SOLUTION-TEXT" in with_solution
    kept = prompt_text(build(solution="SOLUTION-TEXT", feedback_only_without_solution=False))
    assert "FEEDBACK-TEXT" in kept
    assert "FEEDBACK-TEXT" in prompt_text(build(solution="SOLUTION-TEXT", use_solution=False))


def test_use_flags_and_previous_trial_from_response_ids():
    text = prompt_text(
        build(use_playbook=False, use_reflection=False, use_feedback=False, previous_trial=None)
    )
    assert "PB-TEXT" not in text and "REFLECTION-TEXT" not in text and "FEEDBACK-TEXT" not in text
    # decoded from the response ids, thinking stripped
    assert "---------- PREVIOUS TRIAL ----------\nmy answer" in text and "plan" not in text
    assert "PREVIOUS TRIAL" not in prompt_text(build(use_previous_trial=False))


def test_response_ids_appended_unchanged():
    out = build()
    assert out.input_ids[out.response_start :] == RESPONSE
    assert out.response_start == len(TOK.encode(out.text))


@pytest.mark.parametrize("template", ["manufactoria", "bouncingsim", "finer", "generic"])
def test_templates_have_their_own_role_sentence(template):
    text = prompt_text(build(template=template))
    assert ROLE_SENTENCES[template] in text and CLOSING[template] in text
    others = [ROLE_SENTENCES[t] for t in ROLE_SENTENCES if t != template]
    assert not any(o in text for o in others)


def test_template_for_env_and_bad_inputs():
    assert template_for_env("resd/Manufactoria-Has-v0") == "manufactoria"
    assert template_for_env("resd/BouncingSim-Easy-v0") == "bouncingsim"
    assert template_for_env("resd/Finer-v0") == "finer"
    assert template_for_env("resd/Other-v0") == "generic"
    with pytest.raises(ValueError, match="unknown teacher template"):
        build(template="chess")
    with pytest.raises(ValueError, match="no 'user' message"):
        build(prompt_messages=[{"role": "system", "content": "s"}])
    with pytest.raises(TypeError, match="list of ints"):
        build(response_ids=["a"])
    with pytest.raises(ValueError, match="positive integer"):
        build(max_length=0)
    with pytest.raises(TypeError, match="apply_chat_template"):
        build_teacher_inputs(object(), prompt_messages=MESSAGES, response_ids=[], max_length=10)


def test_trimming_order_under_a_tight_budget():
    long = dict(
        playbook="\n".join(f"[misc-{i:05d}] helpful=0 harmful=0 :: lesson {i}" for i in range(40)),
        reflection="R" * 800,
        feedback="F" * 800,
        solution="",
        previous_trial="P" * 800,
    )
    full = len(build(**long).input_ids) - len(RESPONSE)
    pb_len = len(long["playbook"])

    # a little over budget: only the playbook loses lines (whole lines, head kept)
    out = build(**long, max_length=full - 200)
    assert set(out.trimmed) == {"playbook"} and 200 <= out.trimmed["playbook"] < pb_len
    text = prompt_text(out)
    assert "lesson 0\n" in text and "lesson 39" not in text and "characters trimmed" in text
    assert out.response_start <= full - 200

    # playbook gone entirely, then the reflection is cut (head kept)
    out = build(**long, max_length=full - pb_len - 400)
    assert list(out.trimmed) == ["playbook", "reflection"] and out.trimmed["playbook"] == pb_len
    assert "PLAYBOOK" not in prompt_text(out) and "REFLECTION" in prompt_text(out)

    # then the feedback, then the previous trial last (tail kept)
    out = build(**long, max_length=full - pb_len - 2000)
    assert list(out.trimmed) == ["playbook", "reflection", "feedback", "previous_trial"]
    assert out.trimmed["reflection"] == out.trimmed["feedback"] == 800
    assert out.response_start <= full - pb_len - 2000

    # the prompt, instruction and assistant header are always intact
    for o in (out, build(**long, max_length=full - pb_len - 300)):
        t = prompt_text(o)
        assert "Build a machine for X." in t and CLOSING["manufactoria"] in t and t.endswith(HEADER)
        assert o.input_ids[o.response_start :] == RESPONSE


def test_solution_trimmed_after_feedback_keeping_its_tail():
    out = build(playbook="", reflection="", solution="HEAD" + "s" * 500 + "FINAL-CODE", max_length=10**6)
    full = out.response_start
    out = build(playbook="", reflection="", solution="HEAD" + "s" * 500 + "FINAL-CODE", max_length=full - 300)
    assert list(out.trimmed) == ["solution"]  # feedback was already dropped because of the solution
    text = prompt_text(out)
    assert "FINAL-CODE" in text and "HEAD" not in text and out.response_start <= full - 300


def test_too_long_untrimmable_prompt_raises():
    with pytest.raises(TeacherPromptTooLong, match="max_length is 50"):
        build(max_length=50)


def test_sdpo_variant():
    kw = dict(prompt_messages=MESSAGES, response_ids=RESPONSE, max_length=100_000)
    assert build_sdpo_teacher_inputs(TOK, **kw) is None  # neither → caller masks the sample
    assert build_sdpo_teacher_inputs(TOK, feedback="fb", use_feedback=False, **kw) is None
    sol = build_sdpo_teacher_inputs(TOK, solution="PEER-SOL", feedback="FB-TEXT", **kw)
    text = TOK.decode(sol.input_ids[: sol.response_start])
    assert "PEER-SOL" in text and "FB-TEXT" not in text and sol.sections == ("prompt", "solution")
    assert text.index("Build a machine for X.") < text.index("PEER-SOL") and text.endswith(HEADER)
    assert sol.input_ids[sol.response_start :] == RESPONSE
    fb = build_sdpo_teacher_inputs(TOK, feedback="FB-TEXT", **kw)
    assert "FB-TEXT" in TOK.decode(fb.input_ids) and fb.sections == ("prompt", "feedback")
    both = build_sdpo_teacher_inputs(
        TOK, solution="S" * 300, feedback="F" * 300, feedback_only_without_solution=False, **kw
    )
    tight = build_sdpo_teacher_inputs(
        TOK,
        solution="S" * 300,
        feedback="F" * 300,
        feedback_only_without_solution=False,
        **{**kw, "max_length": both.response_start - 450},
    )
    assert list(tight.trimmed) == ["feedback", "solution"] and tight.trimmed["feedback"] == 300


def test_real_bpe_tokenizer_keeps_response_ids_and_budget():
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [ROLE_SENTENCES["generic"], CLOSING["generic"], "helpful harmful lesson playbook feedback"] * 20
    tok.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=300,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    hf = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|pad|>"
    )
    hf.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    response = hf.encode("my answer is 42", add_special_tokens=False) + [
        hf.convert_tokens_to_ids("<|im_end|>")
    ]
    args = dict(
        prompt_messages=MESSAGES,
        response_ids=response,
        feedback="wrong output on input 101",
        reflection="The loop never exits. " * 30,
        playbook="",
        solution="",
        template="generic",
    )
    full = build_teacher_inputs(hf, max_length=10**6, **args)
    assert "my answer is 42" in full.text  # previous trial decoded from the ids
    out = build_teacher_inputs(hf, max_length=full.response_start - 40, **args)
    assert out.input_ids[out.response_start :] == response and "reflection" in out.trimmed
    assert out.response_start <= full.response_start - 40
    assert hf.decode(out.input_ids[: out.response_start]).endswith("<|im_start|>assistant\n")
