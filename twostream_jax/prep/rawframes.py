"""Reading frames and flow already extracted in the denseflow / mmaction2 "rawframes" layout.

Per video folder: `img_00001.jpg ...` (RGB frames), `flow_x_00001.jpg ...` and `flow_y_00001.jpg ...`
(or `x_00001.jpg` / `y_00001.jpg`): grayscale flow quantised linearly with a bound B_src,
q = round((v + B) / 2B * 255), the same map as `record_schema.quantise_flow`. Nothing is recomputed.

`plan_folder` applies one rule to the several off-by-one layouts that tool family writes (a video
keeps min(N, M+1) frames and one flow fewer). Bytes are copied unchanged when they already are what
the record format stores; otherwise frames are resized and flow re-quantised, resized or
re-encoded. Each deviation is a note ('numbering_gap', 'flow_requantised', ...), counted in the run
summary and the metadata. No TensorFlow, no JAX.

The layout rule and the notes: docs/design_notes.md.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re
from typing import Optional

import cv2
import numpy as np

from twostream_jax.data import record_schema
from twostream_jax.prep import jpeg_codec
from twostream_jax.prep import video_decoding

_FILE_RE = re.compile(r'^(?P<kind>img|flow_x|flow_y|x|y)_(?P<index>\d+)\.(?:jpe?g|png|bmp)$',
                      re.IGNORECASE)
_KIND = {'img': 'img', 'flow_x': 'x', 'x': 'x', 'flow_y': 'y', 'y': 'y'}
_SOF_MARKERS = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_header(data: bytes) -> Optional[tuple[int, int, int]]:
  """(height, width, channels) from a JPEG's frame header, or None if `data` is no JPEG.

  Reads only the markers, so copied frames can be checked without decoding them.
  """
  if data[:2] != b'\xff\xd8':
    return None
  i = 2
  while i + 4 <= len(data):
    if data[i] != 0xFF:
      return None
    marker = data[i + 1]
    if marker == 0xFF:  # fill byte
      i += 1
      continue
    length = int.from_bytes(data[i + 2:i + 4], 'big')
    if marker in _SOF_MARKERS:
      if i + 10 > len(data):
        return None
      height = int.from_bytes(data[i + 5:i + 7], 'big')
      width = int.from_bytes(data[i + 7:i + 9], 'big')
      return height, width, data[i + 9]
    i += 2 + length
  return None


@dataclasses.dataclass
class FolderPlan:
  """The files of one rawframes folder that become a record, after `plan_folder`'s rule.

  Attributes:
    frames: frame file names, in order (n of them).
    flow_x: x flow file names (n - 1).
    flow_y: y flow file names (n - 1).
    notes: layout notes (docs/design_notes.md), e.g. ['standard'].
  """
  frames: list[str]
  flow_x: list[str]
  flow_y: list[str]
  notes: list[str]


def _consecutive_run(numbered: dict[int, str]) -> tuple[list[str], bool]:
  """Files of the run of consecutive numbers from the smallest; whether a gap cut it short."""
  if not numbered:
    return [], False
  first = min(numbered)
  run = []
  while first + len(run) in numbered:
    run.append(numbered[first + len(run)])
  return run, len(run) < len(numbered)


def _is_uniform(folder: str, name: str) -> bool:
  image = cv2.imread(os.path.join(folder, name), cv2.IMREAD_GRAYSCALE)
  return image is not None and int(image.max()) - int(image.min()) <= 1


def plan_folder(folder: str, max_frames: int = 0) -> FolderPlan:
  """Lists a rawframes folder and applies the layout rule of docs/design_notes.md.

  Args:
    folder: one video's folder.
    max_frames: keep at most this many frames (0: all).

  Raises:
    VideoDecodeError: fewer than 2 usable frames, or no flow.
  """
  numbered: dict[str, dict[int, str]] = collections.defaultdict(dict)
  try:
    names = os.listdir(folder)
  except OSError as e:
    raise video_decoding.VideoDecodeError(f'unreadable folder: {e.strerror or e}') from e
  for name in names:
    m = _FILE_RE.match(name)
    if m:
      numbered[_KIND[m.group('kind').lower()]][int(m.group('index'))] = name
  notes = []
  runs = {}
  for kind in ('img', 'x', 'y'):
    runs[kind], gap = _consecutive_run(numbered[kind])
    if gap:
      notes.append('numbering_gap')
  if numbered['img'] and min(numbered['img']) == 0:
    notes.append('frames_from_0')
  if numbered['x'] and min(numbered['x']) == 0:
    notes.append('flows_from_0')
  frames = runs['img']
  n = len(frames)
  if n < 2:
    raise video_decoding.VideoDecodeError(f'too short: {n} frame image(s) (img_XXXXX.jpg), need >= 2')
  if len(runs['x']) != len(runs['y']):
    notes.append('flow_x_y_counts_differ')
  m = min(len(runs['x']), len(runs['y']))
  if m == 0:
    raise video_decoding.VideoDecodeError('no flow images (flow_x_XXXXX.jpg / flow_y_XXXXX.jpg)')
  flow_x, flow_y = runs['x'][:m], runs['y'][:m]
  if m == n - 1:
    notes.append('standard')
  elif m == n:
    first_padded = (_is_uniform(folder, flow_x[0]) and _is_uniform(folder, flow_y[0]) and not (
        _is_uniform(folder, flow_x[-1]) and _is_uniform(folder, flow_y[-1])))
    if first_padded:
      notes.append('n_flows_first_padding_dropped')
      flow_x, flow_y = flow_x[1:], flow_y[1:]
    else:
      notes.append('n_flows_last_dropped')
  elif m > n:
    notes.append('more_flows_than_frames')
  else:
    notes.append('fewer_flows_than_frames')
  n = min(n, len(flow_x) + 1)
  if max_frames:
    n = min(n, max_frames)
  if n < 2:
    raise video_decoding.VideoDecodeError(f'too short: {n} usable frame(s), need >= 2')
  return FolderPlan(frames[:n], flow_x[:n - 1], flow_y[:n - 1], sorted(set(notes)))


@dataclasses.dataclass
class RawframesVideo:
  """One video's stored bytes, ready for a `record_schema.VideoRecord`."""
  frames: list[bytes]
  flow_x: list[bytes]
  flow_y: list[bytes]
  height: int
  width: int
  notes: list[str]


