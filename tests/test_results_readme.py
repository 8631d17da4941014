"""The results README has one writer: notebooks contribute sections and rerunning one keeps the others."""
from polypersona_utils.results_readme import write_section


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
