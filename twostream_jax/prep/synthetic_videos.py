"""Synthetic action videos in the UCF101 layout, for the demo and for tests without a real data set.

Every class is a pair (appearance family, motion type) of a factorial design: a disc (the "actor")
painted with a family pattern (stripes, checkerboard, dots, rings, or one solid colour; random hue,
scale, rotation and phase) moves over a smoothed-noise background in one of a few flip-safe ways
(up, down, zoom in, zoom out, horizontal or vertical oscillation; random speed and position). Classes that share an
appearance differ only in motion and classes that share a motion differ only in appearance, so a
single RGB frame (spatial stream) and a stack of flow fields (temporal stream) each reach only a
ceiling below 100%, while both together can reach 100%; `accuracy_ceilings` computes the ceilings.

Design choices that the two-stream training relies on:
  * Flip and crop safety: training flips frames horizontally (negating flow x) and crops ~85%, so no
    class is the mirror image of another (no left vs right), pattern parameters have mirror-symmetric
    distributions, and the object stays inside the frame (with pan, about 1% of Up/Down videos
    lose a sliver of the disc at their ends).
  * Shared scenes, so that each stream sees exactly its factor: every random draw of a video (disc
    size, hue, pattern scale and phase, luma texture, speed, path, pan, background) comes from
    (spec.seed, video_seed) alone, and the class only picks the family pattern and the motion. Clip
    gXX_cYY of every class is the same scene. Hence:
    - No motion cue in single frames: Up is Down played backwards (camera pan included) and ZoomOut
      is ZoomIn backwards, so CheckerUp and CheckerDown videos of one scene hold the same set of
      frames. A spatial net cannot even memorise the motion of a training video: its best answer is
      an even split between the motions, which keeps its softmax calibrated for late fusion.
      Sway/Bob are not time reversals of each other or of Up/Down (other spreads of positions and
      sizes), so mixing those leaks a little motion into single frames; the default set avoids it.
    - No appearance cue in the flow: the family pattern is drawn in chroma only (ink and paper are
      opposite hues of exactly the disc's BT.601 luma, the luma that OpenCV's gray conversion, JPEG
      and the flow see) over a luma texture of the scene, so (A, m) and (B, m) have the same luma
      frames (to within uint8 rounding) and the same flow. A first version drew the patterns in
      luma and independent scenes per class: a small CNN on Farneback flow told the families apart
      (75% on 6 classes against the 33% motion-only ceiling). A flow method fed with colour would
      see the patterns.
  * Flow-friendly: textured disc and background, sub-pixel motion of 1-4 px/frame, supersampled
    (anti-aliased) rendering.
  * Optional camera pan: the whole view translates at a random per-video velocity (x and y) on top
    of the object motion, so the object's absolute flow no longer tells its motion and mean flow
    subtraction (the paper's camera-motion compensation) matters.

Layout written by `write_dataset` (as UCF101 ships, but MJPG .avi):
    <out>/videos/<ClassName>/v_<ClassName>_gXX_cYY.avi
    <out>/splits/classInd.txt, trainlist01.txt, testlist01.txt
    <out>/synthetic_spec.json
Test videos use groups g01.. and training videos the following groups (UCF101 split 1 also tests on
the low groups), so that no test scene is seen in training.

numpy + cv2 only: no TensorFlow, no JAX.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from typing import Any, Callable, Optional

import cv2
import numpy as np

APPEARANCES = ('Checker', 'Dots', 'Rings', 'Solid', 'Stripes')
MOTIONS = ('Up', 'Down', 'ZoomIn', 'ZoomOut', 'Sway', 'Bob')
# Motion -> (the motion it is rendered as, whether played backwards).
_MOTION_BASE = {'Up': ('Down', True), 'Down': ('Down', False), 'ZoomIn': ('ZoomIn', False),
                'ZoomOut': ('ZoomIn', True), 'Sway': ('Sway', False), 'Bob': ('Bob', False)}

# Bump when rendering changes, so that `write_dataset` regenerates an existing folder.
GENERATOR_VERSION = 2
CLIPS_PER_GROUP = 5
SPEC_FILENAME = 'synthetic_spec.json'
SPLIT_INDEX = 1  # one split, written as trainlist01.txt / testlist01.txt

# Geometry and motion ranges. Lengths are px at a frame height of _REFERENCE_HEIGHT and scale with
# the height, so that every frame size sees the same scene geometry (speeds stay within 1-4
# px/frame with the pan added at 120 px; 0.8-3.2 px/frame at 96 px).
_REFERENCE_HEIGHT = 120.0
_RADIUS_PX = (18.0, 21.6)          # disc radius (middle frame for zooms)
_SPEED_PX = (1.0, 1.75)            # Up/Down
_ZOOM_RATE = (0.035, 0.045)        # ZoomIn/ZoomOut: log-radius change per frame
_OSC_AMPLITUDE_PX = (5.0, 8.0)     # Sway/Bob
_OSC_PERIOD_FRAMES = (14.0, 20.0)
_PAN_PX = 2.0                      # camera velocity, each axis uniform in [-_PAN_PX, _PAN_PX]
_EDGE_MARGIN_PX = 2.0
_PERIOD_IN_RADII = (0.6, 0.8)      # pattern period / disc radius: ~2.5-3.3 periods across the disc
# The disc's luma: mean, and a smoothed-noise texture in disc coordinates (blobs of ~2 px).
_DISC_LUMA = (115.0, 140.0)
_TEXTURE_TEXELS, _TEXTURE_EXTENT, _TEXTURE_SIGMA_TEXELS = 64, 1.25, 3.0
_TEXTURE_STD, _TEXTURE_CLIP = (14.0, 18.0), 30.0
_CHROMA = (38.0, 48.0)             # |(Cb, Cr)| of ink and paper: Y +- 30 +- 1.772 * 48 in 0..255
_SUPERSAMPLE = 3


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
    for field, given, known in (('appearances', self.appearances, APPEARANCES),
                                ('motions', self.motions, MOTIONS)):
      unknown = [x for x in given if x not in known]
      if not given or unknown or len(set(given)) != len(given):
        raise ValueError(f'SyntheticSpec.{field}={list(given)} must be a non-empty list of distinct '
                         f'names from {list(known)}; unknown: {unknown}.')
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
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def class_factors(spec: SyntheticSpec) -> list[tuple[str, str]]:
  """(appearance, motion) of every class, in label order (sorted by class name, as classInd.txt)."""
  return sorted(((a, m) for a in spec.appearances for m in spec.motions), key=lambda f: f[0] + f[1])


def class_names(spec: SyntheticSpec) -> list[str]:
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


@dataclasses.dataclass(frozen=True)
class VideoTruth:
  """Ground truth of one rendered video (screen pixels; x right, y down, pixel centres at integers).

  Attributes:
    appearance: appearance family.
    motion: motion type.
    center_xy: [T, 2] disc centre per frame.
    radius_px: [T] disc radius per frame.
    camera_flow_xy: [2] displacement per frame of the background (minus the pan velocity; 0 without
      pan).
  """
  appearance: str
  motion: str
  center_xy: np.ndarray
  radius_px: np.ndarray
  camera_flow_xy: np.ndarray

  @property
  def object_flow_xy(self) -> np.ndarray:
    """[T-1, 2] mean flow over the disc from frame t to t+1 (a zoom's radial flow averages out)."""
    return np.diff(self.center_xy, axis=0)

  def object_mask(self, height: int, width: int, radius_scale: float = 1.0) -> np.ndarray:
    """[T, H, W] bool: pixels within radius_scale * radius of the disc centre."""
    ys, xs = np.mgrid[0:height, 0:width]
    dx = xs[None] - self.center_xy[:, 0, None, None]
    dy = ys[None] - self.center_xy[:, 1, None, None]
    return dx**2 + dy**2 <= (radius_scale * self.radius_px[:, None, None])**2


@dataclasses.dataclass(frozen=True)
class _Look:
  """Random appearance of one disc; pattern coordinates are in disc radii.

  Attributes:
    luma: mean luma (BT.601 Y) of the disc.
    texture: [N, N] float32 luma offsets over disc coordinates [-_TEXTURE_EXTENT, _TEXTURE_EXTENT]^2.
    chroma_rgb: [3] RGB of the ink's chroma (Y = 0); the paper has minus this.
    period, angle, phase: the family pattern's period (radii), rotation (radians), phase (periods).
  """
  luma: float
  texture: np.ndarray
  chroma_rgb: np.ndarray
  period: float
  angle: float
  phase: np.ndarray


def _draw_look(rng: np.random.Generator) -> _Look:
  # Luma: the same distribution for every family (a smoothed-noise texture that the flow tracks).
  luma = rng.uniform(*_DISC_LUMA)
  noise = rng.standard_normal((_TEXTURE_TEXELS, _TEXTURE_TEXELS)).astype(np.float32)
  texture = cv2.GaussianBlur(noise, (0, 0), _TEXTURE_SIGMA_TEXELS)
  texture *= rng.uniform(*_TEXTURE_STD) / (texture.std() + 1e-6)
  texture = np.clip(texture, -_TEXTURE_CLIP, _TEXTURE_CLIP)
  # Chroma: ink and paper are opposite points of the (Cb, Cr) plane at a random hue; full-range
  # BT.601 as JPEG uses, so both have exactly the disc's luma and stay in gamut by the ranges above.
  hue, magnitude = rng.uniform(0.0, 2 * math.pi), rng.uniform(*_CHROMA)
  cb, cr = magnitude * math.cos(hue), magnitude * math.sin(hue)
  chroma_rgb = np.array([1.402 * cr, -0.344136 * cb - 0.714136 * cr, 1.772 * cb], np.float32)
  # Orientations cover mirror-symmetric ranges (stripes: any angle; grids repeat every 90 degrees).
  angle = rng.uniform(0.0, math.pi)
  return _Look(luma, texture, chroma_rgb, rng.uniform(*_PERIOD_IN_RADII), angle,
               rng.uniform(0.0, 1.0, size=2))


def _ink(appearance: str, look: _Look, u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Whether disc coordinates (u, v) (in radii) are inked by the family pattern."""
  if appearance == 'Solid':
    return np.ones(np.broadcast_shapes(u.shape, v.shape), bool)
  if appearance == 'Rings':
    return np.mod(np.hypot(u, v) / look.period + look.phase[0], 1.0) < 0.5
  cos, sin = math.cos(look.angle), math.sin(look.angle)
  a = (u * cos + v * sin) / look.period + look.phase[0]
  b = (v * cos - u * sin) / look.period + look.phase[1]
  if appearance == 'Stripes':
    return np.mod(a, 1.0) < 0.5
  if appearance == 'Checker':
    return (np.floor(2 * a) + np.floor(2 * b)) % 2 == 0
  if appearance == 'Dots':
    return (np.mod(a, 1.0) - 0.5)**2 + (np.mod(b, 1.0) - 0.5)**2 < 0.3**2
  raise ValueError(f'Unknown appearance {appearance!r}.')


def _paint_disc(frame: np.ndarray, appearance: str, look: _Look, cx: float, cy: float,
                radius: float) -> None:
  """Composites the disc onto frame [H, W, 3] float32 in place, anti-aliased by supersampling."""
  h, w = frame.shape[:2]
  x0, x1 = max(int(math.floor(cx - radius)) - 1, 0), min(int(math.ceil(cx + radius)) + 2, w)
  y0, y1 = max(int(math.floor(cy - radius)) - 1, 0), min(int(math.ceil(cy + radius)) + 2, h)
  if x0 >= x1 or y0 >= y1:
    return
  s = _SUPERSAMPLE
  xs = x0 + (np.arange((x1 - x0) * s) + 0.5) / s - 0.5
  ys = y0 + (np.arange((y1 - y0) * s) + 0.5) / s - 0.5
  u = (xs[None, :] - cx) / radius
  v = (ys[:, None] - cy) / radius
  inside = u**2 + v**2 <= 1.0
  ink = _ink(appearance, look, u, v)
  # Coverage of each pixel by inked and by plain disc (block means of the supersamples); the disc
  # colour is linear in them, so this equals averaging supersampled colours, at a fraction of the cost.
  coverage = np.stack([inside & ink, inside & ~ink], axis=-1).astype(np.float32)
  coverage = cv2.resize(coverage, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
  alpha = coverage.sum(axis=-1, keepdims=True)
  # The luma texture is smooth, so sampling it at pixel centres is enough.
  texels_per_radius = _TEXTURE_TEXELS / (2 * _TEXTURE_EXTENT)
  map_x = ((np.arange(x0, x1, dtype=np.float32) - cx) / radius + _TEXTURE_EXTENT) * texels_per_radius
  map_y = ((np.arange(y0, y1, dtype=np.float32) - cy) / radius + _TEXTURE_EXTENT) * texels_per_radius
  map_x, map_y = (m.astype(np.float32) for m in np.meshgrid(map_x - 0.5, map_y - 0.5))
  luma = look.luma + cv2.remap(look.texture, map_x, map_y, cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)[..., None]
  premultiplied = alpha * luma + (coverage[..., :1] - coverage[..., 1:]) * look.chroma_rgb
  frame[y0:y1, x0:x1] = frame[y0:y1, x0:x1] * (1.0 - alpha) + premultiplied


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  """[height, width, 3] float32 smoothed colour noise, fine and coarse, mid grey levels."""
  base = rng.uniform(70.0, 180.0, size=3)
  out = np.broadcast_to(base, (height, width, 3)).astype(np.float32)
  for sigma_range, amp_range in (((1.5, 2.5), (15.0, 30.0)), ((5.0, 9.0), (20.0, 40.0))):
    noise = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0),
                             rng.uniform(*sigma_range))
    noise /= noise.std() + 1e-6
    tint = rng.uniform(0.9, 1.1, size=3).astype(np.float32)
    out = out + rng.uniform(*amp_range) * noise[..., None] * tint
  # In gamut before compositing, so that no later clipping changes a disc edge's luma by family.
  return np.clip(out, 0.0, 255.0)


def _path_start(rng: np.random.Generator, offsets: np.ndarray, radius: np.ndarray,
                size: int) -> float:
  """Centre coordinate at offset 0 that keeps the whole path inside [0, size), uniformly at random.

  When the path cannot fit (tiny frames, fast pan) it is centred and the disc leaves the frame a
  little at the ends.
  """
  lo = np.max(radius + _EDGE_MARGIN_PX - offsets)
  hi = np.min(size - 1 - radius - _EDGE_MARGIN_PX - offsets)
  draw = rng.uniform()
  return float(lo + draw * (hi - lo)) if lo <= hi else float((lo + hi) / 2)


def _draw_video(spec: SyntheticSpec, class_index: int, video_seed: int, with_background: bool = True
                ) -> tuple[VideoTruth, _Look, Optional[np.ndarray], int, np.ndarray]:
  """Draws one video; returns (truth, look, world background, margin, camera [T, 2] world px).

  The scene (every random draw) depends on (spec.seed, video_seed) only; the class picks the family
  pattern and the motion. The background is drawn last, so skipping it (world None) leaves
  everything else the same.
  """
  num_classes = len(spec.appearances) * len(spec.motions)
  if not 0 <= class_index < num_classes:
    raise ValueError(f'class_index={class_index} is out of range: the spec has {num_classes} '
                     f'classes {class_names(spec)}.')
  if video_seed < 0:
    raise ValueError(f'video_seed={video_seed} must be >= 0.')
  appearance, motion = class_factors(spec)[class_index]
  base_motion, reverse = _MOTION_BASE[motion]
  rng = np.random.default_rng([spec.seed, video_seed])
  t, h, w = spec.num_frames, spec.height, spec.width
  ts = np.arange(t, dtype=np.float64) - (t - 1) / 2  # centred time
  # Drawn in a fixed order whatever the motion and the pan flag, so that a video with and without
  # pan has the same disc (look, size, speed) and background; only the disc's path differs.
  scale = h / _REFERENCE_HEIGHT
  pan = rng.uniform(-_PAN_PX, _PAN_PX, size=2) * float(spec.camera_pan) * scale
  radius_mid = rng.uniform(*_RADIUS_PX) * scale
  speed = rng.uniform(*_SPEED_PX) * scale
  zoom_rate = rng.uniform(*_ZOOM_RATE)
  amplitude, period = rng.uniform(*_OSC_AMPLITUDE_PX) * scale, rng.uniform(*_OSC_PERIOD_FRAMES)
  phase = rng.uniform(0.0, 2 * math.pi)

  radius = np.full(t, radius_mid)
  rel = np.zeros((t, 2))
  if base_motion == 'Down':
    rel[:, 1] = speed * ts
  elif base_motion == 'ZoomIn':
    radius = radius_mid * np.exp(zoom_rate * ts)
  else:
    rel[:, 0 if base_motion == 'Sway' else 1] = amplitude * np.sin(2 * math.pi * ts / period + phase)
  camera = pan[None, :] * ts[:, None]  # the scene moves by -pan per frame on screen
  offsets = rel - camera
  center = np.stack([_path_start(rng, offsets[:, 0], radius, w) + offsets[:, 0],
                     _path_start(rng, offsets[:, 1], radius, h) + offsets[:, 1]], axis=1)
  if reverse:  # Up is Down played backwards, camera included; ZoomOut is ZoomIn backwards
    center, radius, camera = center[::-1].copy(), radius[::-1].copy(), camera[::-1].copy()
  look = _draw_look(rng)
  margin = int(math.ceil(_PAN_PX * scale * (t - 1) / 2)) + 2
  world = _background(rng, h + 2 * margin, w + 2 * margin) if with_background else None
  camera_flow = -(camera[1] - camera[0]) if t > 1 else np.zeros(2)
  truth = VideoTruth(appearance, motion, center, radius, camera_flow)
  return truth, look, world, margin, camera


def render_video_with_truth(spec: SyntheticSpec, class_index: int,
                            video_seed: int) -> tuple[np.ndarray, VideoTruth]:
  """Renders one video in memory and returns its ground-truth geometry.

  Args:
    spec: the data set spec (frame size, number of frames, classes, pan, seed).
    class_index: 0-based label, an index into `class_names(spec)`.
    video_seed: any int >= 0: the scene. The same (spec.seed, video_seed) gives every class the
      same scene (see the module docstring), so that e.g. class (A, Up) is class (A, Down) played
      backwards and (A, m) and (B, m) have the same luma frames.

  Returns:
    frames [T, H, W, 3] uint8 RGB, and the VideoTruth.
  """
  truth, look, world, margin, camera = _draw_video(spec, class_index, video_seed)
  frames = np.empty((spec.num_frames, spec.height, spec.width, 3), np.uint8)
  for i in range(spec.num_frames):
    # Screen pixel (x, y) shows world pixel (x + margin + camera_x, y + margin + camera_y).
    shift = np.float32([[1, 0, margin + camera[i, 0]], [0, 1, margin + camera[i, 1]]])
    frame = cv2.warpAffine(world, shift, (spec.width, spec.height),
                           flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
    _paint_disc(frame, truth.appearance, look, truth.center_xy[i, 0], truth.center_xy[i, 1],
                truth.radius_px[i])
    frames[i] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
  return frames, truth


def render_video(spec: SyntheticSpec, class_index: int, video_seed: int) -> np.ndarray:
  """One video's frames, [T, H, W, 3] uint8 RGB; see `render_video_with_truth`."""
  return render_video_with_truth(spec, class_index, video_seed)[0]


def video_truth(spec: SyntheticSpec, class_index: int, video_seed: int) -> VideoTruth:
  """The ground truth of `render_video(spec, class_index, video_seed)`, without rendering."""
  return _draw_video(spec, class_index, video_seed, with_background=False)[0]


def split_videos(spec: SyntheticSpec) -> dict[str, list[tuple[int, int, int]]]:
  """{'train', 'test'} -> (class_index, group, clip) of every video; test groups come first."""
  test_groups = math.ceil(spec.test_per_class / CLIPS_PER_GROUP)
  out: dict[str, list[tuple[int, int, int]]] = {'train': [], 'test': []}
  for c in range(len(class_factors(spec))):
    for split, count, first_group in (('test', spec.test_per_class, 1),
                                      ('train', spec.train_per_class, test_groups + 1)):
      for k in range(count):
        out[split].append((c, first_group + k // CLIPS_PER_GROUP, 1 + k % CLIPS_PER_GROUP))
  return out


def clip_seed(group: int, clip: int) -> int:
  """The `video_seed` that `write_dataset` renders clip `clip` of group `group` with."""
  return group * 100 + clip


def video_relpath(spec: SyntheticSpec, class_index: int, group: int, clip: int) -> str:
  """'ClassName/v_ClassName_gXX_cYY.avi', relative to the videos folder (as in UCF101 lists)."""
  name = class_names(spec)[class_index]
  return f'{name}/v_{name}_g{group:02d}_c{clip:02d}.avi'


def write_avi(frames: np.ndarray, path: str, fps: int) -> None:
  """Writes frames [T, H, W, 3] uint8 RGB as MJPG .avi (OpenCV's own encoder, quality 90)."""
  _, h, w, _ = frames.shape
  fourcc = cv2.VideoWriter_fourcc(*'MJPG')
  writer = cv2.VideoWriter(path, cv2.CAP_OPENCV_MJPEG, fourcc, float(fps), (w, h))
  if not writer.isOpened():  # an OpenCV build without the built-in writer
    writer = cv2.VideoWriter(path, fourcc, float(fps), (w, h))
  if not writer.isOpened():
    raise RuntimeError(f'OpenCV cannot write MJPG .avi files ({path}); install '
                       'opencv-contrib-python-headless as listed in setup.cfg.')
  writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 90)
  for frame in frames:
    writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
  writer.release()


def _stored_spec(spec: SyntheticSpec) -> dict[str, Any]:
  return {'generator_version': GENERATOR_VERSION, 'spec': spec.to_dict()}


def _is_complete(spec: SyntheticSpec, root: str, meta: dict[str, Any]) -> bool:
  if not meta.get('complete') or {k: meta.get(k) for k in ('generator_version', 'spec')} != (
      _stored_spec(spec)):
    return False
  splits = os.path.join(root, 'splits')
  names = ['classInd.txt', f'trainlist{SPLIT_INDEX:02d}.txt', f'testlist{SPLIT_INDEX:02d}.txt']
  if not all(os.path.isfile(os.path.join(splits, n)) for n in names):
    return False
  videos = [v for vs in split_videos(spec).values() for v in vs]
  return all(os.path.isfile(os.path.join(root, 'videos', video_relpath(spec, *v))) for v in videos)


def _write_json(path: str, content: dict[str, Any]) -> None:
  with open(path + '.tmp', 'w') as f:
    json.dump(content, f, indent=2, sort_keys=True)
  os.replace(path + '.tmp', path)  # atomic: a reader never sees half a file


def write_dataset(spec: SyntheticSpec, out_dir: str, *, overwrite: bool = False) -> dict[str, Any]:
  """Writes the videos and UCF101-style split files; a no-op when the same data set is there.

  Args:
    spec: what to generate.
    out_dir: target folder: new, empty, or written earlier by this function.
    overwrite: replace a complete synthetic data set of another spec. Folders this function did not
      write are never touched.

  Returns:
    {'root', 'videos_dir', 'splits_dir': paths, 'class_names': list, 'num_train', 'num_test': ints,
     'generated': whether videos were written now}.

  Raises:
    ValueError: out_dir holds something else, or another synthetic data set and not overwrite.
  """
  root = os.path.abspath(out_dir)
  videos_dir, splits_dir = os.path.join(root, 'videos'), os.path.join(root, 'splits')
  meta_path = os.path.join(root, SPEC_FILENAME)
  videos = split_videos(spec)
  result = {'root': root, 'videos_dir': videos_dir, 'splits_dir': splits_dir,
            'class_names': class_names(spec), 'num_train': len(videos['train']),
            'num_test': len(videos['test']), 'generated': False}
  if os.path.isfile(root):
    raise ValueError(f'--output_dir {root} is a file; give a folder.')
  if os.path.isdir(root) and os.listdir(root):
    if not os.path.isfile(meta_path):
      raise ValueError(f'{root} is not empty and holds no {SPEC_FILENAME}, so it is not a synthetic '
                       'data set written here; choose a new or empty folder.')
    with open(meta_path) as f:
      meta = json.load(f)
    if _is_complete(spec, root, meta):
      return result
    same_spec = {k: meta.get(k) for k in ('generator_version', 'spec')} == _stored_spec(spec)
    if meta.get('complete') and not same_spec and not overwrite:
      raise ValueError(f'{root} holds a synthetic data set of another spec ({meta.get("spec")}); '
                       'pass overwrite=True (--overwrite) to replace it, or choose another folder.')
    # An interrupted write, a lost file or a replaced spec: remove only what this function writes.
    for path in (videos_dir, splits_dir):
      shutil.rmtree(path, ignore_errors=True)
  os.makedirs(splits_dir, exist_ok=True)
  _write_json(meta_path, {**_stored_spec(spec), 'complete': False})
  names = class_names(spec)
  for name in names:
    os.makedirs(os.path.join(videos_dir, name), exist_ok=True)
  for split in ('test', 'train'):
    for class_index, group, clip in videos[split]:
      frames = render_video(spec, class_index, clip_seed(group, clip))
      write_avi(frames, os.path.join(videos_dir, video_relpath(spec, class_index, group, clip)),
                spec.fps)
  with open(os.path.join(splits_dir, 'classInd.txt'), 'w') as f:
    f.writelines(f'{i + 1} {name}\n' for i, name in enumerate(names))
  with open(os.path.join(splits_dir, f'trainlist{SPLIT_INDEX:02d}.txt'), 'w') as f:
    f.writelines(f'{video_relpath(spec, *v)} {v[0] + 1}\n' for v in videos['train'])
  with open(os.path.join(splits_dir, f'testlist{SPLIT_INDEX:02d}.txt'), 'w') as f:
    f.writelines(f'{video_relpath(spec, *v)}\n' for v in videos['test'])
  _write_json(meta_path, {**_stored_spec(spec), 'complete': True,
                          'class_names': names, 'ceilings': accuracy_ceilings(spec)})
  return {**result, 'generated': True}
