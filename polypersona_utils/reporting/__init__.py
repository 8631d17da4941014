"""Reporting: what every stage writes its results with.

Reads: tables and figures handed to it. Writes under `results/<profile>/`: `tables/*.csv|md|tex`, `figures/*.png|pdf`,
`README.md` (rendered from each notebook's stored section, `readme_sections.json`) and `report.html` (`make report`).
"""
