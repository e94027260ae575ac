"""Rendering of one synthetic video: a patterned disc moving over a textured background.

`render_video_with_truth(spec, class_index, video_seed)` gives frames [T, H, W, 3] uint8 RGB and
their `VideoTruth` (disc centre [T, 2] and radius [T] per frame, camera flow [2]); `render_video`
gives the frames only, `video_truth` the truth without rendering. Every random draw comes from
(spec.seed, video_seed) alone and the class picks only the family pattern (drawn in chroma over a
luma texture) and the motion, so class (A, Up) is (A, Down) played backwards and (A, m) and (B, m)
have the same luma frames. Lengths scale with the frame height. Why: docs/design_notes.md.

numpy + cv2 only: no TensorFlow, no JAX.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import cv2
import numpy as np

from twostream_jax.prep.synthetic_classes import SyntheticSpec, class_factors, class_names

# Motion -> (the motion it is rendered as, whether played backwards).
_MOTION_BASE = {'Up': ('Down', True), 'Down': ('Down', False), 'ZoomIn': ('ZoomIn', False),
                'ZoomOut': ('ZoomIn', True), 'Sway': ('Sway', False), 'Bob': ('Bob', False)}

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


# Public building blocks for other generators (prep.ablation_videos): one disc's random look, a
# background, a path's start, and the frames of a scene whose geometry the caller draws.
draw_look = _draw_look
draw_background = _background
path_start = _path_start


def render_frames(appearance: str, look: _Look, world: np.ndarray, margin: int,
                  center_xy: np.ndarray, radius_px: np.ndarray, camera_xy: np.ndarray, height: int,
                  width: int) -> np.ndarray:
  """Frames [T, H, W, 3] uint8 RGB of a disc at `center_xy` [T, 2] (screen px) with radius [T] over
  `world` [H + 2 margin', W + 2 margin', 3] float32 seen through a camera at `camera_xy` [T, 2]
  (world px; screen (x, y) shows world (x + margin + camera_x, y + margin + camera_y))."""
  frames = np.empty((len(center_xy), height, width, 3), np.uint8)
  for i in range(len(center_xy)):
    shift = np.float32([[1, 0, margin + camera_xy[i, 0]], [0, 1, margin + camera_xy[i, 1]]])
    frame = cv2.warpAffine(world, shift, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
    _paint_disc(frame, appearance, look, center_xy[i, 0], center_xy[i, 1], radius_px[i])
    frames[i] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
  return frames
