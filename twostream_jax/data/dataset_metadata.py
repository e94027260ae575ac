"""Dataset metadata written next to the shards: classes, splits, flow settings, format version.

Every video is stored once, in the *partition* of its roles across all official splits (e.g.
UCF101's `train1_test2_train3`); each partition is a TFDS split with its own shards, and an
official split is the union of its partitions, chosen at read time:
`tfds.builder_from_directory(d).as_dataset(split=metadata.tfds_split('test2'))`.
Split names are `train<K>` and `test<K>` (K = 1, 2, 3 for UCF101/HMDB51; 1 for a deterministic split).
`with_heldout` adds a `heldout` split: whole groups of training videos kept out of the training
stream (`excluded_from_training`) for validation during training.

Plain JSON: no JAX, and no TensorFlow unless the folder is a URL (gs://, ...: any `tf.io.gfile`
file system, through `data.file_system`). Design: docs/design_notes.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from typing import Any, Sequence

from twostream_jax.data import file_system
from twostream_jax.data import record_schema

METADATA_FILENAME = 'twostream_metadata.json'
FILE_FORMAT = 'tfrecord'
HELDOUT_SPLIT = 'heldout'
# extra[SOURCE_FPS_KEY]: {source frame rate ('25', '29.97'): number of videos}; absent: unknown.
SOURCE_FPS_KEY = 'source_fps'
_CLIP_SUFFIX = re.compile(r'_c\d+$')


class DatasetError(ValueError):
  """A data set folder that cannot be used as asked (missing, wrong version, unknown split)."""


def partition_name(roles: Sequence[tuple[str, int]]) -> str:
  """Names the partition of videos that have the given roles, e.g. [('train', 1), ('test', 2)].

  Returns:
    'train1_test2'.
  """
  if not roles:
    raise DatasetError('a partition needs at least one (role, split) pair')
  return '_'.join(f'{role}{k}' for role, k in roles)


def shard_filename(dataset_name: str, partition: str, shard_index: int, num_shards: int) -> str:
  """TFDS's default template `{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}`."""
  return f'{dataset_name}-{partition}.{FILE_FORMAT}-{shard_index:05d}-of-{num_shards:05d}'


@dataclasses.dataclass
class DatasetMetadata:
  """What a records folder holds; see the module docstring.

  Attributes:
    name: TFDS dataset name, used in shard file names (e.g. 'ucf101').
    class_names: class names in label order.
    partitions: partition name -> ids of its videos, in shard order.
    num_shards: partition name -> number of shards.
    splits: split name ('train1', 'test1', ...) -> partition names whose union is the split.
    flow_algorithm: 'tvl1', 'farneback', 'dis', 'tvl1_jax' or 'rawframes'.
    flow_bound_px: B of the flow quantisation.
    short_side: frames were resized so that their short side is this many pixels (0: not resized).
    jpeg_quality: JPEG quality of frames and flow.
    command_line: the command that wrote the records.
    format_version: `record_schema.FORMAT_VERSION` of the writer.
    extra: anything else worth keeping (flow parameters, a rawframes layout report, ...).
  """
  name: str
  class_names: list[str]
  partitions: dict[str, list[str]]
  num_shards: dict[str, int]
  splits: dict[str, list[str]]
  flow_algorithm: str
  flow_bound_px: float
  short_side: int
  jpeg_quality: int
  command_line: str
  format_version: int = record_schema.FORMAT_VERSION
  extra: dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  def split_names(self) -> list[str]:
    return sorted(self.splits)

  def _check_split(self, split: str) -> list[str]:
    """The partitions whose shards hold the split (for 'heldout': the training split's)."""
    if split == HELDOUT_SPLIT:
      heldout = getattr(self, '_heldout', None)
      if heldout is None:
        raise DatasetError(f"split {HELDOUT_SPLIT!r} is the held-out part of the training split: it "
                           "exists only with data.val_split='heldout' and data.heldout_fraction > 0")
      return self._check_split(heldout[0])
    if split not in self.splits:
      raise DatasetError(f'split {split!r} is not in this data set; it has: '
                         f'{", ".join(self.split_names())}')
    if not self.splits[split]:
      raise DatasetError(f'split {split!r} of this data set holds no videos')
    return self.splits[split]

  def tfds_split(self, split: str) -> str:
    """The TFDS split string for an official split, e.g. 'train1_train2+train1_test2'."""
    return '+'.join(self._check_split(split))

  def stored_video_ids(self, split: str) -> list[str]:
    """Ids of the videos in the split's shards, in storage order (for 'heldout': the training
    split's)."""
    return [v for p in self._check_split(split) for v in self.partitions[p]]

  def video_ids(self, split: str) -> list[str]:
    """Ids of the split's videos, in storage order."""
    ids = self.stored_video_ids(split)
    if split == HELDOUT_SPLIT:
      heldout = self._heldout[1]
      return [v for v in ids if v in heldout]
    return ids

  def video_positions(self, split: str) -> list[int]:
    """Where `video_ids(split)` lie in `stored_video_ids(split)` (all of them but for 'heldout')."""
    if split != HELDOUT_SPLIT:
      return list(range(len(self.stored_video_ids(split))))
    heldout = self._heldout[1]
    return [i for i, v in enumerate(self.stored_video_ids(split)) if v in heldout]

  def num_videos(self, split: str) -> int:
    if split == HELDOUT_SPLIT:
      return len(self.video_positions(split))
    return sum(len(self.partitions[p]) for p in self._check_split(split))

  def excluded_from_training(self, split: str) -> frozenset[str]:
    """Ids of the videos of training split `split` that its training stream must skip."""
    heldout = getattr(self, '_heldout', None)
    return heldout[1] if heldout is not None and heldout[0] == split else frozenset()

  def with_heldout(self, train_split: str, fraction: float) -> 'DatasetMetadata':
    """A copy with split 'heldout': `heldout_video_ids` of `train_split` (docs/design_notes.md).

    Raises:
      DatasetError: fraction not in [0, 0.5], or too few videos to hold any out.
    """
    copy = dataclasses.replace(self)
    ids = heldout_video_ids(self.video_ids(train_split), fraction)
    if not ids:
      raise DatasetError(f'data.heldout_fraction={fraction} of the {self.num_videos(train_split)} '
                         f'videos of {train_split!r} holds out no video: raise it, or validate on '
                         "another split (data.val_split) or none ('')")
    copy._heldout = (train_split, frozenset(ids))  # pylint: disable=protected-access
    return copy

  def shard_files(self, data_dir: str, split: str) -> list[str]:
    """Paths of the shards that hold the split's videos, sorted."""
    return sorted(os.path.join(data_dir, shard_filename(self.name, p, i, self.num_shards[p]))
                  for p in self._check_split(split) for i in range(self.num_shards[p]))

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=1)

  @classmethod
  def from_json(cls, text: str) -> 'DatasetMetadata':
    fields = {f.name for f in dataclasses.fields(cls)}
    data = json.loads(text)
    unknown = sorted(set(data) - fields)
    if unknown:
      raise DatasetError(f'unknown metadata keys {unknown}: written by a newer twostream_jax?')
    return cls(**data)


