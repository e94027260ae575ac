"""A picture of one video's prediction: a few frames | their flow | the top-5 bars of each stream.

`save_strip` draws, left to right, the frames (top row) above their flow in the colour wheel
(bottom row; the caller colours it with `flow.visualization`, which this subpackage does not
import), then one horizontal bar chart per stream and for the fusion. matplotlib (Agg), imported
lazily, as for the confusion matrices.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np


def save_strip(path: str, title: str, frames: np.ndarray, flow_images: Sequence[np.ndarray],
               top: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
  """Writes the PNG strip.

  Args:
    path: the .png to write (its folder must exist).
    title: shown above the strip (e.g. the file name).
    frames: uint8 `[R, H, W, 3]` RGB frames (R may be 0).
    flow_images: R (or 0) uint8 `[H, W, 3]` colour-wheel pictures of the flow at those frames.
    top: name ('spatial', 'temporal', 'fusion') -> the top classes, best first, as
      [{'class': str, 'prob': float}, ...].
  """
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top

  columns = max(len(frames), 1)
  rows = 2 if len(flow_images) else 1
  width = 1.6 * columns + 3.2 * len(top)
  figure = Figure(figsize=(width, 1.5 * rows + 0.6), dpi=100)
  FigureCanvasAgg(figure)
  grid = figure.add_gridspec(rows, columns + 2 * len(top), wspace=0.5, hspace=0.1)
  for i, frame in enumerate(frames):
    axis = figure.add_subplot(grid[0, i])
    axis.imshow(frame)
    axis.set_axis_off()
    if i < len(flow_images):
      axis = figure.add_subplot(grid[1, i])
      axis.imshow(flow_images[i])
      axis.set_axis_off()
  for j, (name, entries) in enumerate(top.items()):
    axis = figure.add_subplot(grid[:, columns + 2 * j:columns + 2 * j + 2])
    entries = list(entries)[::-1]  # best on top
    probs = [float(e['prob']) for e in entries]
    axis.barh(range(len(entries)), probs, color='tab:red' if name == 'fusion' else 'tab:blue')
    for y, p in enumerate(probs):
      axis.text(min(p, 0.75) + 0.02, y, f'{p:.2f}', va='center', fontsize=6)
    axis.set_yticks(range(len(entries)), [str(e['class']) for e in entries], fontsize=7)
    axis.set_xlim(0, 1)
    axis.tick_params(axis='x', labelsize=6)
    axis.set_title(name, fontsize=8)
  figure.suptitle(title, fontsize=9)
  figure.savefig(path + '.tmp.png', bbox_inches='tight')
  os.replace(path + '.tmp.png', path)
