"""Notebooks 05 and 07: the study rerun with other settings.

Reads: the profile and each named run's overrides. Writes: `results/<profile>/runs/<run>/` (each ablation run and each
learning-curve run `respondents-<k>`: its own metrics or panel), `results/<profile>/ablations.md`, the ablation and
learning-curve tables, figures and README sections.
"""
