"""`results/<profile>/README.md`, the findings in words, written by one writer from the sections the notebooks
contribute (06: the verdict, first, and the panel; 04: metrics; 07: learning curve; 08: new questions; 05:
ablations). Each notebook
stores its section in `readme_sections.json` and the README is rendered from all stored sections in a fixed order,
so rerunning one notebook never loses another's section."""
from __future__ import annotations

import json
from pathlib import Path

from ..provenance import atomic_write_text

SECTION_ORDER = ("verdict", "metrics", "panel", "learning_curve", "new_items", "ablations")
SECTIONS_FILE = "readme_sections.json"


def write_section(results_folder: Path, name: str, markdown: str) -> Path:
    """Store section `name` and render the README from every stored section; returns the README's path."""
    if name not in SECTION_ORDER:
        raise ValueError(f"unknown results README section {name!r}; known: {SECTION_ORDER}")
    store = Path(results_folder) / SECTIONS_FILE
    sections = json.loads(store.read_text(encoding="utf-8")) if store.exists() else {}
    sections[name] = markdown.rstrip("\n") + "\n"
    atomic_write_text(store, json.dumps(sections, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    readme = Path(results_folder) / "README.md"
    atomic_write_text(readme, "\n".join(sections[n] for n in SECTION_ORDER if n in sections))
    return readme
