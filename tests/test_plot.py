"""learning_curve.png: the band, the tick labels, games per seat, the loss panel, old metrics.csv files."""

from __future__ import annotations

import csv
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepq.run.plot import (
    DPI,
    FIGSIZE,
    MAX_POINTS,
    compact,
    decimate,
    eval_band,
    learning_curve_figure,
    moving_mean,
    plot_learning_curve,
    read_metrics,
    solved_step,
)

COLUMNS = ["step", "episode", "episode_return", "episode_length", "epsilon", "loss", "eval_return", "eval_std",
           "eval_min", "eval_max", "eval_first", "eval_second", "eval_kind"]
OLD_COLUMNS = COLUMNS[:8]  # metrics.csv before eval_min ... eval_kind


def write_metrics(run_dir: Path, rows: list[dict[str, Any]], columns: list[str] = COLUMNS) -> Path:
    with (run_dir / "metrics.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return run_dir


def episodes(n: int, every: int = 50, loss: bool = True) -> list[dict[str, Any]]:
    return [{"step": every * (i + 1), "episode": i + 1, "episode_return": 10 + i % 7, "episode_length": every,
             "epsilon": 0.1, "loss": f"{(i + 1) ** -3:.6g}" if loss and i >= 2 else ""} for i in range(n)]


def evaluation(step: int, mean: float, std: float, lo: float, hi: float, kind: str = "periodic",
               first: float | str = "", second: float | str = "") -> dict[str, Any]:
    return {"step": step, "eval_return": mean, "eval_std": std, "eval_min": lo, "eval_max": hi,
            "eval_first": first, "eval_second": second, "eval_kind": kind}


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    return width, height


def figure(run_dir: Path, **kw: Any) -> Any:
    return learning_curve_figure(read_metrics(run_dir / "metrics.csv"), **kw)


def legend_labels(fig: Any) -> list[str]:
    legend = fig.axes[0].get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


def band_ys(ax: Any) -> np.ndarray:
    """y of every vertex of the filled evaluation bands on ax."""
    return np.concatenate([p.vertices[:, 1] for c in ax.collections for p in c.get_paths()])


def test_png_written_with_the_expected_size(tmp_path: Path) -> None:
    write_metrics(tmp_path, [*episodes(40), evaluation(1000, 12, 2, 10, 16), evaluation(2000, 14, 1, 13, 16)])
    out = plot_learning_curve(tmp_path, title="t", threshold=15)
    assert out == tmp_path / "learning_curve.png"
    assert png_size(out) == (int(FIGSIZE[0] * DPI), int(FIGSIZE[1] * DPI))


def test_eval_band_by_hand() -> None:
    mean, std = np.array([10.0, 0.0, 450.0]), np.array([5.0, 3.0, 100.0])
    # mean ± std is [5, 15], [-3, 3], [350, 550]; the evaluations' own lowest/highest returns clip first
    low, high = eval_band(mean, std, lo=np.array([8.0, -1.0, 300.0]), hi=np.array([11.0, 2.0, 500.0]))
    np.testing.assert_allclose(low, [8, -1, 350])
    np.testing.assert_allclose(high, [11, 2, 500])
    # then the env's possible range: [0, 500] lifts -1 to 0
    low, high = eval_band(mean, std, np.array([8.0, -1.0, 300.0]), np.array([11.0, 2.0, 500.0]), (0.0, 500.0))
    np.testing.assert_allclose(low, [8, 0, 350])
    np.testing.assert_allclose(high, [11, 2, 500])
    # an old file records no min/max (NaN: no clip) and maybe no std (NaN: no width)
    unknown = np.array([np.nan, np.nan])
    low, high = eval_band(np.array([10.0, 7.0]), np.array([5.0, np.nan]), unknown, unknown)
    np.testing.assert_allclose(low, [5, 7])
    np.testing.assert_allclose(high, [15, 7])
    low, high = eval_band(np.array([490.0]), np.array([30.0]), return_range=(0.0, 500.0))
    np.testing.assert_allclose([low[0], high[0]], [460, 500])


def test_the_drawn_band_stays_inside_eval_max_and_the_return_range(tmp_path: Path) -> None:
    rows = [*episodes(20), evaluation(500, 480, 40, 420, 500), evaluation(1000, 495, 10, 470, 500),
            evaluation(1000, 499, 5, 490, 500, kind="final")]
    write_metrics(tmp_path, rows)
    ys = band_ys(figure(tmp_path).axes[0])
    assert ys.max() <= 500 and ys.min() >= 420
    # with no min/max in the file, return_range alone keeps the band inside [0, 500]
    write_metrics(tmp_path, rows, OLD_COLUMNS)
    ys = band_ys(figure(tmp_path, return_range=(0.0, 500.0)).axes[0])
    assert ys.max() <= 500
    assert band_ys(figure(tmp_path).axes[0]).max() == pytest.approx(520)  # and without it: 480 + 40


@pytest.mark.parametrize(("x", "text"), [(0, "0"), (-0.0, "0"), (10_000, "10k"), (250_000, "250k"),
                                         (1_500_000, "1.5M"), (500, "500"), (2_500, "2.5k"), (12_500, "12.5k"),
                                         (999_960, "1M"), (2e9, "2B"), (-10_000, "\u221210k"), (0.5, "0.5"),
                                         (0.30000000000000004, "0.3")])
def test_compact_tick_labels(x: float, text: str) -> None:
    assert compact(x) == text


def test_compact_with_three_digits_for_text() -> None:
    assert compact(17_340, digits=3) == "17.3k"
    assert compact(8_953_000, digits=3) == "8.95M"


def test_axes_use_compact_ticks_and_no_offset(tmp_path: Path) -> None:
    rows = [{"step": s, "episode": i + 1, "episode_return": 1.0, "loss": 0.1}
            for i, s in enumerate(range(100_000, 2_000_001, 100_000))]
    write_metrics(tmp_path, rows)
    fig = figure(tmp_path)
    fig.canvas.draw()
    ax = fig.axes[-1]
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert "1M" in labels and "2M" in labels
    assert ax.xaxis.get_offset_text().get_text() == ""


def test_threshold_and_the_first_periodic_evaluation_reaching_it(tmp_path: Path) -> None:
    rows = [*episodes(60), evaluation(1000, 300, 10, 280, 320), evaluation(2000, 480, 10, 460, 500),
            evaluation(3000, 490, 5, 480, 500), evaluation(3000, 500, 0, 500, 500, kind="final")]
    write_metrics(tmp_path, rows)
    m = read_metrics(tmp_path / "metrics.csv")
    assert solved_step(m, 475) == 2000
    assert solved_step(m, 495) is None  # only the final evaluation reached it: not a periodic one
    assert solved_step(m, None) is None
    labels = legend_labels(figure(tmp_path, threshold=475))
    assert "solved threshold 475" in labels and "solved at 2k" in labels
    assert "solved threshold 495 (not reached)" in legend_labels(figure(tmp_path, threshold=495))


def test_final_evaluation_is_a_star_in_the_legend(tmp_path: Path) -> None:
    write_metrics(tmp_path, [*episodes(20), evaluation(1000, 20, 1, 18, 22), evaluation(1000, 21, 1, 19, 22, "final")])
    fig = figure(tmp_path)
    assert "final evaluation (saved agent): 21" in legend_labels(fig)
    stars = [line for line in fig.axes[0].get_lines() if line.get_marker() == "*"]
    assert len(stars) == 1 and list(stars[0].get_xdata()) == [1000]
    # the periodic evaluation line does not include the final evaluation
    (periodic,) = [line for line in fig.axes[0].get_lines() if line.get_label().startswith("greedy evaluation")]
    assert list(periodic.get_ydata()) == [20]


def test_games_plot_scores_per_seat_not_the_raw_returns(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = [{"step": 7 * (i + 1), "episode": i + 1, "episode_return": r, "loss": 0.2}
                                  for i, r in enumerate(rng.choice([-1, 0, 1], size=400))]
    rows += [evaluation(700 * k, 0.1 * k, 0.9, -1, 1, first=0.15 * k, second=0.05 * k) for k in range(1, 5)]
    rows.append(evaluation(2800, 0.5, 0.8, -1, 1, "final", first=0.7, second=0.3))
    write_metrics(tmp_path, rows)
    fig = figure(tmp_path, game=True)
    labels = legend_labels(fig)
    for want in ["evaluation, playing first", "evaluation, playing second", "evaluation, mean of both seats"]:
        assert want in labels
    assert any("first player's return" in label for label in labels)
    assert "episode return" not in labels  # the raw ±1 returns are not drawn
    ax = fig.axes[0]
    training = [line for line in ax.get_lines() if "first player's return" in line.get_label()]
    assert len(training) == 1 and len(training[0].get_ydata()) < 400  # a moving mean, not every game
    assert np.abs(training[0].get_ydata()).max() < 1
    lo, hi = ax.get_ylim()
    assert -1.1 < lo <= -1 and 1 <= hi < 1.1
    (first,) = [line for line in ax.get_lines() if line.get_label() == "evaluation, playing first"]
    np.testing.assert_allclose(first.get_ydata(), [0.15, 0.3, 0.45, 0.6])
    assert len([line for line in ax.get_lines() if line.get_marker() == "*"]) == 3  # final: both seats and mean


def test_old_format_file(tmp_path: Path) -> None:
    write_metrics(tmp_path, [*episodes(30), evaluation(500, 12, 2, 0, 0), evaluation(1500, 14, 1, 0, 0)],
                  OLD_COLUMNS)
    m = read_metrics(tmp_path / "metrics.csv")
    assert len(m.ev_step) == 2 and np.isnan(m.ev_min).all() and not m.ev_final.any()
    fig = figure(tmp_path, threshold=13)
    assert "solved at 1.5k" in legend_labels(fig)
    out = plot_learning_curve(tmp_path, threshold=13)
    assert png_size(out) == (900, 600)


def test_loss_panel_only_when_losses_exist(tmp_path: Path) -> None:
    write_metrics(tmp_path, episodes(30))
    fig = figure(tmp_path)
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "TD loss"
    assert fig.axes[1].get_yscale() == "log"  # 1/27 ... 1/27000: three decades
    write_metrics(tmp_path, episodes(30, loss=False))
    assert len(figure(tmp_path).axes) == 1


def test_loss_panel_is_linear_within_two_decades(tmp_path: Path) -> None:
    write_metrics(tmp_path, [{"step": 10 * i, "episode": i, "episode_return": 1, "loss": 0.5 + 0.01 * i}
                             for i in range(1, 30)])
    assert figure(tmp_path).axes[1].get_yscale() == "linear"


@pytest.mark.parametrize("rows", [[], [episodes(1)[0]], [evaluation(100, 5, 0, 5, 5)],
                                  [evaluation(100, 5, 0, 5, 5, "final")], episodes(3, loss=False),
                                  [{"step": 5, "episode": 1, "episode_return": "nan", "loss": "inf"}]],
                         ids=["empty", "one-episode", "one-eval", "only-final", "no-loss", "non-finite"])
def test_small_and_empty_files(tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    write_metrics(tmp_path, rows)
    out = plot_learning_curve(tmp_path, threshold=10, return_range=(0.0, 10.0))
    assert png_size(out) == (900, 600)
    for line in figure(tmp_path, threshold=10).axes[0].get_lines():
        assert np.isfinite(np.asarray(line.get_ydata(), dtype=float)).all()


def test_a_file_with_no_header(tmp_path: Path) -> None:
    (tmp_path / "metrics.csv").write_text("")
    assert png_size(plot_learning_curve(tmp_path, game=True)) == (900, 600)


def test_moving_mean_by_hand() -> None:
    np.testing.assert_allclose(moving_mean(np.array([1.0, 2.0, 3.0, 4.0]), 2), [1.5, 2.5, 3.5])
    np.testing.assert_allclose(moving_mean(np.array([1.0, 2.0, 6.0]), 3), [3.0])


def test_decimate_keeps_every_bin_extreme() -> None:
    x = np.arange(10_000, dtype=float)
    y = np.sin(x / 300) + (x == 5_555) * 3.0  # one spike must survive
    dx, dy = decimate(x, y, max_points=1_000)
    assert len(dx) == len(dy) <= 1_000
    assert dy.max() == y.max() and dy.min() == y.min()
    assert np.all(np.diff(dx) >= 0)
    short_x, short_y = decimate(x[:50], y[:50], max_points=1_000)
    assert len(short_x) == len(short_y) == 50  # short series are drawn as they are


def test_long_runs_draw_decimated_lines(tmp_path: Path) -> None:
    n = 3 * MAX_POINTS
    rows = [{"step": 100 * (i + 1), "episode": i + 1, "episode_return": i % 21 - 10, "loss": 0.01 + (i % 5) / 100}
            for i in range(n)]
    rows.append(evaluation(100 * n, 5, 1, 3, 7))
    write_metrics(tmp_path, rows)
    fig = figure(tmp_path)
    for ax in fig.axes:
        for line in ax.get_lines():
            assert len(line.get_xdata()) <= MAX_POINTS


def test_matplotlib_is_not_imported_with_deepq() -> None:
    code = "import sys, deepq, deepq.run.plot; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_weighted_moving_mean_by_hand() -> None:
    # rows holding 1, 3 and 2 episodes with mean returns 1, 4 and 2: (1·1 + 3·4) / 4, (3·4 + 2·2) / 5
    np.testing.assert_allclose(moving_mean(np.array([1.0, 4.0, 2.0]), 2, np.array([1.0, 3.0, 2.0])), [3.25, 3.2])
    y = np.random.default_rng(0).normal(size=50)
    np.testing.assert_array_equal(moving_mean(y, 7, np.ones(50)), moving_mean(y, 7))  # one episode a row: as before


@pytest.mark.parametrize("game", [False, True], ids=["returns", "game"])
def test_rows_of_several_episodes_weigh_by_their_count(tmp_path: Path, game: bool) -> None:
    """10 rows alternating 1 episode of return `low` and 3 of `high`: every 2-row window holds 4 episodes with
    mean (low + 3 high) / 4, not the rows' plain mean (low + high) / 2."""
    low, high = (-1.0, 1.0) if game else (0.0, 10.0)
    rows = [{"step": 40 * (i + 1), "episode": 2 * i + 2, "episode_return": high if i % 2 else low,
             "episodes_in_row": 3 if i % 2 else 1, "loss": 0.1} for i in range(10)]
    write_metrics(tmp_path, rows, [*COLUMNS, "episodes_in_row"])
    m = read_metrics(tmp_path / "metrics.csv")
    assert m.ep_count.tolist() == [1, 3] * 5
    fig = figure(tmp_path, game=game)
    name = "first player's return (mean of 2 rows, ~4 episodes)" if game else "episode return, mean of 2 rows, ~4"
    (smooth,) = [line for line in fig.axes[0].get_lines() if name in line.get_label()]
    np.testing.assert_allclose(smooth.get_ydata(), [(low + 3 * high) / 4] * 9)  # 0.5 (game) or 7.5
    if not game:
        assert "episode return, mean of each row's episodes" in legend_labels(fig)


def test_an_older_file_counts_one_episode_a_row(tmp_path: Path) -> None:
    write_metrics(tmp_path, [*episodes(3), {"step": 200, "episode": 9, "episode_return": 4, "episodes_in_row": ""}],
                  [*COLUMNS, "episodes_in_row"])
    assert read_metrics(tmp_path / "metrics.csv").ep_count.tolist() == [1, 1, 1, 1]
    write_metrics(tmp_path, episodes(30))  # no such column
    m = read_metrics(tmp_path / "metrics.csv")
    assert m.ep_count.tolist() == [1] * 30
    assert "episode return, mean of 6" in legend_labels(figure(tmp_path))  # labels as before: 6 episodes
