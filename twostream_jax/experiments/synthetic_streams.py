"""What the demo and the ablations share: the synthetic set, its records, the streams' configs and
training one of them (as main's train_eval does).

An experiment config (configs/demo.py, configs/ablations.py) is the training keys of
configs/default.py without `mode`, plus `experiment` and its own sections (`demo`: the synthetic
set and the streams' budget; `ablations`). `training_config` drops those, so that every run an
experiment trains has a plain training config, and its checkpoints store no experiment key.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import ml_collections

from twostream_jax.data import data_spec
from twostream_jax.data import record_schema
from twostream_jax.prep import dataset_writer
from twostream_jax.prep import run_summary
from twostream_jax.prep import shard_writer
from twostream_jax.prep import synthetic_videos
from twostream_jax.train import loop as train_loop
from twostream_jax.train import metric_writers
from twostream_jax.train import protocol_evaluation
from twostream_jax.train.state import TrainState

# Top-level keys of experiment configs that are not training keys.
EXPERIMENT_KEYS = ('experiment', 'demo', 'ablations')


def synthetic_spec(config: ml_collections.ConfigDict) -> synthetic_videos.SyntheticSpec:
  """The synthetic set that `config.demo` describes, drawn with `config.seed`."""
  d = config.demo
  return synthetic_videos.SyntheticSpec(
      height=d.video_height, width=d.video_width, num_frames=d.video_frames,
      train_per_class=d.train_per_class, test_per_class=d.test_per_class,
      camera_pan=d.camera_pan, seed=config.seed)


def build_records(config: ml_collections.ConfigDict, videos: dict[str, Any], *,
                  subdir: str = 'records', backward_flow: bool = False) -> str:
  """Builds the videos' records with the dataset writer (a no-op when complete); returns their folder.

  Args:
    config: an experiment config (`demo.data_root`, `demo.flow_algorithm`, `demo.num_workers`).
    videos: what `synthetic_videos.write_dataset` returned.
    subdir: the records' folder under `demo.data_root`.
    backward_flow: also store flow(i+1 -> i) (make_tfrecords --backward_flow).

  Raises:
    RuntimeError: some videos could not be written (their failures.json says why).
  """
  d = config.demo
  records = os.path.join(d.data_root, subdir)
  if os.path.exists(os.path.join(records, 'twostream_metadata.json')):
    metric_writers.log(f'records: {records} (already built)')
    return records
  options = dataset_writer.WriterOptions(
      source_root=os.path.abspath(videos['videos_dir']), source_kind='videos',
      splits_dir=os.path.abspath(videos['splits_dir']), output_dir=os.path.abspath(records),
      dataset_name=dataset_writer.default_dataset_name(records),
      settings=shard_writer.EncodeSettings(
          flow_algorithm=d.flow_algorithm,
          flow_bound_px=record_schema.DEFAULT_FLOW_BOUND_PX, short_side=0, max_frames=0,
          frame_stride=1, jpeg_quality=record_schema.DEFAULT_JPEG_QUALITY,
          backward_flow=backward_flow),
      num_workers=d.num_workers,
      command_line=f'twostream_jax.experiments.{config.experiment} (build_records)')
  metric_writers.log(f'records: {records} ({d.flow_algorithm} flow, {d.num_workers} workers)')
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # inherited by the workers
  summary = dataset_writer.run(options, dataset_writer.prepare(options))
  metric_writers.log(run_summary.format_summary(summary))
  if not summary.complete:
    raise RuntimeError(f'the synthetic records in {records} are incomplete; see '
                       f'{records}/failures.json')
  return records


def training_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The experiment config's training keys alone, with mode 'train_eval' (a locked copy)."""
  c = copy.deepcopy(config)
  c.unlock()
  for key in EXPERIMENT_KEYS:
    if key in c:
      del c[key]
  c.mode = 'train_eval'
  c.lock()
  return c


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *, evaluate: bool = True
                       ) -> tuple[TrainState, dict[str, Any] | None]:
  """Trains one run of a training config in `workdir`, then evaluates it as main's train_eval does.

  Returns:
    (the trained state, `protocol_evaluation.evaluate_run`'s metrics, or None without `evaluate`).
  """
  spec = data_spec.DataSpec.from_config(config.data)
  state = train_loop.train(config, spec, workdir)
  metrics = protocol_evaluation.evaluate_run(config, spec, workdir, state) if evaluate else None
  return state, metrics


def stream_configs(config: ml_collections.ConfigDict,
                   records: str) -> dict[str, ml_collections.ConfigDict]:
  """name -> training config of each stream the demo trains on `records`.

  'spatial' (RGB, `demo.spatial_steps`), 'temporal' (flow with mean subtraction,
  `demo.temporal_steps`) and, with `demo.compare_mean_subtraction`, 'temporal_no_mean_subtraction';
  each at its `demo.*_learning_rate`, multiplied by `optim.decay_factor` at 3/4 of its steps.
  """
  base = training_config(config)
  base.data.data_dirs = records

  def variant(name, modality, steps, learning_rate, mean_subtraction='per_field'):
    c = copy.deepcopy(base)
    c.eval.stream_name = name
    c.data.modality = modality
    c.data.flow_mean_subtraction = mean_subtraction
    c.train.num_train_steps = steps
    c.optim.learning_rate = learning_rate
    c.optim.decay_boundaries_steps = str(int(steps * 0.75))
    return c

  d = config.demo
  streams = {
      'spatial': variant('spatial', 'rgb', d.spatial_steps, d.spatial_learning_rate),
      'temporal': variant('temporal', 'flow', d.temporal_steps, d.temporal_learning_rate),
  }
  if d.compare_mean_subtraction:
    streams['temporal_no_mean_subtraction'] = variant(
        'temporal_no_mean_subtraction', 'flow', d.temporal_steps, d.temporal_learning_rate, 'none')
  return streams
