"""Prompt templates of the context updater and the teacher, written for this project.

Each module holds ``str.format`` templates (literal braces doubled). Fields are documented next to
each template. Templates contain no model-specific tokens; chat formatting is the tokenizer's job.

Layout of the reflector, success-tagger and curator prompts: every call of one kind in a step shares
its instructions, its reply-format block (``*_FORMAT``) and the playbook snapshot (the curator also its
statistics), so those come first and the sample's own sections (task, attempt, feedback, reflection)
last, followed by a one-line reminder to answer in the format above. A generation engine with a prefix
cache (vLLM) then computes the shared opening once per step instead of once per sample; since every
weight push empties that cache, this is prefill each step would otherwise repeat
(``tests/resd_learner/context/test_context_prompts.py`` pins the layout; the time it saves:
``benchmarks/generation_profile.py``, docs/learner.md).
"""


def for_layout(templates: dict[str, str], layout: str) -> str:
    """The template of ``templates`` for ``layout`` (a ``context.prompt_layout``).

    Raises ``ValueError`` naming the known layouts when ``layout`` is not one of them.
    """
    try:
        return templates[layout]
    except KeyError:
        raise ValueError(f"unknown prompt layout {layout!r}; use one of {sorted(templates)}") from None
