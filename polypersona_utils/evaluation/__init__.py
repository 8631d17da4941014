"""Notebook 04: the answers scored.

Reads: the test split, every variant's predictions and the survey's real answers. Writes under `results/<profile>/`:
`per_example_scores.csv`, the metric tables (text overlap, BERTScore, closed-answer agreement and distribution
alignment, persona fidelity, paired differences), their figures and the README's metrics section; `make score`
scores answers produced elsewhere into `scored/<NAME>/`.
"""
