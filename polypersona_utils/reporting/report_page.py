"""One page of findings (`make report`): `results/<profile>/report.html`, the results README (the verdict first)
rendered by nbconvert with every figure of the profile's main run inline, self-contained (opened in a browser
from disk, no server, no code cells). The README's own image links become inline images; the figures it does not
show follow under "Figures"."""
from __future__ import annotations

import base64
import re
from pathlib import Path

from ..provenance import atomic_write_text

REPORT_FILE = "report.html"
IMAGE_LINK = re.compile(r"!\[([^\]]*)\]\((figures/[^)]+\.png)\)")
# nbconvert's template loads require.js, MathJax and mermaid from a CDN; the page uses none of them, and must open
# offline: every script that reaches for the network goes
REMOTE_SCRIPT = re.compile(r"<script\b[^>]*>(?:(?!</script>).)*?https?://cdn(?:(?!</script>).)*</script>\s*"
                           r"|<script\b[^>]*\ssrc=\"https?://[^\"]*\"[^>]*>\s*</script>\s*", re.DOTALL)


def inline(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def report_markdown(results: Path) -> str:
    """The README with its figure links inlined, then every other figure of `results/figures/`."""
    readme = (results / "README.md").read_text(encoding="utf-8")
    shown = {link for _, link in IMAGE_LINK.findall(readme)}
    text = IMAGE_LINK.sub(lambda m: f"![{m.group(1)}]({inline(results / m.group(2))})", readme)
    rest = [p for p in sorted((results / "figures").glob("*.png")) if f"figures/{p.name}" not in shown]
    if rest:
        text += "\n\n## Figures\n\n" + "\n\n".join(f"**{p.stem.replace('_', ' ')}** (`figures/{p.name}`)\n\n"
                                                   f"![{p.stem}]({inline(p)})" for p in rest) + "\n"
    return text


def write_report(results: Path) -> Path:
    """`results/report.html` from `report_markdown`, through nbconvert's HTML exporter (one markdown cell)."""
    import nbformat
    from nbconvert import HTMLExporter

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(report_markdown(results))])
    notebook.metadata["title"] = f"Polypersona results: {results.name}"
    html, _ = HTMLExporter(exclude_input=True, exclude_input_prompt=True).from_notebook_node(notebook)
    atomic_write_text(results / REPORT_FILE, REMOTE_SCRIPT.sub("", html))
    return results / REPORT_FILE
