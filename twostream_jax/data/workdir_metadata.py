"""The data set a run was trained on, recorded in its workdir, so that the run can be used without it.

`train.loop` writes `<workdir>/dataset_metadata.json` when training starts: the run's config and, for
each of `data.data_dirs`, the records' metadata (class names, flow algorithm and its parameters, flow
bound, stored short side, frame stride, JPEG quality) without the per-video lists. `python -m
twostream_jax.predict` reads it to decode, resize and compute flow on new videos as the records were
written, and to build the network the checkpoints hold, with no records folder at hand.

Plain JSON: no TensorFlow, no JAX.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Sequence

import ml_collections

from twostream_jax.data import data_spec
from twostream_jax.data import dataset_metadata
from twostream_jax.data import file_system

FILENAME = 'dataset_metadata.json'
FORMAT_VERSION = 1


@dataclasses.dataclass
class WorkdirMetadata:
  """What `save` wrote.

  Attributes:
    config: the run's full config (unlocked copy).
    data_dirs: the records folders the run read, in head order.
    datasets: each folder's metadata, with empty `partitions` and `num_shards` (the video lists are
      not needed to use the run and would make the file grow with the data set).
  """
  config: ml_collections.ConfigDict
  data_dirs: list[str]
  datasets: list[dataset_metadata.DatasetMetadata]

  def data_spec(self) -> data_spec.DataSpec:
    """The run's `DataSpec`, from what was recorded (no records folder needed)."""
    return data_spec.DataSpec.from_metadata(self.config.data, self.data_dirs, self.datasets)

  @property
  def dataset(self) -> dataset_metadata.DatasetMetadata:
    """The first data set (head 0); predict may choose another head (`--dataset`)."""
    return self.datasets[0]


def _slim(metadata: dataset_metadata.DatasetMetadata) -> dict[str, Any]:
  data = dataclasses.asdict(metadata)
  data['partitions'], data['num_shards'] = {}, {}
  return data


def save(workdir: str, config: ml_collections.ConfigDict, data_dirs: Sequence[str],
         metadatas: Sequence[dataset_metadata.DatasetMetadata]) -> str:
  """Writes `<workdir>/dataset_metadata.json` atomically; returns its path.

  Args:
    workdir: the run's folder (created if needed).
    config: the run's config.
    data_dirs: the records folders, in head order.
    metadatas: their metadata (`DataSpec.metadatas`).
  """
  content = {
      'format_version': FORMAT_VERSION,
      'config': json.loads(config.to_json_best_effort()),
      'data_dirs': [file_system.absolute(d) for d in data_dirs],  # a URL (gs://...) kept as it is
      'datasets': [_slim(m) for m in metadatas],
  }
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, FILENAME)
  with open(path + '.tmp', 'w') as f:
    json.dump(content, f, indent=1)
  os.replace(path + '.tmp', path)
  return path


def load(workdir: str) -> WorkdirMetadata:
  """Reads what `save` wrote.

  Raises:
    dataset_metadata.DatasetError: no such workdir, no file (a run trained before this file
      existed), or a file of another version.
  """
  if not os.path.isdir(workdir):
    raise dataset_metadata.DatasetError(f'workdir {workdir!r} does not exist: pass the --workdir of a training run')
  path = os.path.join(workdir, FILENAME)
  if not os.path.isfile(path):
    raise dataset_metadata.DatasetError(
        f'{workdir!r} has no {FILENAME}, which training writes when it starts: not a training '
        'workdir, or a run trained before this file existed. Run its training command again (with '
        'the same --workdir it returns at once when training is done, and writes the file).')
  with open(path) as f:
    content = json.load(f)
  if content.get('format_version') != FORMAT_VERSION:
    raise dataset_metadata.DatasetError(f'{path} has format version {content.get("format_version")}; this '
                          f'twostream_jax reads version {FORMAT_VERSION}.')
  return WorkdirMetadata(config=ml_collections.ConfigDict(content['config']),
                         data_dirs=list(content['data_dirs']),
                         datasets=[dataset_metadata.DatasetMetadata(**d) for d in content['datasets']])
