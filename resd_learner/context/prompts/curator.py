"""Curator prompt: turn one reflection into new, non-redundant playbook entries.

Fields: ``stats`` (JSON of ``Playbook.stats()``), ``reflection`` (reflector output, thinking removed),
``playbook`` (rendered), ``prompt`` (the task), ``sections`` (bulleted list of valid section names).

:data:`CURATOR_TEMPLATES`, one per ``context.prompt_layout``: ``official`` (statistics, reflection,
playbook, task, then the reply format, the official order) or ``shared_first`` (rules, sections, reply
format, statistics and playbook, which every curator call of a step shares, before the reflection and
its task; ``resd_learner/context/prompts/__init__.py``).
"""

_RULES = """\
You maintain a playbook of short, reusable lessons that will be shown when solving future tasks \
of this kind. Those future tasks will be similar but not identical, and no checker feedback or \
reference answer will be available then, so every lesson must stand on its own.

A reflection on a recent failed attempt is given below. Decide which of its lessons are missing \
from the playbook and propose them as additions.

Rules:
- Add only lessons that the playbook does not already state, even in other words.
- Keep each lesson short, specific and actionable; prefer one precise rule over a general remark.
- Do not copy task-specific values (exact inputs, expected outputs) unless they express a general rule.
- Never rewrite, merge or delete existing entries; only add.
- Few strong additions beat many weak ones. If nothing new is worth adding, return an empty list.
- Write the content only: no ids, no counters.
- Output raw JSON, without markdown fences.

Valid sections:
{sections}

"""

_STATS = """\
=== PLAYBOOK STATISTICS ===
{stats}

"""

_REFLECTION = """\
=== REFLECTION ===
{reflection}

"""

_PLAYBOOK = """\
=== CURRENT PLAYBOOK ===
{playbook}

"""

_TASK = """\
=== TASK THE REFLECTION IS ABOUT ===
{prompt}

"""

CURATOR_FORMAT = """\
Reply with a single JSON object:
{{
  "reasoning": "what is new in the reflection and why it belongs in the playbook",
  "operations": [
    {{"type": "ADD", "section": "common_mistakes_to_avoid", "content": "the lesson"}}
  ]
}}
"""
"""The reply-format block (its example values define what counts as an echo, ``context/echo.py``)."""

CURATOR_TEMPLATES = {
    "official": _RULES + _STATS + _REFLECTION + _PLAYBOOK + _TASK + CURATOR_FORMAT,
    "shared_first": _RULES + CURATOR_FORMAT + "\n" + _STATS + _PLAYBOOK + _REFLECTION + _TASK
    + "Now write the JSON object described above for this reflection.\n",
}
CURATOR_TEMPLATE = CURATOR_TEMPLATES["official"]
