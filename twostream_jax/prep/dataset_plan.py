"""The plan of a dataset-writing run: which video goes into which shard file, encoded how.

The plan is a deterministic function of the inputs (the videos found and the split files) and the
flags that change the records. It is stored as `make_tfrecords_plan.json` in the output folder
before any shard is written; a rerun recomputes it and continues only if it is identical. Each
partition gets `ceil(n / videos_per_shard)` shards, and more while the data set has fewer than
`min_units` (stored with the plan, so resuming with another `--num_workers` continues the same
plan).

The output folder may be a URL (`data.file_system`); TensorFlow is imported only then.
Sharding rules: docs/design_notes.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from typing import Any

from twostream_jax.data import dataset_metadata
from twostream_jax.data import file_system
from twostream_jax.prep import shard_writer
from twostream_jax.prep import split_files

PLAN_FILENAME = 'make_tfrecords_plan.json'
PLAN_VERSION = 1


class PlanError(ValueError):
  """The output folder holds another run's work; the message says what differs."""


@dataclasses.dataclass
class Plan:
  """See the module docstring.

  Attributes:
    dataset_name: TFDS name used in shard file names.
    source_kind: 'videos' or 'rawframes'.
    settings: `EncodeSettings` as a dict.
    class_names: label order.
    splits: split name -> partition names.
    shards: partition -> list of shards -> list of [video_id, label, source path relative to the
      source root].
    min_units: the least number of shards asked for when the plan was made.
    index: how the videos and splits were found (scheme, split numbers, counts of unlisted and
      unused videos, details).
  """
  dataset_name: str
  source_kind: str
  settings: dict[str, Any]
  class_names: list[str]
  splits: dict[str, list[str]]
  shards: dict[str, list[list[list[Any]]]]
  min_units: int
  index: dict[str, Any]
  plan_version: int = PLAN_VERSION

  @property
  def encode_settings(self) -> shard_writer.EncodeSettings:
    return shard_writer.EncodeSettings(**self.settings)

  def num_videos(self) -> int:
    return sum(len(s) for shards in self.shards.values() for s in shards)

  def shard_paths(self, output_dir: str) -> dict[str, list[str]]:
    """Partition -> its shard file paths, in order."""
    return {p: [os.path.join(output_dir, dataset_metadata.shard_filename(
        self.dataset_name, p, i, len(shards))) for i in range(len(shards))]
            for p, shards in self.shards.items()}

  def shard_specs(self, output_dir: str, source_root: str) -> list[shard_writer.ShardSpec]:
    """The units of work, partitions in name order, shards in index order."""
    specs = []
    settings = self.encode_settings
    paths = self.shard_paths(output_dir)
    for partition, shards in self.shards.items():
      for path, videos in zip(paths[partition], shards):
        tasks = tuple(shard_writer.VideoTask(
            video_id=v, label=label, label_name=self.class_names[label],
            source_path=os.path.join(source_root, source), source_kind=self.source_kind)
                      for v, label, source in videos)
        specs.append(shard_writer.ShardSpec(path, tasks, settings))
    return specs

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=1)

  @classmethod
  def from_json(cls, text: str) -> 'Plan':
    return cls(**json.loads(text))


def _shard_counts(sizes: dict[str, int], videos_per_shard: int, min_units: int) -> dict[str, int]:
  counts = {p: math.ceil(n / videos_per_shard) for p, n in sizes.items()}
  target = min(min_units, sum(sizes.values()))
  while sum(counts.values()) < target:
    # The partition with the most videos per shard (ties: first by name) gets one more shard.
    p = max((p for p in sizes if counts[p] < sizes[p]), key=lambda p: sizes[p] / counts[p])
    counts[p] += 1
  return counts


