"""The playbook: a global list of short lessons with usage counts.

Owns the entry data structure, id allocation, section handling, tagging, rendering to prompt text,
the statistics shown to the curator, and (de)serialisation. It does not decide *what* to add or
remove (see ``curate.py`` and ``concise.py``).

Sections and id slugs follow the official code (docs/official-defaults.md §5): seven sections, ids
``<slug>-<5-digit counter>`` with one counter for the whole playbook that is never reused.

Clocks: ``created_step`` is the trainer step that added the entry (for reports). ``created_update``
and ``last_used`` count *context updates* (0 for the first update): ``last_used`` is the update in which
the entry was last tagged helpful or harmful, or its creation update if it never was. Concise
measures staleness on this update clock, as the official code does.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

# (key, header title, id slug), in display order.
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("strategies_and_insights", "STRATEGIES & INSIGHTS", "sai"),
    ("formulas_and_calculations", "FORMULAS & CALCULATIONS", "calc"),
    ("code_snippets_and_templates", "CODE SNIPPETS & TEMPLATES", "code"),
    ("common_mistakes_to_avoid", "COMMON MISTAKES TO AVOID", "err"),
    ("problem_solving_heuristics", "PROBLEM-SOLVING HEURISTICS", "prob"),
    ("context_clues_and_indicators", "CONTEXT CLUES & INDICATORS", "ctx"),
    ("others", "OTHERS", "misc"),
)
SECTION_KEYS = tuple(key for key, _, _ in SECTIONS)
DEFAULT_SECTION = "others"
_TITLES = {key: title for key, title, _ in SECTIONS}
_SLUGS = {key: slug for key, _, slug in SECTIONS}
_ALIASES = {slug: key for key, _, slug in SECTIONS}
_ID_PREFIX_RE = re.compile(
    r"^\s*(\[[a-z]+-\d+\]\s*)?(helpful\s*=\s*\d+\s*,?\s*harmful\s*=\s*\d+\s*)?::\s*|^\s*\[[a-z]+-\d+\]\s*",
    re.I,
)


def normalize_section(name: str) -> str:
    """Map a model-written section name to a section key; unknown names go to ``others``.

    Lower-cases, turns ``&`` into ``and`` and runs of other characters into ``_``; accepts the id slugs
    (``sai``, ``err``, ...) and a whole-word part of exactly one section key (``mistakes``, ``code``).
    """
    if not isinstance(name, str):
        return DEFAULT_SECTION
    key = name.strip().lower().replace("&", " and ")
    key = re.sub(r"[^a-z0-9]+", "_", key).strip("_")
    if key in _TITLES:
        return key
    if key in _ALIASES:
        return _ALIASES[key]
    matches = [k for k in SECTION_KEYS if key and f"_{key}_" in f"_{k}_"]
    return matches[0] if len(matches) == 1 else DEFAULT_SECTION


def clean_content(text: str) -> str:
    """One-line text: whitespace collapsed, a copied ``[id] helpful=.. harmful=.. ::`` prefix dropped."""
    line = " ".join(str(text).split())
    return _ID_PREFIX_RE.sub("", line, count=1).strip()


def dedup_key(text: str) -> str:
    """Normalised form used for duplicate detection.

    Rule: Unicode NFKC, lower case, every run of non-alphanumeric characters (punctuation, markdown,
    whitespace) replaced by one space, trimmed. Two entries are duplicates when their keys are equal.
    """
    text = unicodedata.normalize("NFKC", clean_content(text)).lower()
    return " ".join(re.sub(r"[\W_]+", " ", text).split())


@dataclass
class PlaybookEntry:
    """One lesson. ``helpful``/``harmful`` are accumulated reflector tag counts."""

    id: str
    section: str
    content: str
    helpful: int = 0
    harmful: int = 0
    created_step: int = 0
    created_update: int = 0
    last_used: int = 0

    @property
    def category(self) -> str:
        """Appendix D category: "unused" (never tagged), "harmful" (harmful >= helpful and harmful > 0),
        else "helpful"."""
        if self.helpful + self.harmful == 0:
            return "unused"
        if self.harmful >= self.helpful:
            return "harmful"
        return "helpful"

    def render(self) -> str:
        return f"[{self.id}] helpful={self.helpful} harmful={self.harmful} :: {self.content}"


class Playbook:
    """Ordered entries grouped by section, with a global id counter.

    Entries keep insertion order inside their section; rendering walks the sections in ``SECTIONS``
    order.
    """

    def __init__(self) -> None:
        self._entries: dict[str, PlaybookEntry] = {}
        self.next_id = 1

    # ----------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._entries

    def get(self, entry_id: str) -> PlaybookEntry | None:
        return self._entries.get(entry_id)

    @property
    def entries(self) -> list[PlaybookEntry]:
        """Entries in display order (section order, then insertion order)."""
        order = {key: i for i, key in enumerate(SECTION_KEYS)}
        return sorted(self._entries.values(), key=lambda e: order[e.section])  # sort is stable

    def ids(self) -> list[str]:
        return [e.id for e in self.entries]

    # ---------------------------------------------------------------- changes
    def add(self, section: str, content: str, *, step: int, update: int) -> PlaybookEntry:
        """Append a new entry with zero counts; ``section`` may be any model-written name."""
        key = normalize_section(section)
        text = clean_content(content)
        if not text:
            raise ValueError("a playbook entry needs non-empty content")
        entry = PlaybookEntry(
            id=f"{_SLUGS[key]}-{self.next_id:05d}",
            section=key,
            content=text,
            created_step=int(step),
            created_update=int(update),
            last_used=int(update),
        )
        self.next_id += 1
        self._entries[entry.id] = entry
        return entry

    def tag(self, entry_id: str, tag: str, *, update: int) -> PlaybookEntry | None:
        """Apply one tag: helpful → helpful+1, harmful → harmful+1 (both set ``last_used = update``).

        Returns the entry when a count changed; ``None`` for neutral tags and unknown ids.
        """
        entry = self._entries.get(entry_id)
        if entry is None or tag not in ("helpful", "harmful"):
            return None
        if tag == "helpful":
            entry.helpful += 1
        else:
            entry.harmful += 1
        entry.last_used = int(update)
        return entry

    def remove(self, entry_id: str) -> PlaybookEntry:
        return self._entries.pop(entry_id)

    def clear(self) -> None:
        self._entries.clear()

    # -------------------------------------------------------------- rendering
    def render(self) -> str:
        """Prompt text: every section header (``## TITLE``) followed by its entry lines.

        Returns "" when there are no entries, so an empty playbook adds nothing to a prompt.
        """
        if not self._entries:
            return ""
        blocks = []
        for key, title, _ in SECTIONS:
            lines = [f"## {title}"] + [e.render() for e in self._entries.values() if e.section == key]
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)

    def to_markdown(self) -> str:
        """A human-readable dump (for ``playbook.md``) that also shows the clocks of each entry."""
        out = ["# Playbook", "", f"{len(self)} entries; next id counter {self.next_id}.", ""]
        for key, title, _ in SECTIONS:
            section = [e for e in self._entries.values() if e.section == key]
            out.append(f"## {title} ({len(section)})")
            out.append("")
            for e in section:
                out.append(
                    f"- `{e.id}` helpful={e.helpful} harmful={e.harmful} "
                    f"(added at step {e.created_step}, last used at update {e.last_used}): {e.content}"
                )
            out.append("")
        return "\n".join(out).rstrip() + "\n"

    def stats(self) -> dict[str, Any]:
        """Summary shown to the curator and logged.

        Keys: ``total``; ``high_performing`` (helpful > 5 and harmful < 2); ``problematic``
        (harmful >= helpful and harmful > 0); ``unused`` (never tagged); ``by_section``: per section key
        ``{"count", "helpful", "harmful"}``.
        """
        entries = list(self._entries.values())
        by_section = {key: {"count": 0, "helpful": 0, "harmful": 0} for key in SECTION_KEYS}
        for e in entries:
            row = by_section[e.section]
            row["count"] += 1
            row["helpful"] += e.helpful
            row["harmful"] += e.harmful
        return {
            "total": len(entries),
            "high_performing": sum(1 for e in entries if e.helpful > 5 and e.harmful < 2),
            "problematic": sum(1 for e in entries if e.category == "harmful"),
            "unused": sum(1 for e in entries if e.category == "unused"),
            "by_section": by_section,
        }

    # ------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        return {"next_id": self.next_id, "entries": [asdict(e) for e in self._entries.values()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; raises ``ValueError`` naming the bad field."""
        try:
            entries = [PlaybookEntry(**dict(row)) for row in state["entries"]]
            next_id = int(state["next_id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"playbook state is malformed ({exc}); expected Playbook.state_dict() output"
            ) from exc
        for e in entries:
            if e.section not in _TITLES:
                raise ValueError(f"playbook state: entry {e.id!r} has unknown section {e.section!r}")
        self._entries = {e.id: e for e in entries}
        self.next_id = next_id
