"""The panel's figures read at page width (issue 35): every variant in the legend with its own marker, no legend over
a panel or an axis label, no text under 8 pt as shown 1,280 px wide, and no missing value drawn. Drawn from small
made-up tables; no model."""
import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import Collection
from matplotlib.lines import Line2D
from matplotlib.text import Text

from polypersona_utils.panel.figures import draw_by_party, draw_calibration, draw_worth, panel_figures
from polypersona_utils.reporting.plots import LEAST_PT, pyplot, shown_pt

VARIANTS = ["smollm2-135m-zeroshot", "smollm2-135m-lora", "baseline-population", "baseline-logistic"]
PREDICTORS = ["smollm2-135m-zeroshot", "smollm2-135m-lora", "baseline-logistic", "shuffled-smollm2-135m-zeroshot"]
PARTIES = ["strong Democrat", "independent leaning Republican", "strong Republican"]
OPTIONS = ["Too little", "About right", "Too much"]


def distributions() -> pd.DataFrame:
    """Five items, three party groups of 12, 12 and 3 respondents; the lora variant scored no strong Republican
    (a group without a value: nothing drawn there)."""
    rng = np.random.default_rng(0)
    rows = []
    for k, party in enumerate([PARTIES[0]] * 12 + [PARTIES[1]] * 12 + [PARTIES[2]] * 3 + ["another party"] * 2):
        for item in range(5):
            real = OPTIONS[rng.integers(3)]
            for variant in VARIANTS:
                if variant == "smollm2-135m-lora" and party == "strong Republican":
                    continue
                p = rng.dirichlet(np.ones(3))
                rows.append({"variant": variant, "persona_id": f"p{k:03d}", "question_id": f"nat_{item:02d}",
                             "options": OPTIONS, "probabilities": list(p), "real_option": real, "party": party})
    return pd.DataFrame(rows)


def calibration() -> pd.DataFrame:
    rows = [{"variant": v, "bin": b, "predicted": 0.1 * b + 0.05, "observed": 0.1 * b + 0.02 * k, "pairs": 10 + b}
            for k, v in enumerate(VARIANTS) for b in range(10)]
    rows[3]["observed"] = float("nan")  # a bin without pairs
    return pd.DataFrame(rows)


def worth() -> pd.DataFrame:
    rows = []
    for n in (50, 100, 150):
        for k, predictor in enumerate(PREDICTORS):
            rows += [{"predictor": predictor, "n": n, "estimator": "classical", "coverage": 0.935,
                      "worth_per_100": 100.0},
                     {"predictor": predictor, "n": n, "estimator": "synthetic", "coverage": 0.01 * k,
                      "worth_per_100": float("nan")},
                     {"predictor": predictor, "n": n, "estimator": "ppi", "coverage": 0.93 + 0.001 * k,
                      "worth_per_100": 100.5 + k if n > 50 or k else float("nan")}]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def figures():
    """The three figures, drawn once, with their legends' labels expected."""
    plt = pyplot()
    drawn = {"panel_by_party": (draw_by_party(distributions(), "test", PARTIES, least=3),
                                ["real respondents (bar: share)", *VARIANTS]),
             "panel_calibration": (draw_calibration(calibration(), "test"), VARIANTS),
             "panel_worth": (draw_worth(worth(), "test"), ["classical (real sample alone)", *PREDICTORS])}
    for fig, _ in drawn.values():
        fig.canvas.draw()
    yield drawn
    for fig, _ in drawn.values():
        plt.close(fig)


def shown(artist) -> bool:
    return artist.get_visible() and (artist.axes is None or artist.axes.get_visible())


def test_every_variant_is_in_the_legend_with_its_own_marker(figures):
    for name, (fig, expected) in figures.items():
        (legend,) = fig.legends
        labels = [t.get_text() for t in legend.get_texts()]
        assert labels[:len(expected)] == expected, name
        markers = [(h.get_marker(), h.get_color()) for h in legend.legend_handles if isinstance(h, Line2D)]
        assert len(set(markers)) == len(markers), name


