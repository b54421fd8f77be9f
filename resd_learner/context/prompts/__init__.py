"""Prompt templates of the context updater and the teacher, written for this project.

Each module holds ``str.format`` templates (literal braces doubled). Fields are documented next to
each template. Templates contain no model-specific tokens; chat formatting is the tokenizer's job.
"""
