"""A run's evaluation with the paper's protocol: its state scored on the test and training splits.

For the run's final state (or its latest checkpoint): the test split with `data.test_num_frames` x
`data.test_num_crops` views a video (25 x 10), and, with `eval.score_train_split`, the training split
with fewer views (for fitting fusion). A multi-task run evaluates the data set `eval.dataset` names
with its own head and writes under `<workdir>/eval/<data set name>/<split>/`.

Each split's scores so far are saved as the evaluation goes (`evaluation.partial_scores`, every
`eval.partial_scores_every_seconds`); a rerun of the same command scores only the videos they lack,
and writes the same `scores.npz`. The partial file is keyed by `partial_key`: the checkpoint's step,
the protocol and a digest of the config's keys that can change a score.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from twostream_jax.data import data_spec
from twostream_jax.data import eval_dataset
from twostream_jax.data import pipeline_ops
from twostream_jax.evaluation import evaluate
from twostream_jax.evaluation import partial_scores
from twostream_jax.evaluation import stream_scores
from twostream_jax.train import checkpointing
from twostream_jax.train import metric_writers
from twostream_jax.train import restore
from twostream_jax.train import sharding
from twostream_jax.train import steps as train_steps
from twostream_jax.train import task_heads
from twostream_jax.train import view_outputs
from twostream_jax.train.state import TrainState

# How a score is computed, not what it is: partial scores stay valid when these change.
_HOW_KEYS = ('mode', 'train.eval_batch_size', 'train.cpu_convolutions', 'data.decode_parallelism',
             'eval.partial_scores_every_seconds')


def partial_key(config: ml_collections.ConfigDict, *, step: int, split: str, dataset: str,
                stream: str, num_frames: int, num_crops: int, num_videos: int) -> str:
  """The key of a split's partial scores (JSON): what its scores depend on (module docstring)."""
  tree = json.loads(config.to_json())
  for key in _HOW_KEYS:
    section, _, name = key.rpartition('.')
    (tree.get(section, {}) if section else tree).pop(name, None)
  digest = hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()[:16]
  return json.dumps({'step': step, 'split': split, 'dataset': dataset, 'stream': stream,
                     'views': f'{num_frames}x{num_crops}', 'videos': num_videos,
                     'config_sha256': digest}, sort_keys=True)


def _agreed_partial(partial: partial_scores.PartialScores) -> None:
  """Checks that every process read the same partial scores (a collective with several)."""
  if jax.process_count() == 1:
    return
  first = multihost_utils.broadcast_one_to_all(partial.scored.astype(np.int32))
  if not np.array_equal(np.asarray(first) > 0, partial.scored):
    raise RuntimeError(f'process {jax.process_index()} read other partial scores from '
                       f'{partial.path} than process 0: the workdir must be one folder that every '
                       'process sees (as for checkpoints)')


def evaluate_run(config: ml_collections.ConfigDict, spec: data_spec.DataSpec, workdir: str,
                 state: TrainState | None = None) -> dict[str, dict[str, Any]]:
  """Scores the run's state (or latest checkpoint) and writes the results (module docstring).

  Returns:
    split name -> metrics.

  Raises:
    FileNotFoundError: no state given and no checkpoint in the workdir.
  """
  mesh = sharding.create_mesh()
  if state is None:
    checkpointer = checkpointing.Checkpointer(workdir, keep=config.train.keep_checkpoints,
                                              every_steps=0)
    if checkpointer.latest_step() is None:
      raise FileNotFoundError(f'no checkpoint under {checkpointer.directory}: train first '
                              '(--config.mode=train) or point --workdir at a trained run')
    state = restore.restore_or_init(config, spec, mesh, checkpointer, purpose='eval')
  _, eval_fn = train_steps.make_jitted_steps(config, mesh, state)
  dataset_index = task_heads.eval_dataset_index(spec.names, config.eval.dataset)
  dataset, metadata = spec.names[dataset_index], spec.metadatas[dataset_index]
  # Single-task runs keep eval/<split>; several data sets get one folder each.
  sub = dataset if len(spec.names) > 1 else ''
  jobs = [(spec.eval_split, config.data.test_num_frames, config.data.test_num_crops)]
  if config.eval.score_train_split:
    jobs.append((spec.train_split, config.eval.train_num_frames, config.eval.train_num_crops))
  predict = view_outputs.view_predictor(state, eval_fn, mesh, head=dataset_index)
  stream = stream_scores.stream_name(config.data.modality, config.eval.stream_name)
  max_videos = config.eval.max_videos
  results = {}
  step = int(jax.device_get(state.step))
  first_process = jax.process_index() == 0
  for split, frames, crops in jobs:
    views = frames * crops
    out_dir = evaluate.split_dir(workdir, split, sub)
    video_ids = metadata.video_ids(split)[:max_videos or None]
    partial = partial_scores.PartialScores(
        os.path.join(out_dir, partial_scores.FILENAME),
        partial_key(config, step=step, split=split, dataset=dataset, stream=stream,
                    num_frames=frames, num_crops=crops, num_videos=len(video_ids)),
        video_ids, len(metadata.class_names),
        every_seconds=config.eval.partial_scores_every_seconds, write=first_process)
    _agreed_partial(partial)
    if partial.ignored:
      metric_writers.log(f'not resuming from {partial.path}: {partial.ignored}')
    if partial.resumed_from:
      metric_writers.log(f'resuming {stream} {dataset} {split} from {partial.path}: '
                         f'{partial.resumed_from} of {len(video_ids)} videos scored by an earlier '
                         f'run; scoring the other {len(video_ids) - partial.resumed_from}')
    batch_size = view_outputs.videos_per_batch(config.train.eval_batch_size, views, mesh,
                                               len(video_ids) - partial.resumed_from)
    dataset_kwargs = dict(split=split, global_batch_size=batch_size,
                          process_count=jax.process_count(), max_videos=max_videos,
                          dataset_index=dataset_index, skip_videos=partial.scored_indices())
    batches = []
    if partial.resumed_from < len(video_ids):
      host_batches = eval_dataset.create_eval_dataset(
          spec, num_frames=frames, num_crops=crops, process_index=jax.process_index(),
          **dataset_kwargs)
      batches = view_outputs.device_batches(pipeline_ops.numpy_batches(host_batches), mesh)
    scores = evaluate.score_split(
        predict, batches, video_ids=video_ids, class_names=metadata.class_names, split=split,
        views=views, stream=stream, num_batches=eval_dataset.num_eval_batches(spec, **dataset_kwargs),
        show_progress=first_process, partial=partial, train_split=spec.train_split)
    m = results[split] = evaluate.write_split_results(scores, out_dir, dataset,
                                                      write=first_process)
    partial.remove()  # scores.npz is written (process 0 only removes it).
    metric_writers.log(f'{stream} {dataset} {split}: top-1 {m["top1"]:.4f} top-5 {m["top5"]:.4f} '
                       f'mean class accuracy {m["mean_class_accuracy"]:.4f} over '
                       f'{m["num_videos"]} videos ({frames}x{crops} views) -> {out_dir}')
  return results
