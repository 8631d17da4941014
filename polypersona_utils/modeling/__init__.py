"""Notebooks 02 and 03: fine-tuning and answering.

Reads: the dataset's splits and the embedded models. Writes: `artifacts/<profile>/adapters/` (one LoRA/QLoRA adapter
per model, its fingerprint, loss history and figure) and `artifacts/<profile>/predictions/` (every variant's answers
to the test split, zero-shot and fine-tuned).
"""
