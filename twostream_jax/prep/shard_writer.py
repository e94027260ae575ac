"""One unit of work of the dataset writer: encode a list of videos into one shard file.

`write_shard(spec)` is a pure function of its picklable `ShardSpec` (source paths, labels,
settings, target path): it runs in a local worker process, a Beam `Map` or a cluster array job and
writes the same shard bytes wherever it runs. It writes the shard under a temporary name, then a
small JSON result, then renames the shard to its final name, so a shard with its final name is
complete; `load_result` is what a rerun checks to skip work. The shard path may be a URL
(`data.file_system`).

Per video it streams frames to JPEG bytes and frame pairs to quantised flow JPEGs, keeping only the
bytes and the previous grayscale frame. A video that cannot be used (empty, corrupt, unreadable,
< 2 frames) is left out and listed with its reason in the result.

File names, durability and memory: docs/design_notes.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from typing import Any, Callable, Iterator, Optional

import numpy as np

from twostream_jax.data import file_system
from twostream_jax.data import record_schema
from twostream_jax.flow import algorithms as optical_flow
from twostream_jax.prep import jpeg_codec
from twostream_jax.prep import rawframes
from twostream_jax.prep import video_decoding

RESULTS_DIRNAME = 'make_tfrecords_shards'
# Test-only: a worker exits abruptly (like a killed process) before encoding this video id.
CRASH_ENV = 'TWOSTREAM_TEST_CRASH_BEFORE_VIDEO'


@dataclasses.dataclass(frozen=True)
class EncodeSettings:
  """How every video is encoded (part of the plan: a rerun must use the same).

  Attributes:
    flow_algorithm: one of `optical_flow.ALGORITHMS`, or 'rawframes' (flow copied from the input).
    flow_bound_px: B of the flow quantisation.
    short_side: frames resized so that their short side has this many pixels (0: unchanged).
    max_frames: keep at most this many frames per video (0: all).
    frame_stride: keep every s-th decoded frame (flow is between kept frames).
    jpeg_quality: JPEG quality of frames and flow.
    source_flow_bound_px: bound of the rawframes flow (rawframes only).
    backward_flow: also store flow(i+1 -> i) of each pair (bi-directional flow stacks; the
      per-pair flow algorithms only).
  """
  flow_algorithm: str
  flow_bound_px: float
  short_side: int
  max_frames: int
  frame_stride: int
  jpeg_quality: int
  source_flow_bound_px: float = 0.0
  backward_flow: bool = False


@dataclasses.dataclass(frozen=True)
class VideoTask:
  """One video to encode: where it is and what it is."""
  video_id: str
  label: int
  label_name: str
  source_path: str
  source_kind: str  # 'videos' or 'rawframes'


@dataclasses.dataclass(frozen=True)
class ShardSpec:
  """A picklable unit of work: these videos, encoded so, into the shard file `path`."""
  path: str
  videos: tuple[VideoTask, ...]
  settings: EncodeSettings


@dataclasses.dataclass
class VideoOutcome:
  """What became of one video.

  Attributes:
    video_id: its id.
    ok: whether it was written.
    reason: why not (empty when written).
    num_frames: frames stored.
    height: stored frame height.
    width: stored frame width.
    frame_bytes: bytes of its RGB JPEGs.
    flow_bytes: bytes of its flow JPEGs (x and y).
    notes: layout notes (rawframes variants, see `rawframes`).
    warnings: problems that did not stop the video (e.g. a container promising more frames).
    fps: the source video's frame rate (its container's; 0: unknown, e.g. rawframes).
  """
  video_id: str
  ok: bool
  reason: str = ''
  num_frames: int = 0
  height: int = 0
  width: int = 0
  frame_bytes: int = 0
  flow_bytes: int = 0
  notes: list[str] = dataclasses.field(default_factory=list)
  warnings: list[str] = dataclasses.field(default_factory=list)
  fps: float = 0.0


@dataclasses.dataclass
class ShardResult:
  """What `write_shard` wrote: its videos' outcomes and the shard's size."""
  path: str
  num_bytes: int
  videos: list[VideoOutcome]

  @property
  def num_examples(self) -> int:
    return sum(v.ok for v in self.videos)

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self))

  @classmethod
  def from_json(cls, text: str) -> 'ShardResult':
    data = json.loads(text)
    return cls(path=data['path'], num_bytes=data['num_bytes'],
               videos=[VideoOutcome(**v) for v in data['videos']])


RESULT_SUFFIX = '.result.json'
_INCOMPLETE = '.incomplete-'


def _sidecar_stem(shard_path: str) -> str:
  """`<output_dir>/make_tfrecords_shards/<shard without '.tfrecord'>` (docs/design_notes.md)."""
  folder, name = os.path.split(shard_path)
  return os.path.join(folder, RESULTS_DIRNAME, name.replace('.tfrecord', ''))


def result_path(shard_path: str) -> str:
  """Where the result of the shard at `shard_path` is stored."""
  return _sidecar_stem(shard_path) + RESULT_SUFFIX


def incomplete_path(shard_path: str, token: str) -> str:
  """The temporary name of a shard being written by the writer with this `token`."""
  return f'{_sidecar_stem(shard_path)}{_INCOMPLETE}{token}'


def is_temporary(name: str) -> bool:
  """Whether a file name is a shard or result being written (or left behind by a killed writer)."""
  return _INCOMPLETE in name or RESULT_SUFFIX + '.tmp-' in name


def migrate_legacy_results(output_dir: str) -> int:
  """Renames results of the old layout (`make_tfrecords_shards/<shard>.json`) to `result_path`.

  Returns:
    How many were renamed (a result already in the new layout wins; the old one is removed).
  """
  folder = os.path.join(output_dir, RESULTS_DIRNAME)
  if not file_system.isdir(folder):
    return 0
  renamed = 0
  for name in sorted(file_system.listdir(folder)):
    if '.tfrecord' not in name or not name.endswith('.json'):
      continue
    old = os.path.join(folder, name)
    new = result_path(os.path.join(output_dir, name[:-len('.json')]))
    if file_system.exists(new):
      file_system.remove(old)
    else:
      file_system.replace(old, new)
      renamed += 1
  return renamed


def remove_temporaries(output_dir: str) -> None:
  """Deletes shards and results left half-written by killed writers (also of the old layout)."""
  for folder in (output_dir, os.path.join(output_dir, RESULTS_DIRNAME)):
    if file_system.isdir(folder):
      for name in file_system.listdir(folder):
        if is_temporary(name) and ('.tfrecord' in name or folder != output_dir):
          file_system.remove(os.path.join(folder, name))


def load_result(shard_path: str) -> Optional[ShardResult]:
  """The result of a finished shard, or None when the shard is not (completely) there."""
  path = result_path(shard_path)
  if not (file_system.isfile(shard_path) and file_system.isfile(path)):
    return None
  try:
    result = ShardResult.from_json(file_system.read_text(path))
  except (ValueError, KeyError, TypeError):
    return None
  return result if result.num_bytes == file_system.size(shard_path) else None


def iter_encoded_frames(task: VideoTask, settings: EncodeSettings,
                        stats: Optional[video_decoding.DecodeStats] = None,
                        ) -> Iterator[tuple[bytes, np.ndarray]]:
  """Decodes a video file and yields (RGB JPEG bytes, `[H, W]` uint8 gray) per kept frame."""
  for rgb in video_decoding.iter_frames(task.source_path, settings.short_side, settings.max_frames,
                                        settings.frame_stride, stats):
    yield jpeg_codec.encode_jpeg(rgb, settings.jpeg_quality), video_decoding.to_gray(rgb)


def encode_flow(flow_px: np.ndarray, settings: EncodeSettings) -> tuple[bytes, bytes]:
  """`[H, W, 2]` float flow -> (x JPEG, y JPEG), quantised with the settings' bound."""
  q = record_schema.quantise_flow(flow_px, settings.flow_bound_px)
  return (jpeg_codec.encode_jpeg(q[..., 0], settings.jpeg_quality),
          jpeg_codec.encode_jpeg(q[..., 1], settings.jpeg_quality))


