"""A synthetic data set shaped like UCF101: its classes, groups, splits, frame size, rate and lengths.

`write_dataset(spec, out)` writes, as UCF101 ships (MJPG .avi instead of XviD):
    <out>/videos/<ClassName>/v_<ClassName>_gXX_cYY.avi
    <out>/splits/classInd.txt, trainlist0{1,2,3}.txt, testlist0{1,2,3}.txt
    <out>/ucf101_shaped.json
Split k tests on groups 7(k-1)+1 .. 7k and trains on the others, as UCF101's official splits do
(`UCF101_TEST_GROUPS`), so `tools/make_tfrecords.py --splits_dir=<out>/splits` reads it unchanged.

Class c has its own appearance (a pattern family and a hue: one RGB frame can tell the class) and
its own motion (a direction and a speed of the patterned disc over a still, textured background:
a flow stack can tell the class), so each stream alone can learn every class. Everything else
(background, start position, disc size, pattern phase and scale) is drawn per video.
numpy + cv2 only: no TensorFlow, no JAX.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import cv2
import numpy as np

from twostream_jax.prep.synthetic_videos import write_avi

# UCF101 (Soomro et al. 2012, "UCF101: A Dataset of 101 Human Actions Classes From Videos in The
# Wild", and its ucfTrainTestlist): 25 groups a class; split k tests on groups 7(k-1)+1 .. 7k.
UCF101_GROUPS = 25
UCF101_TEST_GROUPS = {1: range(1, 8), 2: range(8, 15), 3: range(15, 22)}
FAMILIES = ('Stripes', 'Checker', 'Rings', 'Dots', 'Grid')
DIRECTIONS = 8  # motion directions, 45 degrees apart
SPEEDS_PX = tuple(0.75 + 0.25 * i for i in range(13))  # px/frame at 240 px frame height
SPEC_FILENAME = 'ucf101_shaped.json'
_REFERENCE_HEIGHT = 240.0


@dataclasses.dataclass(frozen=True)
class Spec:
  """What to generate.

  Attributes:
    num_classes: classes (UCF101: 101; at most len(FAMILIES) x hues, and DIRECTIONS x len(SPEEDS_PX)
      distinct motions).
    groups: group numbers (1..25) written for every class.
    clips_per_group: clips per group and class (UCF101: 4 to 7).
    width, height, fps: frame size and rate (UCF101: 320x240 at 25 fps).
    min_seconds, max_seconds: clip lengths are drawn uniformly in this range (UCF101: most clips).
    num_frames: > 0: every clip has this many frames instead (a short rehearsal).
    long_clip_frames: > 0: the first test clip of class 0 has this many frames (the longest video).
    seed: the same seed gives the same frames.
  """
  num_classes: int = 101
  groups: tuple[int, ...] = tuple(range(1, UCF101_GROUPS + 1))
  clips_per_group: int = 1
  width: int = 320
  height: int = 240
  fps: int = 25
  min_seconds: float = 3.0
  max_seconds: float = 10.0
  num_frames: int = 0
  long_clip_frames: int = 0
  seed: int = 0

  def __post_init__(self):
    object.__setattr__(self, 'groups', tuple(int(g) for g in self.groups))
    most = min(len(FAMILIES) * 64, DIRECTIONS * len(SPEEDS_PX))
    problems = []
    if not 1 <= self.num_classes <= most:
      problems.append(f'num_classes={self.num_classes} must be in 1..{most}')
    if not self.groups or len(set(self.groups)) != len(self.groups) or not all(
        1 <= g <= UCF101_GROUPS for g in self.groups):
      problems.append(f'groups={list(self.groups)} must be distinct numbers in 1..{UCF101_GROUPS}')
    if self.clips_per_group < 1:
      problems.append(f'clips_per_group={self.clips_per_group} must be >= 1')
    if self.width < 64 or self.height < 48 or self.fps <= 0:
      problems.append(f'frames {self.width}x{self.height} at {self.fps} fps: need >= 64x48, fps > 0')
    if not 0 < self.min_seconds <= self.max_seconds:
      problems.append(f'lengths {self.min_seconds}-{self.max_seconds} s: need 0 < min <= max')
    if self.num_frames < 0 or self.num_frames == 1 or self.long_clip_frames < 0:
      problems.append('num_frames must be 0 (drawn lengths) or >= 2; long_clip_frames >= 0')
    if problems:
      raise ValueError('ucf101_shaped.Spec: ' + '; '.join(problems))

  def to_dict(self) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def class_names(spec: Spec) -> list[str]:
  """Names in label order (also sorted), e.g. 'Synth000Stripes'."""
  return [f'Synth{c:03d}{FAMILIES[c % len(FAMILIES)]}' for c in range(spec.num_classes)]


def class_motion(c: int) -> tuple[float, float]:
  """Class c's disc velocity (dx, dy) in px/frame at 240 px frame height."""
  angle = 2 * math.pi * (c % DIRECTIONS) / DIRECTIONS
  speed = SPEEDS_PX[(c // DIRECTIONS) % len(SPEEDS_PX)]
  return speed * math.cos(angle), speed * math.sin(angle)


def class_hue(spec: Spec, c: int) -> float:
  """Class c's hue in radians: classes of one family get evenly spaced hues."""
  hues = -(-spec.num_classes // len(FAMILIES))
  return 2 * math.pi * (c // len(FAMILIES)) / hues


def clips(spec: Spec) -> list[tuple[int, int, int]]:
  """(class, group, clip) of every video, sorted."""
  return [(c, g, k) for c in range(spec.num_classes) for g in sorted(spec.groups)
          for k in range(1, spec.clips_per_group + 1)]


def video_relpath(spec: Spec, c: int, group: int, clip: int) -> str:
  name = class_names(spec)[c]
  return f'{name}/v_{name}_g{group:02d}_c{clip:02d}.avi'


def long_clip_group(spec: Spec) -> int | None:
  """The group of the long clip: class 0's first group that split 1 tests on (None: no such group)."""
  return min((g for g in spec.groups if g in UCF101_TEST_GROUPS[1]), default=None)


def clip_length(spec: Spec, c: int, group: int, clip: int) -> int:
  """Frames of a clip: drawn in [min_seconds, max_seconds] x fps, or the spec's fixed counts."""
  if spec.long_clip_frames and c == 0 and clip == 1 and group == long_clip_group(spec):
    return spec.long_clip_frames
  if spec.num_frames:
    return spec.num_frames
  rng = np.random.default_rng([spec.seed, c, group, clip, 1])
  return int(round(rng.uniform(spec.min_seconds, spec.max_seconds) * spec.fps))


def _sprite(spec: Spec, c: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """The class's patterned, textured disc: RGB float32 [S, S, 3] and alpha [S, S, 1]."""
  scale = spec.height / _REFERENCE_HEIGHT
  radius = rng.uniform(28.0, 40.0) * scale
  size = int(math.ceil(2 * radius)) + 3
  v, u = (np.mgrid[0:size, 0:size] - (size - 1) / 2) / radius
  period, phase = rng.uniform(0.45, 0.6), rng.uniform(0.0, 1.0, 2)
  a, b = u / period + phase[0], v / period + phase[1]
  family = FAMILIES[c % len(FAMILIES)]
  ink = {'Stripes': np.mod(a, 1.0) < 0.5,
         'Checker': (np.floor(2 * a) + np.floor(2 * b)) % 2 == 0,
         'Rings': np.mod(np.hypot(u, v) / period + phase[0], 1.0) < 0.5,
         'Dots': (np.mod(a, 1.0) - 0.5)**2 + (np.mod(b, 1.0) - 0.5)**2 < 0.3**2,
         'Grid': (np.mod(a, 1.0) < 0.2) | (np.mod(b, 1.0) < 0.2)}[family]
  hue = class_hue(spec, c) + rng.uniform(-0.1, 0.1)
  colour = 128.0 + 90.0 * np.array([math.cos(hue), math.cos(hue - 2.1), math.cos(hue + 2.1)])
  texture = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), 1.5)
  texture *= 25.0 / (texture.std() + 1e-6)  # luma detail that the flow can track
  rgb = np.where(ink[..., None], colour, 255.0 - colour) + texture[..., None]
  alpha = np.clip(radius + 0.5 - np.hypot(u, v) * radius, 0.0, 1.0)[..., None]
  return rgb.astype(np.float32), alpha.astype(np.float32)


def render_clip(spec: Spec, c: int, group: int, clip: int) -> np.ndarray:
  """One clip's frames, [T, H, W, 3] uint8 RGB (module docstring)."""
  rng = np.random.default_rng([spec.seed, c, group, clip])
  h, w = spec.height, spec.width
  noise = [cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), s) for s in (2, 8)]
  background = rng.uniform(80, 170, 3) + sum(
      a * n[..., None] / (n.std() + 1e-6) for a, n in zip((18.0, 30.0), noise))
  rgb, alpha = _sprite(spec, c, rng)
  size = rgb.shape[0]
  dx, dy = (x * spec.height / _REFERENCE_HEIGHT for x in class_motion(c))
  x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
  span_x, span_y = w + size, h + size  # the disc leaves one side and comes back on the other
  premultiplied = np.concatenate([rgb * alpha, alpha], axis=-1)
  frames = np.empty((clip_length(spec, c, group, clip), h, w, 3), np.uint8)
  for t in range(len(frames)):
    cx = (x0 + dx * t) % span_x - size / 2
    cy = (y0 + dy * t) % span_y - size / 2
    ix, iy = int(math.floor(cx)), int(math.floor(cy))
    shift = np.float32([[1, 0, cx - ix], [0, 1, cy - iy]])  # sub-pixel position of the sprite
    patch = cv2.warpAffine(premultiplied, shift, (size + 1, size + 1), flags=cv2.INTER_LINEAR)
    frame = background.copy()
    fx0, fy0, fx1, fy1 = max(ix, 0), max(iy, 0), min(ix + size + 1, w), min(iy + size + 1, h)
    if fx0 < fx1 and fy0 < fy1:
      p = patch[fy0 - iy:fy1 - iy, fx0 - ix:fx1 - ix]
      frame[fy0:fy1, fx0:fx1] = frame[fy0:fy1, fx0:fx1] * (1.0 - p[..., 3:]) + p[..., :3]
    frames[t] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
  return frames


def split_lists(spec: Spec) -> dict[str, list[str]]:
  """'trainlist01.txt' .. 'testlist03.txt' -> their lines (UCF101's formats: train lines carry the
  1-based label, test lines do not). A split whose test groups or training groups are all missing
  from `spec.groups` (a rehearsal's subset) is left out."""
  out = {}
  for k, test_groups in UCF101_TEST_GROUPS.items():
    if all(g in test_groups for g in spec.groups) or not any(g in test_groups for g in spec.groups):
      continue
    out[f'trainlist{k:02d}.txt'] = [f'{video_relpath(spec, *v)} {v[0] + 1}' for v in clips(spec)
                                    if v[1] not in test_groups]
    out[f'testlist{k:02d}.txt'] = [video_relpath(spec, *v) for v in clips(spec)
                                   if v[1] in test_groups]
  return out


def write_dataset(spec: Spec, out_dir: str) -> dict[str, Any]:
  """Writes the videos and split files (module docstring); a no-op when the same spec is complete.

  Returns:
    {'videos_dir', 'splits_dir', 'num_videos', 'num_frames' (total), 'bytes', 'generated'}.

  Raises:
    ValueError: out_dir holds something this function did not write, or another spec.
  """
  root = os.path.abspath(out_dir)
  videos_dir, splits_dir = os.path.join(root, 'videos'), os.path.join(root, 'splits')
  meta_path = os.path.join(root, SPEC_FILENAME)
  all_clips = clips(spec)
  result = {'videos_dir': videos_dir, 'splits_dir': splits_dir, 'num_videos': len(all_clips),
            'num_frames': sum(clip_length(spec, *v) for v in all_clips), 'generated': False}
  if os.path.isdir(root) and os.listdir(root):
    meta = None
    if os.path.isfile(meta_path):
      with open(meta_path) as f:
        meta = json.load(f)
    if meta is None or meta.get('spec') != spec.to_dict():
      raise ValueError(f'{root} holds something else than this spec\'s UCF101-shaped set; '
                       'choose a new or empty folder.')
    if meta.get('complete'):
      return {**result, 'bytes': meta['bytes']}
  os.makedirs(splits_dir, exist_ok=True)
  with open(meta_path, 'w') as f:
    json.dump({'spec': spec.to_dict(), 'complete': False}, f, indent=1)
  for name in class_names(spec):
    os.makedirs(os.path.join(videos_dir, name), exist_ok=True)
  total = 0
  for v in all_clips:
    path = os.path.join(videos_dir, video_relpath(spec, *v))
    write_avi(render_clip(spec, *v), path, spec.fps)
    total += os.path.getsize(path)
  with open(os.path.join(splits_dir, 'classInd.txt'), 'w') as f:
    f.writelines(f'{i + 1} {n}\n' for i, n in enumerate(class_names(spec)))
  for name, lines in split_lists(spec).items():
    with open(os.path.join(splits_dir, name), 'w') as f:
      f.writelines(line + '\n' for line in lines)
  with open(meta_path, 'w') as f:
    json.dump({'spec': spec.to_dict(), 'complete': True, 'bytes': total}, f, indent=1)
  return {**result, 'bytes': total, 'generated': True}
