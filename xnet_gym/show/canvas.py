"""Figures without the global matplotlib state, and atomic PNG and GIF files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write, output_path_problem
from ..errors import XnetError, field_error

IMAGE_SUFFIXES = (".png", ".gif")


def require_matplotlib() -> None:
    """Fail before any work when matplotlib is absent, saying how to install it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise XnetError("pictures need matplotlib: pip install 'xnet-gym[viz]'") from None


def figure(width_in: float, height_in: float, dpi: int = 100) -> Any:
    """A matplotlib Figure with its own Agg canvas (the user's backend is never touched)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def rgb(fig) -> np.ndarray:
    """(H, W, 3) uint8 pixels of a figure."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def check_image_path(path, allowed=IMAGE_SUFFIXES, field: str = "--out") -> Path:
    path = Path(path)
    if path.suffix.lower() not in allowed:
        raise field_error(XnetError, field, str(path), f"must end in {' or '.join(allowed)}")
    problem = output_path_problem(path)
    if problem is not None:
        raise field_error(XnetError, field, str(path), problem)
    return path


def save_png(fig, path) -> Path:
    path = check_image_path(path, (".png",))
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    return path


def save_gif(frames: list[np.ndarray], path, fps: float = 4.0) -> Path:
    """An animated GIF (Pillow) of RGB frames, looping forever."""
    path = check_image_path(path, (".gif",))
    try:
        from PIL import Image
    except ImportError:
        raise XnetError("GIFs need Pillow (it comes with matplotlib): pip install 'xnet-gym[viz]'") from None
    images = [Image.fromarray(f) for f in frames]

    def write(tmp: str) -> None:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=round(1000 / fps), loop=0)

    atomic_write(path, write)
    return path