def _too_short(n: int) -> video_decoding.VideoDecodeError:
  return video_decoding.VideoDecodeError(
      f'too short: {n} decodable frame{"" if n == 1 else "s"}, need at least 2')


def encode_video(task: VideoTask, settings: EncodeSettings,
                 flow: Optional[optical_flow.FlowAlgorithm],
                 stats: Optional[video_decoding.DecodeStats] = None,
                 ) -> tuple[record_schema.VideoRecord, list[str], list[str]]:
  """Encodes one video into a record.

  Args:
    task: the video.
    settings: how to encode it.
    flow: the flow algorithm (per pair, or batched with batches of one); None for rawframes.
    stats: filled in while a video file is decoded (its frame rate, ...).

  Returns:
    (the record, layout notes, warnings).

  Raises:
    VideoDecodeError: the video is unusable; the message is the reason.
  """
  if task.source_kind == 'rawframes':
    raw = rawframes.read_video(task.source_path, short_side=settings.short_side,
                               flow_bound_px=settings.flow_bound_px,
                               source_flow_bound_px=settings.source_flow_bound_px,
                               jpeg_quality=settings.jpeg_quality, max_frames=settings.max_frames)
    record = record_schema.VideoRecord(task.video_id, task.label, task.label_name, raw.height,
                                       raw.width, raw.frames, raw.flow_x, raw.flow_y)
    return record, raw.notes, []
  frames, flow_x, flow_y, back_x, back_y = [], [], [], [], []
  prev_gray = None
  stats = stats if stats is not None else video_decoding.DecodeStats()
  for jpeg, gray in iter_encoded_frames(task, settings, stats):
    frames.append(jpeg)
    if prev_gray is not None:
      x, y = encode_flow(optical_flow.compute_pair_flow(flow, prev_gray, gray), settings)
      flow_x.append(x)
      flow_y.append(y)
      if settings.backward_flow:
        x, y = encode_flow(optical_flow.compute_pair_flow(flow, gray, prev_gray), settings)
        back_x.append(x)
        back_y.append(y)
    prev_gray = gray
  if len(frames) < 2:
    raise _too_short(len(frames))
  h, w = prev_gray.shape
  warning = stats.truncation_warning()
  record = record_schema.VideoRecord(task.video_id, task.label, task.label_name, h, w, frames,
                                     flow_x, flow_y, back_x, back_y)
  return record, [], [warning] if warning else []


