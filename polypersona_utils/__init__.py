"""Polypersona: persona-grounded synthetic survey answers, trained, generated and scored against real respondents.

The stages, in the order data flows through them (each imports only from the stages before it and the shared
modules at the top; `tests/test_module_map.py` checks it):

    reporting   tables, figure helpers and the results README that every stage writes into
    llm         the embedded language models: loading, option probabilities, text backends, resumable logs
    dataset     notebook 01: surveys, question bank, persona cards, prompts, teacher references, records, splits
    modeling    notebooks 02-03: LoRA/QLoRA training (both objectives, packed by respondent) and generation
    evaluation  notebook 04: text and survey metrics against baselines, answers scored from elsewhere
    panel       notebook 06: the synthetic panel against held-out real respondents and a statistician's references
    runs        notebooks 05, 07 and 08: ablation runs, the learning curve and new-items folds, and their reports

Shared at the top: `paths` (every location), `config`, `config_sections` and `config_runs` (a profile's settings and
the survey and question bank they name, loaded once), `study` (`StudyRun`: a run's respondents, panel and variants, made once
and passed down), `provenance` (atomic writes, hashes), `stats` (persona-bootstrap intervals), `yaml_files`,
`user_files`; and the entry points: `notebook_start` (every notebook's first call), `make_plan` (what make asks when
it starts) and `cli` (`python -m polypersona_utils <command>`).

Package imports sit at the top of each module. The heavy libraries (torch, transformers, peft, TRL, datasets,
scikit-learn, matplotlib, the metric packages), and the two training modules that import torch and TRL when
imported (`modeling.answer_loss`, `modeling.packed_trainer`), are imported inside the functions that use them: importing
a module never loads them (make's `prepare` runs at every start); calling what needs them does.
"""