def stored_frame_rate(metadata: DatasetMetadata) -> float:
  """Frames per second of the stored frames: the most common source rate / `frame_stride`.

  0.0 when unknown: records written before the rate was recorded, or from rawframes (no rate).
  """
  counts = metadata.extra.get(SOURCE_FPS_KEY) or {}
  if not counts:
    return 0.0
  rate = max(counts, key=lambda r: (counts[r], -float(r)))
  return float(rate) / max(1, int(metadata.extra.get('frame_stride', 1)))


def heldout_video_ids(video_ids: Sequence[str], fraction: float) -> list[str]:
  """A deterministic `fraction` of the videos, by whole groups (docs/design_notes.md).

  Groups are ordered by a hash of their name (the same on every machine and in every process) and
  taken until at least round(fraction * N) videos are held out; at least one video whenever
  fraction > 0 and a group smaller than all videos exists.

  Args:
    video_ids: the training split's ids.
    fraction: 0 (none) to 0.5.

  Returns:
    The held-out ids, in the order of `video_ids`.
  """
  if not 0.0 <= fraction <= 0.5:
    raise DatasetError(f'data.heldout_fraction must be in [0, 0.5], got {fraction}')
  groups: dict[str, list[str]] = {}
  for v in video_ids:
    groups.setdefault(_CLIP_SUFFIX.sub('', v), []).append(v)
  target = max(1, round(fraction * len(video_ids))) if fraction > 0 else 0
  chosen: set[str] = set()
  for name in sorted(groups, key=lambda g: hashlib.sha256(g.encode()).hexdigest()):
    if len(chosen) >= target:
      break
    if len(chosen) + len(groups[name]) < len(video_ids):  # Never hold out every video.
      chosen.update(groups[name])
  return [v for v in video_ids if v in chosen]


def with_val_split(metadata: DatasetMetadata, train_split: str, val_split: str,
                   fraction: float) -> DatasetMetadata:
  """The metadata as a run sees it: with the 'heldout' split when `val_split` is 'heldout'."""
  return metadata.with_heldout(train_split, fraction) if val_split == HELDOUT_SPLIT else metadata


def save_metadata(metadata: DatasetMetadata, data_dir: str) -> str:
  """Writes the metadata atomically (temporary name, then rename); returns its path."""
  path = os.path.join(data_dir, METADATA_FILENAME)
  file_system.write_atomic(path, metadata.to_json())
  return path


def load_metadata(data_dir: str) -> DatasetMetadata:
  """Reads and checks a records folder's metadata.

  Raises:
    DatasetError: the folder or its metadata is missing (or on a file system TensorFlow lacks), or
      the records are of another format version.
  """
  problem = file_system.scheme_problem(data_dir)
  if problem:
    raise DatasetError(f'data set folder {problem}')
  if not file_system.isdir(data_dir):
    raise DatasetError(f'data set folder {data_dir!r} does not exist: build it with '
                       'tools/make_tfrecords.py, or set --config.data.data_dirs to the folder it wrote')
  path = os.path.join(data_dir, METADATA_FILENAME)
  if not file_system.exists(path):
    raise DatasetError(f'{data_dir!r} has no {METADATA_FILENAME}: not a folder written by '
                       'tools/make_tfrecords.py (or the run did not finish; run it again to complete it)')
  metadata = DatasetMetadata.from_json(file_system.read_text(path))
  if metadata.format_version != record_schema.FORMAT_VERSION:
    raise DatasetError(
        f'{data_dir!r} holds records of format version {metadata.format_version}, this twostream_jax '
        f'reads version {record_schema.FORMAT_VERSION}: rebuild the records with this version\'s '
        'tools/make_tfrecords.py')
  return metadata
