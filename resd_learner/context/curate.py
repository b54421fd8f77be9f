"""Curate: turn reflections into new, non-redundant playbook entries.

Owns the curator messages and the application of ADD operations with de-duplication. All curator
prompts of a step see the same playbook snapshot (taken after this step's tags, before any of its
additions) and are sent in one ``generate`` call; additions are then applied in sample order.

De-duplication rule (when enabled): an addition is skipped when :func:`dedup_key` of its content
(NFKC, lower case, punctuation and whitespace collapsed) equals the key of an entry already in the
playbook, in any section, or of an addition accepted earlier in the same step.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from .parsing import AddOperation, CurationParse, cap_middle, parse_curation, strip_thinking
from .playbook import SECTION_KEYS, Playbook, PlaybookEntry, dedup_key
from .prompts import for_layout
from .prompts.curator import CURATOR_TEMPLATES
from .prompts.reflector import EMPTY_PLAYBOOK
from .reflect import run_batch
from .types import Generate, SampleView, SchemaArg

logger = logging.getLogger(__name__)


def curator_messages(
    reflection: str, sample: SampleView, playbook: Playbook, *, playbook_text: str, max_slot_chars: int,
    layout: str = "official",
) -> list[dict[str, str]]:
    """Chat messages asking the curator for ADD operations derived from ``reflection`` (``layout``: a
    ``context.prompt_layout``)."""
    content = for_layout(CURATOR_TEMPLATES, layout).format(
        sections="\n".join(f"- {key}" for key in SECTION_KEYS),
        stats=json.dumps(playbook.stats()),
        reflection=cap_middle(reflection, max_slot_chars),
        playbook=playbook_text or EMPTY_PLAYBOOK,
        prompt=cap_middle(sample.prompt, max_slot_chars),
    )
    return [{"role": "user", "content": content}]


def propose(
    generate: Generate,
    items: Sequence[tuple[str, SampleView]],
    playbook: Playbook,
    *,
    max_slot_chars: int,
    remove_thinking: bool = True,
    schema: SchemaArg = None,
    layout: str = "official",
) -> list[CurationParse]:
    """One curator prompt per (reflection, sample) pair, all on the current snapshot, one call (under
    ``schema`` when given)."""
    snapshot = playbook.render()
    batch = [
        curator_messages(r, s, playbook, playbook_text=snapshot, max_slot_chars=max_slot_chars, layout=layout)
        for r, s in items
    ]
    raw = run_batch(generate, batch, what="curator", schema=schema)
    results = []
    for text in raw:
        text = strip_thinking(text) if remove_thinking else text.strip()
        parsed = parse_curation(text)
        parsed.text = text
        if parsed.error:
            logger.warning("dropping a malformed curator output (%s): %.200r", parsed.error, text)
        results.append(parsed)
    return results


@dataclass
class AddResult:
    """What applying one curator output did."""

    added: list[PlaybookEntry] = field(default_factory=list)
    duplicates: int = 0
    empty: int = 0


def apply_additions(
    playbook: Playbook,
    adds: Sequence[AddOperation],
    *,
    step: int,
    update: int,
    seen: set[str],
    deduplicate: bool,
) -> AddResult:
    """Add each operation's content unless it is empty or (with ``deduplicate``) a duplicate.

    ``seen`` holds the dedup keys of the playbook plus this step's accepted additions; it is updated.
    """
    result = AddResult()
    for op in adds:
        key = dedup_key(op.content)
        if not key:  # nothing but whitespace/punctuation
            result.empty += 1
            continue
        if deduplicate and key in seen:
            result.duplicates += 1
            continue
        result.added.append(playbook.add(op.section, op.content, step=step, update=update))
        seen.add(key)
    return result
