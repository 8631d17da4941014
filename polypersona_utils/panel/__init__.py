"""Notebook 06: the synthetic panel against real respondents.

Reads: the adapters, the held-out real respondents of the survey and the training respondents outside the panel.
Writes: `artifacts/<profile>/panel/<variant>.jsonl`, `results/<profile>/panel_distributions.csv`, the `panel_*` tables
and figures (alignment, calibration, subgroup effects, paired differences, stacking, worth in real respondents) and
the README's verdict and panel sections; also scores a panel made elsewhere (`make score-panel`).
"""
