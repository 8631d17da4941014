"""The embedded language models and how the study asks them.

Reads: the models' pip packages (GGUF files, joined from chunk packages where needed) or hub ids, and HTTP endpoints.
Writes: `.cache/models/` (each model materialised once as a Hugging Face folder) and the resumable answer logs
other stages keep under `artifacts/<profile>/cache/`.
"""
