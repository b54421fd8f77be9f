"""Reflector prompt: the student, in diagnostic mode, explains one failed attempt and tags entries.

Fields: ``prompt`` (the task as the student saw it), ``response`` (its answer, thinking removed),
``feedback`` (environment feedback, raw), ``playbook`` (rendered playbook with ids and counts).

:data:`REFLECTOR_TEMPLATES` holds one template per ``context.prompt_layout``: ``official`` gives the
inputs in the official order (task, attempt, feedback, playbook) with the reply format last;
``shared_first`` puts what every reflector call of a step shares (instructions, reply format, playbook
snapshot) before the attempt (``resd_learner/context/prompts/__init__.py``).
"""

_INSTRUCTIONS = """\
You are reviewing a failed attempt at a task. Work out precisely why it failed, using the checker's \
feedback as evidence, and write down what would have made it succeed.

Please:
- Locate the first point where the attempt went wrong and say what was wrong there.
- Use the checker feedback: relate each reported failure to a specific decision in the attempt.
- Separate misunderstandings of the task from slips in calculation, syntax or logic, and from \
sensible strategies that were applied in the wrong place.
- Give the underlying cause, not just the symptom, and a concrete fix that would carry over to \
similar tasks.
- Judge every playbook entry that the attempt relied on or should have relied on: "helpful" if it \
pointed the right way, "harmful" if it misled the attempt, "neutral" if it did not matter. Use the \
exact ids shown in brackets; do not invent ids.

"""

_SAMPLE = """\
=== TASK ===
{prompt}

=== ATTEMPT ===
{response}

=== CHECKER FEEDBACK ===
{feedback}

"""

_PLAYBOOK = """\
=== PLAYBOOK ===
{playbook}

"""

REFLECTOR_FORMAT = """\
Reply with a single JSON object and nothing else, with these keys:
{{
  "reasoning": "your step-by-step analysis",
  "error_identification": "what exactly was wrong",
  "root_cause_analysis": "why it happened",
  "correct_approach": "what should have been done instead",
  "key_insight": "one reusable lesson for similar tasks",
  "bullet_tags": [{{"id": "<an id from the playbook>", "tag": "helpful | harmful | neutral"}}]
}}
Use an empty list for "bullet_tags" when no entry is relevant.
"""
"""The reply-format block (its example values define what counts as an echo, ``context/echo.py``)."""

REFLECTOR_TEMPLATES = {
    "official": _INSTRUCTIONS + _SAMPLE + _PLAYBOOK + REFLECTOR_FORMAT,
    "shared_first": _INSTRUCTIONS + REFLECTOR_FORMAT + "\n" + _PLAYBOOK + _SAMPLE
    + "Now write the JSON object described above for this attempt.\n",
}
REFLECTOR_TEMPLATE = REFLECTOR_TEMPLATES["official"]

EMPTY_FEEDBACK = "(the checker gave no feedback text)"
EMPTY_PLAYBOOK = "(the playbook has no entries yet)"
