"""Notebooks 05, 07 and 08: the study rerun with other settings.

Reads: the profile and each named run's overrides. Writes: `results/<profile>/runs/<run>/` (each ablation run and each
learning-curve point and new-items fold: its own metrics or panel), `results/<profile>/ablations.md`, the ablation,
learning-curve (with its levers: `levers`) and new-items tables, figures and README sections.
"""