def outcome_of(record: record_schema.VideoRecord, notes: list[str],
               warnings: list[str], fps: float = 0.0) -> VideoOutcome:
  """The outcome of a written video (`fps`: its source's frame rate, 0 unknown)."""
  return VideoOutcome(record.video_id, True, num_frames=record.num_frames, height=record.height,
                      width=record.width, frame_bytes=sum(map(len, record.frames)),
                      # Forward flow only, so that the summary's bytes per field stay comparable
                      # (backward flow is in the shard's bytes on disk).
                      flow_bytes=sum(map(len, record.flow_x)) + sum(map(len, record.flow_y)),
                      notes=notes, warnings=warnings, fps=round(float(fps), 3))


class ShardFileWriter:
  """Writes records to `incomplete_path(path)` and publishes the shard on `finish`."""

  def __init__(self, path: str):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    self.path = path
    # The pid alone is not unique across machines (Beam workers in containers often share one): a
    # random part keeps two attempts at one shard (a retry, a speculative copy) apart.
    self._token = f'{os.getpid()}-{uuid.uuid4().hex[:8]}'
    self.tmp_path = incomplete_path(path, self._token)
    file_system.makedirs(os.path.dirname(self.tmp_path))
    self._writer = tf.io.TFRecordWriter(self.tmp_path)

  def write(self, record: record_schema.VideoRecord) -> None:
    self._writer.write(record_schema.serialize_video_record(record))

  def finish(self, outcomes: list[VideoOutcome]) -> ShardResult:
    """Closes, syncs and renames the shard; writes its result first (see the module docstring)."""
    self._writer.close()
    file_system.sync(self.tmp_path)
    result = ShardResult(self.path, file_system.size(self.tmp_path), outcomes)
    rpath = result_path(self.path)
    file_system.write_atomic(rpath, result.to_json(), temporary=f'{rpath}.tmp-{self._token}')
    file_system.replace(self.tmp_path, self.path)
    return result

  def abandon(self) -> None:
    self._writer.close()
    if file_system.exists(self.tmp_path):
      file_system.remove(self.tmp_path)


def write_shard(spec: ShardSpec,
                on_video_done: Optional[Callable[[VideoOutcome], Any]] = None,
                flow: Optional[optical_flow.FlowAlgorithm] = None) -> ShardResult:
  """Encodes the spec's videos into its shard; see the module docstring.

  Args:
    spec: the unit of work.
    on_video_done: called after each video (progress reporting).
    flow: a ready flow algorithm to reuse; built from the settings when None.

  Returns:
    The shard's result (also stored next to it).
  """
  settings = spec.settings
  if flow is None and settings.flow_algorithm != 'rawframes':
    flow = optical_flow.make_flow_algorithm(settings.flow_algorithm)
  writer = ShardFileWriter(spec.path)
  outcomes = []
  try:
    for task in spec.videos:
      if os.environ.get(CRASH_ENV) == task.video_id:
        os._exit(17)  # pylint: disable=protected-access
      stats = video_decoding.DecodeStats()
      try:
        record, notes, warnings = encode_video(task, settings, flow, stats)
        record.validate()
      except video_decoding.VideoDecodeError as e:
        outcome = VideoOutcome(task.video_id, False, reason=str(e))
      except Exception as e:  # pylint: disable=broad-except
        # A decoder or codec error on one bad file must not stop the other videos.
        outcome = VideoOutcome(task.video_id, False, reason=f'{type(e).__name__}: {e}')
      else:
        writer.write(record)
        outcome = outcome_of(record, notes, warnings, stats.fps)
      outcomes.append(outcome)
      if on_video_done is not None:
        on_video_done(outcome)
  except BaseException:
    writer.abandon()
    raise
  return writer.finish(outcomes)
