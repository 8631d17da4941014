"""`make report`: one self-contained page with the verdict and every figure."""
from html.parser import HTMLParser

from polypersona_utils.cli import main
from polypersona_utils.reporting.report_page import write_report


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.scripts, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "script":
            self.scripts.append(attrs.get("src"))

    def handle_data(self, data):
        self.text.append(data)


def tiny_png(path, colour):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [0, 1], color=colour)
    fig.savefig(path)
    plt.close(fig)


def test_the_page_holds_the_verdict_and_every_figure_inline(tmp_path):
    results = tmp_path / "results"
    (results / "figures").mkdir(parents=True)
    for name, colour in (("panel_worth", "red"), ("panel_by_party", "blue"), ("loss", "green")):
        tiny_png(results / "figures" / f"{name}.png", colour)
    (results / "README.md").write_text("## Verdict\n\nThe panel is worth 100.4 real respondents per 100.\n\n"
                                       "![worth](figures/panel_worth.png)\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    page = Page()
    page.feed(write_report(results).read_text())
    text = " ".join(page.text)
    assert "Verdict" in text and "100.4 real respondents per 100" in text
    assert len(page.images) == 3 and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert not [s for s in page.scripts if s]  # nothing fetched from the network
    assert "figures/panel_worth.png" not in text  # inlined where the README shows it, not listed again
    assert "panel by party" in text and "loss" in text


def test_no_results_is_a_clear_error(tmp_roots, capsys):
    assert main(["report", "smoke"]) == 2
    assert "no results yet" in capsys.readouterr().err