def make_plan(index: split_files.DatasetIndex, settings: shard_writer.EncodeSettings,
              dataset_name: str, source_kind: str, videos_per_shard: int, min_units: int) -> Plan:
  """Assigns every video of `index` to a shard (docs/design_notes.md).

  Args:
    index: the videos and their roles.
    settings: how videos are encoded.
    dataset_name: TFDS name.
    source_kind: 'videos' or 'rawframes'.
    videos_per_shard: the most videos per shard before `min_units` adds shards.
    min_units: the least total number of shards (capped at the number of videos).
  """
  if videos_per_shard < 1:
    raise ValueError(f'videos_per_shard must be >= 1, got {videos_per_shard}')
  partitions = index.partitions()
  counts = _shard_counts({p: len(v) for p, v in partitions.items()}, videos_per_shard, min_units)
  shards = {}
  for p, videos in partitions.items():
    ordered = sorted(videos, key=lambda v: hashlib.sha1(v.video_id.encode()).hexdigest())
    k = counts[p]
    bounds = [len(ordered) * i // k for i in range(k + 1)]
    shards[p] = [[[v.video_id, v.label, v.source] for v in ordered[a:b]]
                 for a, b in zip(bounds[:-1], bounds[1:])]
  return Plan(
      dataset_name=dataset_name, source_kind=source_kind, settings=dataclasses.asdict(settings),
      class_names=list(index.class_names), splits=index.splits(), shards=shards,
      min_units=min_units,
      index={'scheme': index.scheme, 'split_numbers': index.split_numbers,
             'num_unlisted': len(index.unlisted), 'num_unused': len(index.unused),
             'details': index.details})


def load_plan(output_dir: str) -> Plan | None:
  path = os.path.join(output_dir, PLAN_FILENAME)
  if not file_system.isfile(path):
    return None
  try:
    return Plan.from_json(file_system.read_text(path))
  except (ValueError, TypeError) as e:
    raise PlanError(f'{path} is damaged ({e}); delete {output_dir!r} (or write to a new folder) '
                    'and run again') from e


def save_plan(plan: Plan, output_dir: str) -> None:
  file_system.write_atomic(os.path.join(output_dir, PLAN_FILENAME), plan.to_json())


def differences(stored: Plan, new: Plan) -> list[str]:
  """Human-readable differences between two plans (empty when equal)."""
  a, b = dataclasses.asdict(stored), dataclasses.asdict(new)
  out = []
  for key in a:
    if a[key] == b[key]:
      continue
    if isinstance(a[key], dict) and key != 'shards':
      for k in sorted(set(a[key]) | set(b[key])):
        if a[key].get(k) != b[key].get(k):
          out.append(f'{key}.{k}: stored {a[key].get(k)!r}, now {b[key].get(k)!r}')
    elif key == 'shards':
      ids = lambda p: {v[0] for shards in p.values() for s in shards for v in s}
      added, removed = ids(b[key]) - ids(a[key]), ids(a[key]) - ids(b[key])
      out.append(f'videos or their shards differ ({len(added)} added, {len(removed)} removed'
                 + (f', e.g. {sorted(added | removed)[0]!r}' if added | removed else '') + ')')
    else:
      out.append(f'{key}: stored {a[key]!r}, now {b[key]!r}')
  return out


def check_or_store(plan: Plan, output_dir: str) -> Plan:
  """Stores the plan in a fresh output folder, or checks that it equals the stored one.

  Raises:
    PlanError: the folder holds another plan, or shard files of another data set.
  """
  stored = load_plan(output_dir)
  if stored is not None:
    diffs = differences(stored, plan)
    if diffs:
      raise PlanError(
          f'{output_dir!r} holds an unfinished or finished run with another plan: '
          + '; '.join(diffs[:5]) + '. Rerun with the same inputs and flags to continue it, or '
          'choose a new --output_dir.')
    return stored
  known = {os.path.basename(p) for ps in plan.shard_paths(output_dir).values() for p in ps}
  strangers = sorted(n for n in file_system.listdir(output_dir)
                     if '.tfrecord-' in n and '.incomplete-' not in n and n not in known)
  if strangers or file_system.exists(os.path.join(output_dir, dataset_metadata.METADATA_FILENAME)):
    raise PlanError(f'{output_dir!r} already holds records not written by this plan '
                    f'({(strangers or [dataset_metadata.METADATA_FILENAME])[0]}); choose a new or '
                    'empty --output_dir')
  save_plan(plan, output_dir)
  return plan
