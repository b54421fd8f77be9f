"""Teacher-context templates (the privileged prompt the self-teacher scores the response under).

The RESD prompt is built from a header (role sentence + guidance), then labelled sections in the
order PROMPT, PLAYBOOK, PREVIOUS TRIAL, ENVIRONMENT FEEDBACK, REFLECTION, SUCCESSFUL TRIAL (the
official layout; :data:`SECTION_ORDERS` lists the others), then a closing instruction. Empty sections are left out. The SDPO prompt is the original prompt,
then a demonstration or (only without one) the feedback, then a closing instruction.
"""

ROLE_SENTENCES: dict[str, str] = {
    "manufactoria": (
        "You write programs in the Manufactoria robot-factory DSL. Solve the task below, drawing on "
        "the playbook, your previous trial, what the checker reported and the reflection on it, and a "
        "successful trial when one is available."
    ),
    "bouncingsim": (
        "You write Python code that simulates bouncing objects and predicts their positions. Solve the "
        "task below, drawing on the playbook, your previous trial, what the checker reported and the "
        "reflection on it, and a successful trial when one is available."
    ),
    "finer": (
        "You answer questions that ask for financial entity tags. Answer the question below, drawing on "
        "the playbook, your previous trial, what the checker reported and the reflection on it, and a "
        "successful trial when one is available."
    ),
    "generic": (
        "You solve tasks whose answers are checked automatically. Solve the task below, drawing on the "
        "playbook, your previous trial, what the checker reported and the reflection on it, and a "
        "successful trial when one is available."
    ),
}

GUIDANCE = (
    "How to use this material:\n"
    "- Follow the playbook entries that apply and steer clear of the mistakes it lists.\n"
    "- Read your previous trial together with the feedback and the reflection, and fix what they point out.\n"
    "- If a successful trial is shown, learn from what made it work rather than copying it blindly.\n"
    "- Think step by step, stay concise, and check the final answer before giving it."
)

CLOSING: dict[str, str] = {
    "manufactoria": (
        "Now write a correct Manufactoria program for the task in the PROMPT section, using everything above."
    ),
    "bouncingsim": (
        "Now write correct simulation code for the task in the PROMPT section, using everything above."
    ),
    "finer": "Now answer the question in the PROMPT section correctly, using everything above.",
    "generic": "Now solve the task in the PROMPT section correctly, using everything above.",
}

SECTION_TITLES: dict[str, str] = {
    "prompt": "PROMPT",
    "playbook": "PLAYBOOK",
    "previous_trial": "PREVIOUS TRIAL",
    "feedback": "ENVIRONMENT FEEDBACK",
    "reflection": "REFLECTION",
    "solution": "SUCCESSFUL TRIAL",
}
SECTION_ORDER = ("prompt", "playbook", "previous_trial", "feedback", "reflection", "solution")

SECTION_ORDERS: dict[str, tuple[str, ...]] = {
    "official": SECTION_ORDER,
    "lessons_first": ("playbook", "reflection", "prompt", "previous_trial", "feedback", "solution"),
    "task_last": ("playbook", "previous_trial", "feedback", "reflection", "solution", "prompt"),
}
"""Teacher layouts (``method.teacher_layout``), the same sections with the same text in another order:

- ``official``: the official order, the task first;
- ``lessons_first``: the general lessons (playbook, then the reflection) before the task, and the
  attempt's own evidence (previous trial, feedback, successful trial) last, nearest the response;
- ``task_last``: the task moved to the end, right before the closing instruction.

In both non-official layouts the playbook directly follows the header, so every teacher sequence of a
step shares it as a prefix."""

SECTION_TEMPLATE = "---------- {title} ----------\n{body}"

TRIM_MARKER = "[... {n} characters trimmed to fit the context ...]"

# SDPO-style teacher context (no reflection, no playbook).
SDPO_SOLUTION_TEMPLATE = "\n\nA correct solution to this task:\n\n{solution}\n"
SDPO_FEEDBACK_TEMPLATE = "\n\nFeedback from the checker on your earlier attempt:\n\n{feedback}\n"
SDPO_CLOSING = "\nUsing this, solve the original task correctly."
