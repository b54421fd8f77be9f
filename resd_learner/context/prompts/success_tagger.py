"""Success-tagger prompt: for a correct attempt, mark which playbook entries helped or hurt.

Fields: ``prompt``, ``response`` (thinking removed), ``playbook`` (rendered, with ids and counts).
Only tag counts change as a result; nothing is added to the playbook.

:data:`SUCCESS_TAGGER_TEMPLATES`, one per ``context.prompt_layout``: ``official`` (task, attempt,
playbook, then the reply format) or ``shared_first`` (instructions, reply format and playbook snapshot
before the attempt; ``resd_learner/context/prompts/__init__.py``).
"""

_INSTRUCTIONS = """\
The attempt below solved its task: the checker accepted it. Decide which playbook entries \
contributed to that result.

For each entry the attempt used or clearly followed, give "helpful" if it contributed, "harmful" \
if it pointed somewhere wrong even though the attempt succeeded, or "neutral" if it played no \
part. Only use ids that appear in brackets in the playbook.

"""

_SAMPLE = """\
=== TASK ===
{prompt}

=== ACCEPTED ATTEMPT ===
{response}

"""

_PLAYBOOK = """\
=== PLAYBOOK ===
{playbook}

"""

SUCCESS_TAGGER_FORMAT = """\
Reply with a single JSON object and nothing else:
{{
  "reasoning": "which entries the attempt relied on and how",
  "bullet_tags": [{{"id": "<an id from the playbook>", "tag": "helpful | harmful | neutral"}}]
}}
"""
"""The reply-format block."""

SUCCESS_TAGGER_TEMPLATES = {
    "official": _INSTRUCTIONS + _SAMPLE + _PLAYBOOK + SUCCESS_TAGGER_FORMAT,
    "shared_first": _INSTRUCTIONS + SUCCESS_TAGGER_FORMAT + "\n" + _PLAYBOOK + _SAMPLE
    + "Now write the JSON object described above for this attempt.\n",
}
SUCCESS_TAGGER_TEMPLATE = SUCCESS_TAGGER_TEMPLATES["official"]
