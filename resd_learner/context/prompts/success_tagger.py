"""Success-tagger prompt: for a correct attempt, mark which playbook entries helped or hurt.

Fields: ``prompt``, ``response`` (thinking removed), ``playbook`` (rendered, with ids and counts).
Only tag counts change as a result; nothing is added to the playbook.
"""

SUCCESS_TAGGER_TEMPLATE = """\
The attempt below solved its task: the checker accepted it. Decide which playbook entries \
contributed to that result.

For each entry the attempt used or clearly followed, give "helpful" if it contributed, "harmful" \
if it pointed somewhere wrong even though the attempt succeeded, or "neutral" if it played no \
part. Only use ids that appear in brackets in the playbook.

=== TASK ===
{prompt}

=== ACCEPTED ATTEMPT ===
{response}

=== PLAYBOOK ===
{playbook}

Reply with a single JSON object and nothing else:
{{
  "reasoning": "which entries the attempt relied on and how",
  "bullet_tags": [{{"id": "<an id from the playbook>", "tag": "helpful | harmful | neutral"}}]
}}
"""
