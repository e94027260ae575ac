"""The classes of the synthetic videos: appearance families x motion types, and their ceilings.

`SyntheticSpec` says what to generate. Class `i` is `class_factors(spec)[i]`, a pair (appearance in
`APPEARANCES`, motion in `MOTIONS`); labels follow the sorted class names (`class_names`). Classes
that share an appearance differ only in motion and classes that share a motion differ only in
appearance, so a single frame and a flow stack each see one factor; `accuracy_ceilings` gives the
best top-1 test accuracy of a classifier that sees only some of them. Design: docs/design_notes.md.

Plain Python: no numpy, TensorFlow or JAX.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

APPEARANCES = ('Checker', 'Dots', 'Rings', 'Solid', 'Stripes')
MOTIONS = ('Up', 'Down', 'ZoomIn', 'ZoomOut', 'Sway', 'Bob')


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
  """What to generate. Class `i` is `class_factors(spec)[i]`; labels follow sorted class names.

  Attributes:
    appearances: appearance families, a subset of `APPEARANCES`.
    motions: motion types, a subset of `MOTIONS`.
    height: frame height in pixels.
    width: frame width in pixels.
    num_frames: frames per video.
    train_per_class: training videos per class.
    test_per_class: test videos per class.
    camera_pan: whether the view pans at a random per-video velocity.
    seed: data set seed; the same seed gives the same frames.
    fps: frame rate written into the .avi files.
  """
  appearances: tuple[str, ...] = ('Checker', 'Solid', 'Stripes')
  motions: tuple[str, ...] = ('Up', 'Down')
  height: int = 120
  width: int = 160
  num_frames: int = 24
  train_per_class: int = 40
  test_per_class: int = 10
  camera_pan: bool = False
  seed: int = 0
  fps: int = 25

  def __post_init__(self):
    # Accept lists (e.g. from JSON or flags) but keep the spec hashable and comparable.
    object.__setattr__(self, 'appearances', tuple(self.appearances))
    object.__setattr__(self, 'motions', tuple(self.motions))
    check_factor_names('SyntheticSpec', 'appearances', self.appearances, APPEARANCES)
    check_factor_names('SyntheticSpec', 'motions', self.motions, MOTIONS)
    if self.height < 48 or self.width < 48:
      raise ValueError(f'SyntheticSpec frame size {self.width}x{self.height} is too small: '
                       'use height and width >= 48.')
    if self.num_frames < 2:
      raise ValueError(f'SyntheticSpec.num_frames={self.num_frames}: need >= 2 frames for motion.')
    if self.train_per_class < 0 or self.test_per_class < 0 or (
        self.train_per_class + self.test_per_class == 0):
      raise ValueError('SyntheticSpec.train_per_class and test_per_class must be >= 0 and not both 0 '
                       f'(got {self.train_per_class}, {self.test_per_class}).')
    if self.seed < 0 or self.fps <= 0:
      raise ValueError(f'SyntheticSpec needs seed >= 0 and fps > 0 (got {self.seed}, {self.fps}).')

  def to_dict(self) -> dict[str, Any]:
    return spec_dict(self)


def check_factor_names(spec_name: str, field: str, given: tuple[str, ...], known) -> None:
  """Raises ValueError unless `given` is a non-empty tuple of distinct names from `known`."""
  unknown = [x for x in given if x not in known]
  if not given or unknown or len(set(given)) != len(given):
    raise ValueError(f'{spec_name}.{field}={list(given)} must be a non-empty list of distinct '
                     f'names from {list(known)}; unknown: {unknown}.')


def spec_dict(spec) -> dict[str, Any]:
  """A spec dataclass as JSON-ready values (tuples as lists)."""
  return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(spec).items()}


def class_factors(spec) -> list[tuple[str, str]]:
  """(appearance, motion) of every class, in label order (sorted by class name, as classInd.txt).

  `spec`: anything with `appearances` and `motions` (SyntheticSpec, ablation_videos.AblationSpec).
  """
  return sorted(((a, m) for a in spec.appearances for m in spec.motions), key=lambda f: f[0] + f[1])


def class_names(spec) -> list[str]:
  """CamelCase class names in label order, e.g. ['CheckerDown', 'CheckerUp', ...]."""
  return [a + m for a, m in class_factors(spec)]


def accuracy_ceilings(spec: SyntheticSpec) -> dict[str, float]:
  """Best possible top-1 test accuracy of classifiers that see only some of the class factors.

  A classifier that knows only a video's appearance can at best pick, among the classes that share
  that appearance, the one with most test videos; likewise for motion. Assumes (as the design makes
  true for time-reversal motion pairs) that single frames carry no motion information and flow
  carries no appearance information.

  Returns:
    {'appearance_only', 'motion_only', 'both', 'chance'}: fractions in [0, 1].
  """
  factors = class_factors(spec)
  # Every class has the same number of test videos (the design's ceilings if there are none).
  videos = [max(spec.test_per_class, 1)] * len(factors)
  total = sum(videos)

  def best_knowing(key: Callable[[tuple[str, str]], Any]) -> float:
    best: dict[Any, int] = {}
    for f, n in zip(factors, videos):
      best[key(f)] = max(best.get(key(f), 0), n)
    return sum(best.values()) / total

  return {
      'appearance_only': best_knowing(lambda f: f[0]),
      'motion_only': best_knowing(lambda f: f[1]),
      'both': best_knowing(lambda f: f),
      'chance': max(videos) / total,
  }

