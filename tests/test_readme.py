"""The results README has one writer: notebooks contribute sections and rerunning one keeps the others."""
from polypersona_utils.reporting.readme import write_section


def test_sections_render_in_a_fixed_order_and_survive_reruns(tmp_path):
    write_section(tmp_path, "ablations", "## Ablations\nfirst")
    write_section(tmp_path, "metrics", "# Results\nmetrics v1")
    readme = tmp_path / "README.md"
    assert readme.read_text() == "# Results\nmetrics v1\n\n## Ablations\nfirst\n"
    write_section(tmp_path, "metrics", "# Results\nmetrics v2")  # notebook 04 rerun: 05's section stays
    assert readme.read_text() == "# Results\nmetrics v2\n\n## Ablations\nfirst\n"


def test_an_unknown_section_is_refused(tmp_path):
    import pytest

    with pytest.raises(ValueError, match="unknown results README section 'plots'"):
        write_section(tmp_path, "plots", "x")


def test_a_tables_markdown_is_headed_by_its_caption_and_legend(tmp_path):
    import pandas as pd

    from polypersona_utils.reporting.tables import LEGENDS, write_table

    write_table(pd.DataFrame({"variant": ["a"], "log_loss": [0.5]}), tmp_path / "panel_individual", caption="cap")
    text = (tmp_path / "panel_individual.md").read_text()
    assert text.startswith(f"**cap**: {LEGENDS['panel_individual']}\n\n| variant")
    assert (tmp_path / "panel_individual.csv").read_text() == "variant,log_loss\na,0.5000\n"  # the CSV is untouched
