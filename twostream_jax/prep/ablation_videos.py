"""The ablation set: synthetic videos on which each row of the paper's Table 1 should matter.

Class = (appearance family, motion pattern), as in `prep.synthetic_videos`, drawn with the same
renderer (`prep.synthetic_rendering`). The motion patterns differ only in how the velocity's sign
changes over time (every field has the same speed distribution and a uniformly random direction):
`Steady` never reverses, `Reverse` reverses once at a frame that every 10-field stack contains,
`Zigzag` every 3 to 4 frames. The camera zigzags at a speed close to the disc's. Why each row
should then differ, and in which order: docs/ablations.md.

`write_dataset(spec, out_dir)` writes the UCF101 layout (videos/, splits/, ablation_spec.json).
numpy + cv2 only.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from typing import Any

import numpy as np

from twostream_jax.prep import synthetic_classes
from twostream_jax.prep import synthetic_rendering
from twostream_jax.prep.synthetic_classes import APPEARANCES
from twostream_jax.prep.synthetic_videos import write_avi

MOTION_PATTERNS = ('Reverse', 'Steady', 'Zigzag')
SPEC_FILENAME = 'ablation_spec.json'
GENERATOR_VERSION = 1
MAX_CONTEXT_FIELDS = 10  # Every stack of this many fields contains a Reverse video's reversal.
# Lengths in px at a frame height of _REFERENCE_HEIGHT (they scale with the height).
_REFERENCE_HEIGHT = 64.0
_RADIUS_PX = (9.0, 11.0)
_SPEED_PX = (2.0, 3.0)             # disc, px per frame
_CAMERA_SPEED_PX = (1.5, 2.5)      # camera, px per frame (a zigzag)
_ZIGZAG_HALF_PERIOD = (3, 4)       # frames between reversals (disc and camera)


@dataclasses.dataclass(frozen=True)
class AblationSpec:
  """What to generate; class i is `class_factors(spec)[i]` (sorted by name).

  Attributes:
    appearances: families of `synthetic_classes.APPEARANCES`.
    motions: patterns of `MOTION_PATTERNS`.
    height, width, num_frames: video size (num_frames in [3, MAX_CONTEXT_FIELDS + 4]).
    train_per_class, test_per_class: videos per class.
    camera: whether the camera zigzags.
    seed: the data set's seed.
    fps: frame rate of the .avi files.
  """
  appearances: tuple[str, ...] = ('Checker', 'Dots', 'Stripes')
  motions: tuple[str, ...] = MOTION_PATTERNS
  height: int = 64
  width: int = 80
  num_frames: int = 13
  train_per_class: int = 4
  test_per_class: int = 6
  camera: bool = True
  seed: int = 0
  fps: int = 25

  def __post_init__(self):
    object.__setattr__(self, 'appearances', tuple(self.appearances))
    object.__setattr__(self, 'motions', tuple(self.motions))
    synthetic_classes.check_factor_names('AblationSpec', 'appearances', self.appearances,
                                         APPEARANCES)
    synthetic_classes.check_factor_names('AblationSpec', 'motions', self.motions, MOTION_PATTERNS)
    if self.height < 48 or self.width < 48:
      raise ValueError(f'AblationSpec frame size {self.width}x{self.height}: use sides >= 48.')
    if not 3 <= self.num_frames <= MAX_CONTEXT_FIELDS + 4:
      raise ValueError(f'AblationSpec.num_frames={self.num_frames} must be in '
                       f'[3, {MAX_CONTEXT_FIELDS + 4}] (a reversal inside every 10-field stack).')
    if min(self.train_per_class, self.test_per_class, self.seed) < 0 or self.fps <= 0:
      raise ValueError('AblationSpec needs train_per_class, test_per_class, seed >= 0 and fps > 0.')

  def to_dict(self) -> dict[str, Any]:
    return synthetic_classes.spec_dict(self)


# Class i of a spec and its name, in label order, as for the demo's set.
class_factors = synthetic_classes.class_factors
class_names = synthetic_classes.class_names


def velocity_signs(motion: str, num_fields: int, rng: np.random.Generator) -> np.ndarray:
  """[num_fields] +1 / -1: the sign of the velocity along the path's direction, per field.

  Reverse: one reversal at field t0, drawn so that every stack of MAX_CONTEXT_FIELDS consecutive
  fields (or all fields, if fewer) holds fields t0 - 1 and t0.
  """
  # Drawn whatever the motion, so that the classes of one scene share their other draws.
  half = int(rng.integers(_ZIGZAG_HALF_PERIOD[0], _ZIGZAG_HALF_PERIOD[1] + 1))
  offset = int(rng.integers(0, 2 * half))
  lo = max(1, num_fields - MAX_CONTEXT_FIELDS + 1)
  hi = max(lo, min(MAX_CONTEXT_FIELDS - 1, num_fields - 1))
  t0 = int(rng.integers(lo, hi + 1))
  t = np.arange(num_fields)
  if motion == 'Steady':
    return np.ones(num_fields)
  if motion == 'Reverse':
    return np.where(t < t0, 1.0, -1.0)
  if motion == 'Zigzag':
    return np.where(((t + offset) // half) % 2 == 0, 1.0, -1.0)
  raise ValueError(f'Unknown motion {motion!r}; known: {MOTION_PATTERNS}.')


def _path(signs: np.ndarray, speed: float, angle: float) -> np.ndarray:
  """[T, 2] positions (from 0) of a path with the given per-field signs, speed and direction."""
  steps = signs[:, None] * speed * np.array([math.cos(angle), math.sin(angle)])[None]
  return np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])


def render_video(spec: AblationSpec, class_index: int, video_seed: int
                 ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
  """Frames [T, H, W, 3] uint8 RGB and truth {'center_xy' [T, 2], 'camera_xy' [T, 2]} of one video.

  Every draw comes from (spec.seed, video_seed); the class picks the family and the disc's pattern.
  """
  factors = class_factors(spec)
  if not 0 <= class_index < len(factors) or video_seed < 0:
    raise ValueError(f'class_index {class_index} (of {len(factors)}) / video_seed {video_seed}.')
  appearance, motion = factors[class_index]
  rng = np.random.default_rng([spec.seed, video_seed, 27])
  scale = spec.height / _REFERENCE_HEIGHT
  t = spec.num_frames
  radius = np.full(t, rng.uniform(*_RADIUS_PX) * scale)
  signs = velocity_signs(motion, t - 1, rng)
  rel = _path(signs, rng.uniform(*_SPEED_PX) * scale, rng.uniform(0, 2 * math.pi))
  camera_signs = velocity_signs('Zigzag', t - 1, rng)
  camera = _path(camera_signs, rng.uniform(*_CAMERA_SPEED_PX) * scale,
                 rng.uniform(0, 2 * math.pi)) * float(spec.camera)
  offsets = rel - camera  # screen position of the disc relative to its start
  center = np.stack([synthetic_rendering.path_start(rng, offsets[:, 0], radius, spec.width) + offsets[:, 0],
                     synthetic_rendering.path_start(rng, offsets[:, 1], radius, spec.height) + offsets[:, 1]],
                    axis=1)
  look = synthetic_rendering.draw_look(rng)
  margin = int(math.ceil(np.abs(camera).max(initial=0.0))) + 2
  world = synthetic_rendering.draw_background(rng, spec.height + 2 * margin, spec.width + 2 * margin)
  frames = synthetic_rendering.render_frames(appearance, look, world, margin, center, radius, camera,
                                             spec.height, spec.width)
  return frames, {'center_xy': center, 'camera_xy': camera}


def split_videos(spec: AblationSpec) -> dict[str, list[tuple[int, int]]]:
  """{'train', 'test'} -> (class_index, video_seed); test seeds 1.., training seeds after them."""
  return {split: [(c, first + k) for c in range(len(class_factors(spec))) for k in range(count)]
          for split, first, count in (('test', 1, spec.test_per_class),
                                      ('train', 1 + spec.test_per_class, spec.train_per_class))}


def video_relpath(spec: AblationSpec, class_index: int, video_seed: int) -> str:
  name = class_names(spec)[class_index]
  return f'{name}/v_{name}_g{video_seed:02d}_c01.avi'


def write_dataset(spec: AblationSpec, out_dir: str) -> dict[str, Any]:
  """Writes the videos and split files in `out_dir` (a no-op when the same set is complete there).

  Returns:
    {'root', 'videos_dir', 'splits_dir', 'class_names', 'num_train', 'num_test', 'generated'}.

  Raises:
    ValueError: out_dir is not empty and holds no ablation set of this module.
  """
  root = os.path.abspath(out_dir)
  videos_dir, splits_dir = os.path.join(root, 'videos'), os.path.join(root, 'splits')
  meta_path = os.path.join(root, SPEC_FILENAME)
  stored = {'generator_version': GENERATOR_VERSION, 'spec': spec.to_dict()}
  videos = split_videos(spec)
  result = {'root': root, 'videos_dir': videos_dir, 'splits_dir': splits_dir,
            'class_names': class_names(spec), 'num_train': len(videos['train']),
            'num_test': len(videos['test']), 'generated': False}
  if os.path.isdir(root) and os.listdir(root):
    if not os.path.isfile(meta_path):
      raise ValueError(f'{root} is not empty and holds no {SPEC_FILENAME}; choose another folder.')
    with open(meta_path) as f:
      meta = json.load(f)
    if meta == {**stored, 'complete': True}:
      return result
    shutil.rmtree(videos_dir, ignore_errors=True)
    shutil.rmtree(splits_dir, ignore_errors=True)
  os.makedirs(splits_dir, exist_ok=True)
  with open(meta_path, 'w') as f:
    json.dump({**stored, 'complete': False}, f)
  names = class_names(spec)
  for name in names:
    os.makedirs(os.path.join(videos_dir, name), exist_ok=True)
  for split in ('test', 'train'):
    for class_index, seed in videos[split]:
      frames, _ = render_video(spec, class_index, seed)
      write_avi(frames, os.path.join(videos_dir, video_relpath(spec, class_index, seed)), spec.fps)
  with open(os.path.join(splits_dir, 'classInd.txt'), 'w') as f:
    f.writelines(f'{i + 1} {name}\n' for i, name in enumerate(names))
  with open(os.path.join(splits_dir, 'trainlist01.txt'), 'w') as f:
    f.writelines(f'{video_relpath(spec, *v)} {v[0] + 1}\n' for v in videos['train'])
  with open(os.path.join(splits_dir, 'testlist01.txt'), 'w') as f:
    f.writelines(f'{video_relpath(spec, *v)}\n' for v in videos['test'])
  with open(meta_path + '.tmp', 'w') as f:
    json.dump({**stored, 'complete': True}, f)
  os.replace(meta_path + '.tmp', meta_path)
  return {**result, 'generated': True}
