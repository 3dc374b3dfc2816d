"""Library behind the DVC stages: data pipeline, models, tokenizers and evaluation.

Nothing here reads params.yaml, parses argv or holds a path literal: functions take a
typed config and in-memory data and return in-memory results (see STYLE.md).
"""