def test_no_missing_value_is_drawn(figures):
    for name, (fig, _) in figures.items():
        for line in fig.findobj(Line2D):
            assert np.isfinite(np.asarray(line.get_xydata(), dtype=float)).all(), (name, line.get_label())
        for collection in fig.findobj(Collection):
            assert np.isfinite(np.asarray(collection.get_offsets(), dtype=float)).all(), name
            for path in collection.get_paths():
                assert np.isfinite(path.vertices).all(), name


def test_the_group_without_a_value_has_no_point():
    """The lora variant scored no strong Republican: its markers stand at the two other groups only."""
    plt = pyplot()
    fig = draw_by_party(distributions(), "test", PARTIES, least=3)
    lora = [line for line in fig.axes[0].get_lines() if line.get_marker() == "^"]
    assert len(lora) == 1 and len(lora[0].get_xdata()) == 2 and max(lora[0].get_xdata()) < 1.5
    plt.close(fig)


def test_every_text_is_at_least_8_pt_as_shown_1280_px_wide(figures):
    """A figure saved wider than 1,280 px (dpi 150, tight box: 0.1 in padding a side) is shown scaled down to it."""
    for name, (fig, _) in figures.items():
        renderer = fig.canvas.get_renderer()
        width = fig.get_tightbbox(renderer).width + 0.2
        texts = [t for t in fig.findobj(Text) if shown(t) and t.get_text().strip()]
        assert len(texts) > 10, name
        for text in texts:
            assert shown_pt(text.get_fontsize(), width) >= LEAST_PT, (name, text.get_text(), text.get_fontsize())
            assert text.get_fontsize() * 1280 / (width * 150) >= LEAST_PT, (name, text.get_text())


def test_no_legend_covers_a_panel_or_an_axis_label(figures):
    """A legend's box overlaps no panel's, taken with its tick labels, axis labels and title as drawn, nor the
    figure's own title and axis label."""
    for name, (fig, _) in figures.items():
        renderer = fig.canvas.get_renderer()
        legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
        owned = {id(t) for artist in legends + fig.axes for t in artist.findobj(Text)}  # tick labels included
        boxes = [ax.get_tightbbox(renderer, bbox_extra_artists=[]) for ax in fig.axes if ax.get_visible()]
        boxes += [t.get_window_extent(renderer) for t in fig.findobj(Text)
                  if shown(t) and t.get_text().strip() and id(t) not in owned]  # the figure's title, axis label
        assert boxes and legends, name
        for legend in legends:
            box = legend.get_window_extent(renderer)
            assert not any(box.overlaps(other) for other in boxes), name


def test_points_of_one_n_are_set_apart(figures):
    """In the worth figure no two predictors' points share an x: none hides another where their values agree."""
    fig, _ = figures["panel_worth"]
    for ax in fig.axes:
        xs = [x for line in ax.get_lines() if line.get_marker() not in ("None", "none", "") for x in line.get_xdata()]
        rounded = [round(x, 6) for x in xs]
        assert xs and len(set(rounded)) == len(rounded), ax.get_title()


def test_panel_figures_write_each_figure_as_png_and_pdf(tmp_path):
    panel_figures(distributions(), {"panel_calibration": calibration(), "panel_worth": worth()}, tmp_path, "test",
                  PARTIES, 3)
    for name in ("panel_by_party", "panel_calibration", "panel_worth"):
        for suffix in (".png", ".pdf"):
            assert (tmp_path / f"{name}{suffix}").stat().st_size > 5_000, name + suffix
    from PIL import Image

    width, _ = Image.open(tmp_path / "panel_worth.png").size
    assert math.isclose(width, 1292, abs_tol=150)  # about page width: text drawn at about the size it is shown
