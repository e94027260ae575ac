"""One new video -> the uint8 frames and quantised flow its test views need, as the records hold them.

Per video, in worker processes: decode with the records' settings (`prep.video_decoding`: short
side, frame stride, frame cap; a clip faster than the records' frame rate is brought to it by
frame selection, `record_match`), keep the frames of the K test positions (`data.protocol_positions`),
compute the flow fields their K stacks of L fields use (a per-pair OpenCV algorithm here; for a
batched one such as tvl1_jax the caller gets the grayscale pairs), quantise flow with the records'
bound and, by default, pass frames and fields through the records' JPEG coding, in `shard_writer`'s
order (flow on the un-encoded grayscale frames, JPEG afterwards), so that the networks see what
evaluation on the records feeds them.

A video's resized RGB frames are held while it is read (its length decides which frames the test
positions use): cap long recordings with the records' `max_frames` or cut them first.

numpy + cv2 only: no TensorFlow, no JAX.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import time
from typing import Iterator, Sequence

import numpy as np

from twostream_jax.data import record_schema
from twostream_jax.data.protocol_positions import flow_indices, view_starts
from twostream_jax.flow import algorithms as optical_flow
from twostream_jax.inference import record_match
from twostream_jax.prep import jpeg_codec
from twostream_jax.prep import video_decoding


@dataclasses.dataclass(frozen=True)
class ClipSettings:
  """How to read every video (picklable: it travels to the workers).

  Attributes:
    short_side: resize so that the short side has this many pixels (0: unchanged), as the records.
    max_frames: keep at most this many frames (0: all), as the records.
    frame_stride: keep every s-th decoded frame, as the records.
    jpeg_quality: the records' JPEG quality.
    flow_bound_px: B of the flow quantisation.
    num_views: K, frames or flow stacks per video.
    num_flow_fields: L, fields per stack; 0 when no temporal stream is asked for.
    want_frames: whether a spatial stream is asked for (keep the K view frames).
    pair_flow: name of a per-pair algorithm computed here ('dis', 'farneback', 'tvl1'), or '' to
      return grayscale pairs for a batched algorithm run by the caller.
    jpeg_roundtrip: pass frames and quantised flow through JPEG as the records do.
    render_frames: also keep this many RGB frames (at the starts of evenly chosen stacks) for
      pictures; 0: none.
    records_fps: frames per second of the records' stored frames (0: unknown; then every clip is
      read with `frame_stride`, as the records were).
    resample_fps: bring a faster clip to `records_fps` by frame selection (`record_match`).
  """
  short_side: int
  max_frames: int
  frame_stride: int
  jpeg_quality: int
  flow_bound_px: float
  num_views: int
  num_flow_fields: int
  want_frames: bool
  pair_flow: str
  jpeg_roundtrip: bool = True
  render_frames: int = 0
  records_fps: float = 0.0
  resample_fps: bool = True


@dataclasses.dataclass
class Clip:
  """What one video gives (arrays uint8 unless said otherwise).

  Attributes:
    path: the video file.
    num_frames: N, frames kept after stride and cap.
    height, width: frame size after resizing.
    frames: `[K, H, W, 3]` RGB frames of the K views, or None without a spatial stream.
    field_indices: int64 `[F]` sorted flow fields the stacks use (field i = flow(i -> i+1)).
    stack_rows: int64 `[K, L]` row of `field_indices` of each field of each stack.
    fields: `[F, H, W, 2]` quantised flow (x, y) of those fields, or None when `gray_pairs` is given.
    gray_pairs: `[F, 2, H, W]` grayscale (frame i, frame i+1) per field, for a batched algorithm.
    render_frames: `[R, H, W, 3]` RGB frames for pictures (not JPEG-coded).
    render_rows: int64 `[R]` row of `field_indices` whose flow goes with each picture frame.
    decode_seconds, flow_seconds: time spent decoding (with JPEG coding) and on flow here.
    fps: the clip's frame rate (its container's; 0: unknown or not asked).
    note: about its frame rate against the records' ('' nothing to say).
  """
  path: str
  num_frames: int
  height: int
  width: int
  frames: np.ndarray | None
  field_indices: np.ndarray
  stack_rows: np.ndarray
  fields: np.ndarray | None
  gray_pairs: np.ndarray | None
  render_frames: np.ndarray
  render_rows: np.ndarray
  decode_seconds: float
  flow_seconds: float
  fps: float = 0.0
  note: str = ''

  def stacks(self) -> np.ndarray:
    """`[K, H, W, 2L]` quantised flow stacks, channel 2k = x and 2k+1 = y of field k."""
    if self.fields is None:
      raise ValueError('flow fields are not computed yet (set_fields first)')
    k, l = self.stack_rows.shape
    picked = self.fields[self.stack_rows]  # [K, L, H, W, 2]
    return np.ascontiguousarray(np.moveaxis(picked, 1, 3).reshape(k, self.height, self.width, 2 * l))


@dataclasses.dataclass
class Failure:
  """A video that could not be read; `reason` says why."""
  path: str
  reason: str


def _jpeg_roundtrip(image: np.ndarray, quality: int, channels: int) -> np.ndarray:
  return jpeg_codec.decode_jpeg(jpeg_codec.encode_jpeg(image, quality), channels)


def quantise_fields(flow_px: np.ndarray, settings: ClipSettings) -> np.ndarray:
  """`[F, H, W, 2]` float flow -> quantised uint8, JPEG round trip per component if asked (records)."""
  q = record_schema.quantise_flow(flow_px, settings.flow_bound_px)
  if settings.jpeg_roundtrip:
    for i in range(q.shape[0]):
      for c in range(2):
        q[i, ..., c] = _jpeg_roundtrip(q[i, ..., c], settings.jpeg_quality, 1)
  return q


def read_clip(path: str, settings: ClipSettings,
              flow: optical_flow.PairFlow | None = None) -> Clip:
  """Decodes one video and computes what its test views need (module docstring).

  Args:
    path: video file.
    settings: how to read it.
    flow: a ready per-pair algorithm (built from `settings.pair_flow` when None).

  Raises:
    video_decoding.VideoDecodeError: the video is missing, corrupt, or has fewer than 2 frames.
  """
  start = time.perf_counter()
  rgb, fps, note = decode_frames(path, settings)
  if len(rgb) < 2:
    raise video_decoding.VideoDecodeError(
        f'too short: {len(rgb)} decodable frame{"" if len(rgb) == 1 else "s"}, need at least 2')
  n, (h, w) = len(rgb), rgb[0].shape[:2]
  frames = None
  if settings.want_frames:
    chosen = view_starts(n, 1, settings.num_views)
    frames = np.stack([_jpeg_roundtrip(rgb[i], settings.jpeg_quality, 3) if settings.jpeg_roundtrip
                       else rgb[i] for i in chosen])
  field_indices = np.zeros([0], np.int64)
  stack_rows = np.zeros([settings.num_views, 0], np.int64)
  render_rows = np.zeros([0], np.int64)
  if settings.num_flow_fields:
    per_stack = flow_indices(n, settings.num_views, settings.num_flow_fields)
    field_indices, inverse = np.unique(per_stack, return_inverse=True)
    stack_rows = inverse.reshape(per_stack.shape)
    if settings.render_frames:
      stacks = np.unique(np.linspace(0, settings.num_views - 1, settings.render_frames).round())
      render_rows = stack_rows[stacks.astype(np.int64), 0]
  render = [rgb[int(field_indices[r])] for r in render_rows]
  gray = {}
  for i in field_indices:
    for j in (int(i), int(i) + 1):
      if j not in gray:
        gray[j] = video_decoding.to_gray(rgb[j])
  del rgb
  decode_seconds = time.perf_counter() - start
  fields, gray_pairs, flow_seconds = None, None, 0.0
  if len(field_indices) and settings.pair_flow:
    start = time.perf_counter()
    flow = flow or optical_flow.make_flow_algorithm(settings.pair_flow)
    flow_px = np.stack([flow.compute(gray[int(i)], gray[int(i) + 1]) for i in field_indices])
    fields = quantise_fields(flow_px, settings)
    flow_seconds = time.perf_counter() - start
  elif len(field_indices):
    gray_pairs = np.stack([np.stack([gray[int(i)], gray[int(i) + 1]]) for i in field_indices])
  return Clip(path=path, num_frames=n, height=h, width=w, frames=frames,
              field_indices=field_indices, stack_rows=stack_rows, fields=fields,
              gray_pairs=gray_pairs,
              render_frames=np.stack(render) if render else np.zeros([0, h, w, 3], np.uint8),
              render_rows=render_rows, decode_seconds=decode_seconds, flow_seconds=flow_seconds,
              fps=fps, note=note)


def decode_frames(path: str, settings: ClipSettings) -> tuple[list[np.ndarray], float, str]:
  """(the kept RGB frames, the clip's frame rate, a note on it): at the records' rate when both
  rates are known (every `step`-th source frame), else with the records' frame stride."""
  fps = video_decoding.frame_rate(path) if settings.records_fps > 0 else 0.0
  step = record_match.frame_selection(fps, settings.records_fps) if settings.resample_fps else 0.0
  note = record_match.rate_note(fps, settings.records_fps, step)
  stride = settings.frame_stride
  if fps > 0 and (step or settings.resample_fps):
    stride = 1  # the rates decide: the records' stride is part of their rate
    if step and abs(step - round(step)) <= record_match.RATE_TOLERANCE * step:
      stride, step = int(round(step)), 0.0  # a whole step: the decoder's stride skips conversions
  frames = video_decoding.iter_frames(path, settings.short_side, 0 if step else settings.max_frames,
                                      stride)
  if not step:
    return list(frames), fps, note
  rgb, wanted = [], 0
  for index, frame in enumerate(frames):
    if settings.max_frames and len(rgb) >= settings.max_frames:
      break
    if index == wanted:
      rgb.append(frame)
      wanted = int(round(len(rgb) * step))
  return rgb, fps, note


# ------------------------------------------------------------------------------ worker processes

_worker_flow: optical_flow.PairFlow | None = None


def _init_worker(settings: ClipSettings) -> None:
  global _worker_flow
  import cv2  # pylint: disable=g-import-not-at-top
  cv2.setNumThreads(1)  # the workers are the parallelism; OpenCV threads would oversubscribe
  _worker_flow = optical_flow.make_flow_algorithm(settings.pair_flow) if settings.pair_flow else None


def _read_or_fail(path: str, settings: ClipSettings) -> Clip | Failure:
  try:
    return read_clip(path, settings, _worker_flow)
  except video_decoding.VideoDecodeError as e:
    return Failure(path, str(e))
  except Exception as e:  # pylint: disable=broad-except
    # A decoder error on one bad file must not stop the other videos.
    return Failure(path, f'{type(e).__name__}: {e}')


def iter_clips(paths: Sequence[str], settings: ClipSettings,
               num_workers: int) -> Iterator[Clip | Failure]:
  """`read_clip` of every path, in order, `num_workers` processes ahead (0: in this process).

  At most 2 x num_workers clips wait in memory, so a long list of videos does not pile up.
  """
  if num_workers <= 0:
    _init_worker(settings)
    for path in paths:
      yield _read_or_fail(path, settings)
    return
  # forkserver (spawn where there is none): forking a process that runs JAX or OpenCV threads can
  # deadlock the child; the fork server imports only this module.
  method = 'forkserver' if 'forkserver' in multiprocessing.get_all_start_methods() else 'spawn'
  ctx = multiprocessing.get_context(method)
  if method == 'forkserver':
    ctx.set_forkserver_preload(['twostream_jax.inference.clip_reader'])
  with concurrent.futures.ProcessPoolExecutor(max_workers=num_workers, mp_context=ctx,
                                              initializer=_init_worker,
                                              initargs=(settings,)) as executor:
    pending, next_index = [], 0
    while next_index < len(paths) or pending:
      while next_index < len(paths) and len(pending) < 2 * num_workers:
        pending.append(executor.submit(_read_or_fail, paths[next_index], settings))
        next_index += 1
      yield pending.pop(0).result()
