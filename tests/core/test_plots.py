"""The one place report figures are drawn and written."""

import io
from pathlib import Path

import pytest

from carelens.core.plots import figure

PNG = b"\x89PNG\r\n\x1a\n"


def test_a_figure_is_written_as_png_to_a_new_folder_and_closed(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    target = tmp_path / "new" / "plot.png"
    with figure(target, (2, 2), dpi=50) as (fig, ax):
        ax.plot([0, 1], [0, 1])
    assert target.read_bytes().startswith(PNG)
    assert fig.get_size_inches().tolist() == [2, 2]
    assert not plt.get_fignums()


def test_a_figure_goes_to_a_buffer_and_is_closed_when_drawing_fails() -> None:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    with figure(buf, (2, 1)) as (_, ax):
        ax.bar(["a"], [1])
    assert buf.getvalue().startswith(PNG)
    with pytest.raises(ValueError), figure(io.BytesIO(), (2, 1)):
        raise ValueError("drawing failed")
    assert not plt.get_fignums()
