"""What a run knows about its data, built once from `config.data` by the entry point.

`DataSpec.from_config(config.data)` validates the data settings and reads each records folder's
metadata once; training, evaluation and the pipelines receive the spec instead of the config.
No TensorFlow, no JAX: accelerator hosts without TensorFlow can build it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from twostream_jax.data import dataset_metadata
from twostream_jax.data import protocol_views
from twostream_jax.data import record_schema

MODALITIES = ('rgb', 'flow')
FLOW_DIRECTIONS = ('forward', 'bidirectional')
STACKINGS = ('optical_flow', 'trajectory')


class InputConfigError(ValueError):
  """A `config.data` value the pipeline cannot use."""


@dataclasses.dataclass(frozen=True)
class DataSettings:
  """The validated `config.data` keys that shape examples and how they are read."""
  modality: str
  num_fields: int
  mean_subtraction: str
  crop_size: int
  multiscale_crop: bool
  random_flip: bool
  color_jitter: float
  normalization: str
  frames_per_video: int
  class_balanced: bool
  decode_parallelism: int  # 0: let tf.data tune it
  skip_corrupt: bool
  stacking: str = 'optical_flow'
  direction: str = 'forward'

  @property
  def trajectory(self) -> bool:
    """Flow stacked along trajectories (`data.stacking` has no effect on RGB)."""
    return self.modality == 'flow' and self.stacking == 'trajectory'

  @property
  def input_channels(self) -> int:
    """C of the network input: 3 for 'rgb', 2L for 'flow'."""
    return 3 if self.modality == 'rgb' else 2 * self.num_fields

  @classmethod
  def from_config(cls, data_config: Any) -> 'DataSettings':
    """Validates `config.data`'s example settings.

    Raises:
      InputConfigError: a value the pipeline cannot use, named with its key.
    """
    c = data_config
    s = cls(modality=c.modality, num_fields=int(c.num_flow_fields),
            mean_subtraction=c.flow_mean_subtraction, crop_size=int(c.crop_size),
            multiscale_crop=bool(c.multiscale_crop), random_flip=bool(c.random_flip),
            color_jitter=float(c.color_jitter), normalization=c.normalization,
            frames_per_video=int(c.frames_per_video), class_balanced=bool(c.class_balanced),
            decode_parallelism=int(c.decode_parallelism),
            skip_corrupt=bool(c.skip_corrupt_records), stacking=c.stacking,
            direction=c.flow_direction)
    checks = [
        (s.direction in FLOW_DIRECTIONS,
         f'data.flow_direction must be one of {FLOW_DIRECTIONS}, got {s.direction!r}'),
        (s.direction == 'forward' or s.modality == 'rgb' or s.num_fields % 2 == 0,
         f'data.flow_direction=bidirectional needs an even data.num_flow_fields (L/2 backward and '
         f'L/2 forward fields), got {s.num_fields}'),
        (s.direction == 'forward' or s.stacking == 'optical_flow',
         'data.stacking=trajectory follows forward flow only: use data.flow_direction=forward'),
        (s.stacking in STACKINGS, f'data.stacking must be one of {STACKINGS}, got {s.stacking!r}'),
        (s.modality in MODALITIES, f'data.modality must be one of {MODALITIES}, got {s.modality!r}'),
        (s.num_fields >= 1, f'data.num_flow_fields must be >= 1, got {s.num_fields}'),
        (s.mean_subtraction in protocol_views.MEAN_SUBTRACTIONS,
         f'data.flow_mean_subtraction must be one of {protocol_views.MEAN_SUBTRACTIONS}, got '
         f'{s.mean_subtraction!r}'),
        (s.crop_size >= 1, f'data.crop_size must be >= 1, got {s.crop_size}'),
        (0.0 <= s.color_jitter < 1.0, f'data.color_jitter must be in [0, 1), got {s.color_jitter}'),
        (s.normalization in protocol_views.NORMALIZATIONS,
         f'data.normalization must be one of {protocol_views.NORMALIZATIONS}, got {s.normalization!r}'),
        (s.frames_per_video >= 1, f'data.frames_per_video must be >= 1, got {s.frames_per_video}'),
        (s.decode_parallelism >= 0,
         f'data.decode_parallelism must be >= 0 (0: AUTOTUNE), got {s.decode_parallelism}'),
    ]
    for ok, message in checks:
      if not ok:
        raise InputConfigError(message)
    return s


def data_dirs(data_config: Any) -> tuple[str, ...]:
  """The records folders of `data.data_dirs` (comma-separated)."""
  dirs = tuple(d.strip() for d in str(data_config.data_dirs).split(',') if d.strip())
  if not dirs:
    raise InputConfigError('data.data_dirs is empty: set --config.data.data_dirs=<records folder> '
                           '(a folder written by tools/make_tfrecords.py; comma-separate several '
                           'for multi-task training)')
  return dirs


def _mix_weights(text: str, num_dirs: int) -> tuple[float, ...] | None:
  """`data.mix_weights` parsed (None: '' = by the training splits' sizes)."""
  text = str(text).strip()
  if not text:
    return None
  try:
    weights = tuple(float(w) for w in text.split(','))
  except ValueError as e:
    raise InputConfigError(f'data.mix_weights must be comma-separated numbers, got {text!r}') from e
  if len(weights) != num_dirs or min(weights) <= 0:
    raise InputConfigError(f'data.mix_weights needs one positive weight per data dir '
                           f'({num_dirs}), got {text!r}')
  return weights


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """The data of a run: its records folders, their metadata and the validated settings.

  Attributes:
    data_dirs: the records folders, in head order (one head per folder).
    metadatas: each folder's metadata, with split 'heldout' when `val_split` is 'heldout'.
    settings: the example settings.
    train_split, eval_split, val_split: split names (`val_split` '' = no validation).
    mix_weights: multi-task sampling weight per folder (None: by training-split sizes,
      `training_mix`).
  """
  data_dirs: tuple[str, ...]
  metadatas: tuple[dataset_metadata.DatasetMetadata, ...]
  settings: DataSettings
  train_split: str
  eval_split: str
  val_split: str
  mix_weights: tuple[float, ...] | None

  @classmethod
  def from_config(cls, data_config: Any) -> 'DataSpec':
    """Validates `config.data` and reads each folder's metadata (once).

    Raises:
      InputConfigError: a bad data setting.
      dataset_metadata.DatasetError: a missing or foreign folder, an unknown split, or a data set
        without the backward flow that bi-directional stacks need.
    """
    dirs = data_dirs(data_config)
    metadatas = tuple(
        dataset_metadata.with_val_split(dataset_metadata.load_metadata(d), data_config.train_split,
                                        data_config.val_split, float(data_config.heldout_fraction))
        for d in dirs)
    for m in metadatas:
      for split in {data_config.train_split, data_config.eval_split, data_config.val_split} - {''}:
        m.tfds_split(split)  # raises naming the splits the folder has
    return cls.from_metadata(data_config, dirs, metadatas)

  @classmethod
  def from_metadata(cls, data_config: Any, dirs, metadatas) -> 'DataSpec':
    """The spec of folders whose metadata is at hand (e.g. recorded in a run's workdir, without
    the video lists: splits are not checked here).

    Raises:
      InputConfigError, dataset_metadata.DatasetError: as `from_config`.
    """
    settings = DataSettings.from_config(data_config)
    dirs, metadatas = tuple(dirs), tuple(metadatas)
    if settings.modality == 'flow' and settings.direction == 'bidirectional':
      for d, m in zip(dirs, metadatas):
        if not m.extra.get(record_schema.BACKWARD_FLOW_METADATA_KEY):
          raise dataset_metadata.DatasetError(
              f'data set {m.name!r} ({d}) holds no backward flow, which '
              'data.flow_direction=bidirectional needs: rebuild it with tools/make_tfrecords.py '
              '--backward_flow, or use data.flow_direction=forward')
    return cls(data_dirs=dirs, metadatas=metadatas, settings=settings,
               train_split=data_config.train_split, eval_split=data_config.eval_split,
               val_split=data_config.val_split,
               mix_weights=_mix_weights(data_config.mix_weights, len(dirs)))

  @property
  def names(self) -> list[str]:
    """The metadata name of each folder, in head order (e.g. ['ucf101', 'hmdb51'])."""
    return [m.name for m in self.metadatas]

  @property
  def num_classes(self) -> int | tuple[int, ...]:
    """Classes of the data set, or one count per data set when there are several."""
    counts = tuple(m.num_classes for m in self.metadatas)
    return counts[0] if len(counts) == 1 else counts

  @property
  def input_channels(self) -> int:
    return self.settings.input_channels

  def training_mix(self) -> list[float]:
    """Each folder's share of a training batch: `mix_weights`, or its training split's size."""
    if self.mix_weights is not None:
      return list(self.mix_weights)
    return [float(m.num_videos(self.train_split)) for m in self.metadatas]
