"""The generation interface shared by the backends, and chat-prompt rendering.

A backend turns a batch of chat-message lists into ``n`` :class:`Generation` each. Prompts are
rendered with the tokenizer's chat template and tokenised *once* here; the backends generate from
those token ids and return the response token ids exactly as sampled, so the trainer never
re-tokenises a response.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from resd_learner.context.types import SchemaArg
from resd_learner.seeding import derive_seed

Messages = Sequence[Mapping[str, str]]
Schema = dict[str, Any]
"""A JSON schema; ``generate``'s ``schema`` argument is a :data:`~resd_learner.context.types.SchemaArg`
(one for every chat, one per chat with None = free-form, or None)."""


def schemas_per_chat(schema: SchemaArg, count: int) -> list[Schema | None]:
    """``schema`` as one entry per chat of a batch of ``count``.

    Raises:
        ValueError: a per-chat list whose length is not ``count``.
    """
    if schema is None or isinstance(schema, Mapping):
        return [schema] * count  # type: ignore[list-item]
    listed = list(schema)
    if len(listed) != count:
        raise ValueError(f"got {len(listed)} schemas for {count} chats; pass one schema, or exactly one per chat")
    return listed


@dataclass(frozen=True)
class Generation:
    """One sampled response.

    Attributes:
        text: decoded response (special tokens removed; thinking kept).
        token_ids: the sampled token ids, including a final end-of-sequence token when one was produced.
        logprobs: log-probability of each sampled token under the model's untempered distribution
            (softmax of the raw logits: no temperature, no top-p; one per token), or None when the
            backend did not compute them. Every backend reports this same quantity (vLLM's default
            ``raw_logprobs``), so the trainer's rollout correction compares like with like at any
            sampling temperature.
        finish_reason: "stop" (end-of-sequence or a stop string), "length" (hit max_tokens) or "prompt_too_long"
            (the prompt left no room to generate; nothing was generated).
        prompt_ids: the prompt token ids the response continues.
    """

    text: str
    token_ids: list[int]
    logprobs: list[float] | None
    finish_reason: str
    prompt_ids: tuple[int, ...] = ()


class GenerationBackend(Protocol):
    """What the trainer, the context updater and ``resd-eval`` need from a generation engine."""

    supports_schema: bool
    """Whether ``generate`` can constrain completions to a JSON schema."""

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
        """``n`` generations for each chat in ``messages_batch`` (outer list in input order).

        ``temperature=0`` is greedy decoding. The same ``seed`` gives the same samples. With a JSON
        ``schema`` (only when :attr:`supports_schema`) every completion is constrained to it (a list
        gives each chat its own schema, None entries leaving that chat free-form); a
        completion cut off by ``max_tokens`` can still be incomplete JSON. ``stop`` strings end a
        completion at the first token whose text completes one of them (that token is kept, so the
        text includes the stop string; finish_reason "stop").
        """

    def push_weights(self, named_tensors: Any) -> None:
        """Replace the engine's weights by ``named_tensors`` (HF parameter names -> tensors)."""

    def close(self) -> None:
        """Release the engine."""


def render_prompt_ids(tokenizer: Any, messages: Messages, *, enable_thinking: bool | None = None) -> list[int]:
    """Token ids of ``messages`` under the chat template, with the assistant header appended."""
    kwargs: dict[str, Any] = {}
    if enable_thinking is not None:
        kwargs["enable_thinking"] = enable_thinking
    text = tokenizer.apply_chat_template(
        [dict(m) for m in messages], tokenize=False, add_generation_prompt=True, **kwargs
    )
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def stop_string_end(tokenizer: Any, token_ids: Sequence[int], stop: Sequence[str]) -> int | None:
    """The length of the shortest prefix of ``token_ids`` whose decoded text contains a ``stop`` string.

    None when no prefix does (or ``stop`` is empty). Containment only grows with the prefix, so a
    binary search needs O(log n) decodes.
    """
    stop = [s for s in stop if s]
    if not stop or not token_ids:
        return None

    def hit(length: int) -> bool:
        text = tokenizer.decode(list(token_ids[:length]), skip_special_tokens=True)
        return any(s in text for s in stop)

    if not hit(len(token_ids)):
        return None
    low, high = 1, len(token_ids)
    while low < high:
        mid = (low + high) // 2
        if hit(mid):
            high = mid
        else:
            low = mid + 1
    return low


def request_seed(seed: int, index: int) -> int:
    """A per-request sampling seed derived from a call seed and the request's position (stable, 31-bit)."""
    return derive_seed(seed, index)