def _read(folder: str, name: str) -> bytes:
  try:
    with open(os.path.join(folder, name), 'rb') as f:
      return f.read()
  except OSError as e:
    raise video_decoding.VideoDecodeError(f'unreadable {name}: {e.strerror or e}') from e


def _decode(data: bytes, name: str, flags: int) -> np.ndarray:
  image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
  if image is None:
    raise video_decoding.VideoDecodeError(f'corrupt image {name}')
  return image


def read_video(folder: str, *, short_side: int, flow_bound_px: float, source_flow_bound_px: float,
               jpeg_quality: int, max_frames: int = 0) -> RawframesVideo:
  """Reads one rawframes folder into record bytes (docs/design_notes.md says what is copied).

  Args:
    folder: the video's folder.
    short_side: target short side of the frames (0: keep their size).
    flow_bound_px: bound B of the stored records.
    source_flow_bound_px: bound the rawframes flow was quantised with.
    jpeg_quality: quality of re-encoded images.
    max_frames: keep at most this many frames (0: all).

  Raises:
    VideoDecodeError: the folder is unusable (too short, a corrupt image, mixed frame sizes).
  """
  plan = plan_folder(folder, max_frames)
  notes = list(plan.notes)
  frames, size = [], None
  for name in plan.frames:
    data = _read(folder, name)
    header = jpeg_header(data)
    if header is not None and header[2] == 3 and (
        short_side == 0 or min(header[:2]) == short_side):
      frame_size = header[:2]
    else:
      bgr = _decode(data, name, cv2.IMREAD_COLOR)
      rgb = cv2.cvtColor(video_decoding.resize_frame(bgr, short_side), cv2.COLOR_BGR2RGB)
      data = jpeg_codec.encode_jpeg(rgb, jpeg_quality)
      frame_size = rgb.shape[:2]
      if 'frames_reencoded' not in notes:
        notes.append('frames_reencoded')
    if size is None:
      size = frame_size
    elif frame_size != size:
      raise video_decoding.VideoDecodeError(f'frame size changes at {name}: {frame_size} != {size}')
    frames.append(data)
  height, width = size
  flows = {'x': [], 'y': []}
  for axis, names in (('x', plan.flow_x), ('y', plan.flow_y)):
    for name in names:
      data = _read(folder, name)
      header = jpeg_header(data)
      if (header is not None and header[:2] == (height, width) and header[2] == 1
          and source_flow_bound_px == flow_bound_px):
        flows[axis].append(data)
        continue
      q = _decode(data, name, cv2.IMREAD_GRAYSCALE)
      if q.shape != (height, width):
        # Flow values are in pixels of their own image: scale them with the image.
        v = record_schema.dequantise_flow(q, source_flow_bound_px)
        v = cv2.resize(v, (width, height), interpolation=cv2.INTER_LINEAR)
        v *= (width / q.shape[1]) if axis == 'x' else (height / q.shape[0])
        q = record_schema.quantise_flow(v, flow_bound_px)
        notes.append('flow_resized')
      elif source_flow_bound_px != flow_bound_px:
        q = record_schema.quantise_flow(record_schema.dequantise_flow(q, source_flow_bound_px),
                                        flow_bound_px)
        notes.append('flow_requantised')
      else:
        notes.append('flow_reencoded')  # not a single-channel JPEG (e.g. PNG or 3-channel)
      flows[axis].append(jpeg_codec.encode_jpeg(q, jpeg_quality))
  return RawframesVideo(frames, flows['x'], flows['y'], height, width, sorted(set(notes)))
