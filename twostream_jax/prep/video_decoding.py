"""Streaming video decoding with OpenCV: frames one at a time, resized to a fixed short side.

A video is never held whole in memory: `iter_frames` yields one RGB frame at a time, so the
dataset writer keeps only the JPEG bytes of the frames it has encoded and the previous grayscale
frame (for the flow). Long videos can be capped (`max_frames`) or subsampled (`frame_stride`);
skipped frames are only grabbed, not converted.

Resizing keeps the aspect ratio: the short side becomes `short_side` pixels and the long side
`round(long * short_side / short)`. Shrinking uses `INTER_AREA` (it averages the source pixels, so
fine textures do not alias into false motion); enlarging uses `INTER_LINEAR`.

numpy + cv2 only: no TensorFlow, no JAX.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator, Optional

import cv2
import numpy as np

VIDEO_EXTENSIONS = ('.avi', '.mp4', '.mkv', '.webm', '.mov', '.mpg', '.mpeg', '.m4v', '.flv',
                    '.wmv', '.3gp', '.ogv')


class VideoDecodeError(Exception):
  """A video that cannot be used; the message is the reason shown in the failures report."""


def resized_size(height: int, width: int, short_side: int) -> tuple[int, int]:
  """(height, width) after resizing so that the short side is `short_side` (0: unchanged).

  Args:
    height: source frame height.
    width: source frame width.
    short_side: target length of the shorter side in pixels, or 0 to keep the size.

  Returns:
    (new_height, new_width), each at least 1.
  """
  if short_side <= 0 or min(height, width) == short_side:
    return height, width
  scale = short_side / min(height, width)
  if height <= width:
    return short_side, max(1, int(round(width * scale)))
  return max(1, int(round(height * scale))), short_side


def resize_frame(frame: np.ndarray, short_side: int) -> np.ndarray:
  """Resizes `[H, W, C]` or `[H, W]` so that its short side is `short_side` (0: unchanged)."""
  h, w = frame.shape[:2]
  new_h, new_w = resized_size(h, w, short_side)
  if (new_h, new_w) == (h, w):
    return frame
  interpolation = cv2.INTER_AREA if new_h * new_w < h * w else cv2.INTER_LINEAR
  return cv2.resize(frame, (new_w, new_h), interpolation=interpolation)


@dataclasses.dataclass
class DecodeStats:
  """What `iter_frames` saw, filled in while it runs.

  Attributes:
    reported_frames: the frame count the container claims (CAP_PROP_FRAME_COUNT; 0 if unknown).
    decoded_frames: frames decoded (kept or skipped by the stride).
    kept_frames: frames yielded.
    source_height: height of the decoded frames before resizing.
    source_width: width of the decoded frames before resizing.
    stopped_early: True when `max_frames` ended decoding before the end of the video.
    fps: the frame rate the container reports (CAP_PROP_FPS; 0: unknown).
  """
  reported_frames: int = 0
  decoded_frames: int = 0
  kept_frames: int = 0
  source_height: int = 0
  source_width: int = 0
  stopped_early: bool = False
  fps: float = 0.0

  def truncation_warning(self) -> Optional[str]:
    """A note when the container promised clearly more frames than could be decoded."""
    if self.stopped_early or self.reported_frames <= 0:
      return None
    # Containers often misreport by a frame or two; a bigger gap means a damaged or cut file.
    if self.decoded_frames < self.reported_frames - 2:
      return (f'container reports {self.reported_frames} frames but only {self.decoded_frames} '
              'could be decoded (truncated or damaged file?); the decoded ones were kept')
    return None


def check_readable(path: str) -> None:
  """Raises VideoDecodeError with a precise reason for a missing, empty or unreadable file."""
  if not os.path.exists(path):
    raise VideoDecodeError('file not found')
  if not os.path.isfile(path):
    raise VideoDecodeError('not a regular file')
  if os.path.getsize(path) == 0:
    raise VideoDecodeError('empty file (0 bytes)')
  try:
    with open(path, 'rb') as f:
      f.read(1)
  except OSError as e:
    raise VideoDecodeError(f'unreadable: {e.strerror or e}') from e


def _reported_fps(capture: cv2.VideoCapture) -> float:
  fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
  return fps if np.isfinite(fps) and 0.0 < fps < 10000.0 else 0.0  # junk headers read as unknown


def frame_rate(path: str) -> float:
  """The frame rate a video's container reports (CAP_PROP_FPS), 0.0 when unknown or unreadable."""
  if not os.path.isfile(path):
    return 0.0
  capture = cv2.VideoCapture(path)
  try:
    return _reported_fps(capture) if capture.isOpened() else 0.0
  finally:
    capture.release()


def iter_frames(path: str, short_side: int = 0, max_frames: int = 0, frame_stride: int = 1,
                stats: Optional[DecodeStats] = None) -> Iterator[np.ndarray]:
  """Decodes a video frame by frame.

  Args:
    path: video file.
    short_side: resize so that the short side has this many pixels (0: keep the size).
    max_frames: stop after yielding this many frames (0: no limit).
    frame_stride: keep frames 0, s, 2s, ... of the decoded sequence (1: every frame).
    stats: filled in while decoding (reported and decoded frame counts, source size).

  Yields:
    `[H, W, 3]` uint8 RGB frames, all of the same size.

  Raises:
    VideoDecodeError: the file is missing, empty, unreadable or not decodable by OpenCV, or its
      frame size changes mid-stream.
  """
  if frame_stride < 1:
    raise ValueError(f'frame_stride must be >= 1, got {frame_stride}')
  stats = stats if stats is not None else DecodeStats()
  check_readable(path)
  capture = cv2.VideoCapture(path)
  try:
    if not capture.isOpened():
      raise VideoDecodeError('OpenCV cannot open it (corrupt file or unsupported container/codec)')
    stats.reported_frames = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
    stats.fps = _reported_fps(capture)
    index = 0
    while True:
      if max_frames and stats.kept_frames >= max_frames:
        stats.stopped_early = True
        return
      keep = index % frame_stride == 0
      # grab() decodes without the colour conversion; retrieve() only for frames we keep.
      if not capture.grab():
        return
      stats.decoded_frames += 1
      index += 1
      if not keep:
        continue
      ok, bgr = capture.retrieve()
      if not ok or bgr is None:
        return
      if bgr.ndim == 2:
        bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
      if stats.kept_frames == 0:
        stats.source_height, stats.source_width = bgr.shape[:2]
      elif bgr.shape[:2] != (stats.source_height, stats.source_width):
        raise VideoDecodeError(
            f'frame size changes mid-stream ({stats.source_width}x{stats.source_height} -> '
            f'{bgr.shape[1]}x{bgr.shape[0]} at frame {index - 1})')
      stats.kept_frames += 1
      yield cv2.cvtColor(resize_frame(bgr, short_side), cv2.COLOR_BGR2RGB)
  finally:
    capture.release()


def to_gray(rgb: np.ndarray) -> np.ndarray:
  """`[H, W, 3]` uint8 RGB -> `[H, W]` uint8 luma (OpenCV's BT.601 weights), the flow input."""
  return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
