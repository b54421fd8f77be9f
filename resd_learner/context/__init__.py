"""Context updater and teacher prompt builder of RESD (pure Python, never imports torch).

- :class:`ContextUpdater` (``updater.py``): per-step concise → reflect → tag → curate → concise, and
  the solution buffer; emits playbook history events; checkpointable as JSON.
- :class:`Playbook` (``playbook.py``), :class:`SolutionBuffer` / :func:`choose_demonstration`
  (``solutions.py``), Concise (``concise.py``), robust JSON parsing (``parsing.py``).
- :func:`build_teacher_inputs` / :func:`build_sdpo_teacher_inputs` (``teacher_prompt.py``).
"""

from .config import CONCISE_METHODS, ContextConfig
from .parsing import strip_thinking
from .playbook import SECTIONS, Playbook, PlaybookEntry
from .solutions import SolutionBuffer, choose_demonstration
from .teacher_prompt import (
    TEACHER_LAYOUTS,
    TEMPLATES,
    TeacherInputs,
    TeacherPromptTooLong,
    build_sdpo_teacher_inputs,
    build_teacher_inputs,
    template_for_env,
)
from .types import ContextUpdate, Generate, SampleView
from .updater import ContextUpdater

__all__ = [
    "CONCISE_METHODS",
    "ContextConfig",
    "ContextUpdate",
    "ContextUpdater",
    "Generate",
    "Playbook",
    "PlaybookEntry",
    "SECTIONS",
    "SampleView",
    "SolutionBuffer",
    "TEACHER_LAYOUTS",
    "TEMPLATES",
    "TeacherInputs",
    "TeacherPromptTooLong",
    "build_sdpo_teacher_inputs",
    "build_teacher_inputs",
    "choose_demonstration",
    "strip_thinking",
    "template_for_env",
]
