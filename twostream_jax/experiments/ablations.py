"""The paper's ablations (its Table 1) on the ablation set: `experiment='ablations'`.

  python -m twostream_jax.main --config configs/ablations.py [--workdir runs/ablations]

The ablation set (`prep.ablation_videos`, in `demo.data_root`) is built so that each row should
matter (docs/ablations.md). Every row is trained and evaluated `ablations.seeds` times (training
seeds seed, seed + 1, ...; the data stays the same) with the demo's stream settings and the budget
in `demo.temporal_steps` / `demo.spatial_steps`. Temporal rows: L = 1 / 5 / 10 with mean flow
subtraction, L = 10 without it, with trajectory stacking, bi-directional (records with backward
flow, `<demo.data_root>/records_backward_flow`). Spatial rows: from scratch; initialised from a net
trained once on the related pretraining set (`ablations.pretrain_data_root`) and fine-tuned, or with
only its last layer trained. Fusion: per seed, the average of the fine-tuned spatial and the L=10
temporal scores. Writes `ablations.json` (per row and seed: test top-1; per row: mean, std, the
paper's number; the orderings and whether they are shown) and `ablations.md`, and logs the table.
`ablations.quick=True`: a smaller set, fewer steps and seeds (a check of the chain for CI, whose
L=1 / L=10 rows still differ). Finished trainings are resumed, not repeated.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from twostream_jax.data import dataset_metadata
from twostream_jax.data import record_schema
from twostream_jax.evaluation import classification_metrics
from twostream_jax.evaluation import evaluate
from twostream_jax.evaluation import score_files
from twostream_jax.experiments import ablation_table
from twostream_jax.experiments import synthetic_streams
from twostream_jax.models import pretrained
from twostream_jax.prep import ablation_videos
from twostream_jax.train import metric_writers

ABLATIONS_JSON = 'ablations.json'
ABLATIONS_MD = 'ablations.md'
PRETRAINED_SUBDIR = 'pretrained_spatial'
# Records of the same videos with backward flow too, beside the others (`demo.data_root`).
BACKWARD_RECORDS = 'records_backward_flow'
# Fusion row: the average of these two rows' test scores, per seed.
FUSED_ROWS = ('spatial_pretrained_fine_tuned', 'temporal_L10')
# The paper's Table 1 (UCF101 split 1, top-1 %). Spatial: dropout 0.5 column (ablations.
# spatial_dropout = 0.5; the 0.9 column in the note). Temporal: mean subtraction on, or off where
# the row turns it off. Fusion: averaging, as in docs/evaluation.md's table of the paper's numbers.
PAPER = {
    'temporal_L1': (73.9, 'L=1, mean subtraction on'),
    'temporal_L5': (80.4, 'L=5, mean subtraction on'),
    'temporal_L10': (81.0, 'L=10, mean subtraction on'),
    'temporal_L10_no_mean_subtraction': (79.9, 'L=10, mean subtraction off'),
    'temporal_L10_trajectory': (80.2, 'trajectory stacking L=10, mean subtraction on (off: 79.6)'),
    'temporal_L10_bidirectional': (81.2, 'bi-directional L=10, mean subtraction on'),
    'spatial_from_scratch': (42.5, 'from scratch, dropout 0.5 (0.9: 52.3)'),
    'spatial_pretrained_fine_tuned': (70.8, 'pretrained + fine-tuning, dropout 0.5 (0.9: 72.8)'),
    'spatial_pretrained_last_layer': (72.7, 'pretrained + last layer, dropout 0.5 (0.9: 59.9)'),
    'fusion': (86.2, 'average of spatial_pretrained_fine_tuned and temporal_L10'),
}


def ablation_spec(config: ml_collections.ConfigDict, *, pretrain: bool = False
                  ) -> ablation_videos.AblationSpec:
  """The ablation set that `config.ablations` describes, or its related pretraining set.

  The pretraining set has the same appearance families, one motion (its labels are the families),
  `ablations.pretrain_per_class` training videos each and another seed.
  """
  ab = config.ablations
  common = dict(appearances=tuple(a.strip() for a in ab.appearances.split(',')),
                height=ab.video_height, width=ab.video_width, num_frames=ab.video_frames,
                camera=ab.camera)
  if pretrain:
    return ablation_videos.AblationSpec(**common, motions=('Steady',),
                                        train_per_class=ab.pretrain_per_class, test_per_class=1,
                                        seed=config.seed + ab.pretrain_seed_offset)
  return ablation_videos.AblationSpec(**common, train_per_class=ab.train_per_class,
                                      test_per_class=ab.test_per_class, seed=config.seed)


def row_settings(config: ml_collections.ConfigDict) -> list[tuple[str, dict[str, Any]]]:
  """(row name, settings) of every trained row, in table order (the fusion row is computed).

  Settings: 'modality', and for flow 'fields', 'mean_subtraction', 'stacking', 'direction'; for
  RGB 'init' ('scratch' | 'pretrained') and 'last_layer_only'.
  """
  flow = lambda fields, mean='per_field', stacking='optical_flow', direction='forward': dict(
      modality='flow', fields=min(fields, config.ablations.video_frames - 1),
      mean_subtraction=mean, stacking=stacking, direction=direction)
  rows = [
      ('temporal_L1', flow(1)),
      ('temporal_L5', flow(5)),
      ('temporal_L10', flow(10)),
      ('temporal_L10_no_mean_subtraction', flow(10, mean='none')),
      ('temporal_L10_trajectory', flow(10, stacking='trajectory')),
      ('temporal_L10_bidirectional', flow(10, direction='bidirectional')),
      ('spatial_from_scratch', dict(modality='rgb', init='scratch', last_layer_only=False)),
      ('spatial_pretrained_fine_tuned', dict(modality='rgb', init='pretrained', last_layer_only=False)),
      ('spatial_pretrained_last_layer', dict(modality='rgb', init='pretrained', last_layer_only=True)),
  ]
  wanted = [r.strip() for r in str(config.ablations.rows).split(',') if r.strip()]
  unknown = sorted(set(wanted) - {name for name, _ in rows})
  if unknown:
    raise ValueError(f'ablations.rows names unknown rows {unknown}; the rows are: '
                     f'{", ".join(name for name, _ in rows)}')
  if config.ablations.seeds < 1:
    raise ValueError(f'ablations.seeds={config.ablations.seeds} must be >= 1.')
  return [(n, s) for n, s in rows if not wanted or n in wanted]


def _budget(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The config with the quick mode's set, seeds and budget applied (a copy)."""
  c = copy.deepcopy(config)
  ab = c.ablations
  if ab.quick:
    c.demo.data_root = ab.quick_data_root
    ab.pretrain_data_root = ab.quick_data_root + '_pretrain'
    ab.appearances = ab.quick_appearances
    ab.train_per_class = ab.quick_train_per_class
    ab.test_per_class = ab.quick_test_per_class
    ab.pretrain_per_class = ab.quick_train_per_class
    ab.seeds = ab.quick_seeds
    c.demo.temporal_steps = c.demo.spatial_steps = ab.pretrain_steps = ab.quick_steps
    c.data.test_num_frames = ab.quick_test_num_frames
    c.data.test_num_crops = 1
    c.train.checkpoint_every_steps = ab.quick_steps
  return c


def _run_config(config: ml_collections.ConfigDict, records: str, settings: dict[str, Any],
                name: str, seed: int = 0) -> ml_collections.ConfigDict:
  """The train_eval config of one row and seed index (the demo's stream settings, then the row's)."""
  modality = settings['modality']
  streams = synthetic_streams.stream_configs(config, records)
  c = copy.deepcopy(streams['spatial' if modality == 'rgb' else 'temporal'])
  c.seed = config.seed + seed
  c.eval.stream_name = name
  c.eval.score_train_split = False  # Only the test split enters the table.
  if modality == 'flow':
    c.data.num_flow_fields = settings['fields']
    c.data.flow_mean_subtraction = settings['mean_subtraction']
    c.data.stacking = settings['stacking']
    c.data.flow_direction = settings['direction']
  else:
    c.model.dropout_rate = config.ablations.spatial_dropout
    c.optim.train_last_layer_only = settings['last_layer_only']
  return c


def _build(config: ml_collections.ConfigDict, spec: ablation_videos.AblationSpec,
           root: str, **kwargs) -> tuple[dict[str, Any], str]:
  """(videos, records folder) of a set in `root`, each built when absent (records rebuilt when the
  videos were)."""
  c = copy.deepcopy(config)
  c.demo.data_root = root
  videos = ablation_videos.write_dataset(spec, os.path.join(root, 'videos'))
  if videos['generated']:
    for subdir in ('records', BACKWARD_RECORDS):
      shutil.rmtree(os.path.join(root, subdir), ignore_errors=True)
  return videos, synthetic_streams.build_records(c, videos, **kwargs)


def pretrain_spatial(config: ml_collections.ConfigDict, workdir: str) -> str:
  """Trains the spatial net on the related pretraining set once; returns its pretrained directory."""
  out = os.path.join(workdir, PRETRAINED_SUBDIR)
  if os.path.isdir(os.path.join(out, pretrained.VARIABLES_SUBDIR)):
    metric_writers.log(f'pretrained spatial net: {out} (already trained)')
    return out
  _, records = _build(config, ablation_spec(config, pretrain=True),
                      config.ablations.pretrain_data_root)
  c = _run_config(config, records, dict(modality='rgb', last_layer_only=False), 'pretrain_spatial')
  c.train.num_train_steps = config.ablations.pretrain_steps
  c.optim.decay_boundaries_steps = str(int(config.ablations.pretrain_steps * 0.75))
  metric_writers.log(f'--- pretraining the spatial net on {records} ({c.train.num_train_steps} steps) ---')
  state, _ = synthetic_streams.train_and_evaluate(c, os.path.join(workdir, 'pretrain_spatial'),
                                                  evaluate=False)
  variables = jax.device_get({'params': state.params, 'batch_stats': state.batch_stats})
  if jax.process_index() == 0:
    pretrained.save_pretrained(variables, out, info={
        'source': f'twostream_jax ablations: spatial {c.model.name} trained on {records} '
                  f'for {c.train.num_train_steps} steps'}, overwrite=True)
  return out


def _has_backward_flow(records: str) -> bool:
  metadata = dataset_metadata.load_metadata(records)
  return bool(metadata.extra.get(record_schema.BACKWARD_FLOW_METADATA_KEY))


def _test_scores(run_dir: str, config: ml_collections.ConfigDict) -> score_files.VideoScores:
  return score_files.load_scores(os.path.join(evaluate.split_dir(run_dir, config.data.eval_split),
                                              'scores.npz'))


def fused_top1(run_dirs: list[str], config: ml_collections.ConfigDict) -> float:
  """Top-1 of the average of the runs' test softmax scores (equal weights)."""
  scores = score_files.align_all([_test_scores(d, config) for d in run_dirs])
  probs = np.mean([s.probs for s in scores], axis=0)
  return classification_metrics.top_k_accuracy(probs, scores[0].labels, 1)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs every row and seed (module docstring); returns what ablations.json holds."""
  start = time.perf_counter()
  config = _budget(config)
  rows_wanted = row_settings(config)
  spec = ablation_spec(config)
  videos, records = _build(config, spec, config.demo.data_root)
  backward_records = None
  pretrained_dir = None
  runs: dict[str, list[float]] = {name: [] for name, _ in rows_wanted}
  seconds: dict[str, float] = {name: 0.0 for name, _ in rows_wanted}
  fusion: list[float] = []
  for seed in range(config.ablations.seeds):
    for name, settings in rows_wanted:
      row_records = records
      if settings.get('direction') == 'bidirectional':
        if _has_backward_flow(records):
          backward_records = records
        elif backward_records is None:
          _, backward_records = _build(config, spec, config.demo.data_root,
                                       subdir=BACKWARD_RECORDS, backward_flow=True)
        row_records = backward_records
      pretrained_row = settings['modality'] == 'rgb' and settings['init'] == 'pretrained'
      if pretrained_row and pretrained_dir is None:
        pretrained_dir = pretrain_spatial(config, workdir)
      c = _run_config(config, row_records, settings, name, seed)
      if pretrained_row:
        c.model.init_from = pretrained_dir
        c.model.init_from_partial = True  # The pretraining set's head has other classes.
      run_dir = os.path.join(workdir, f'seed{seed}', name)
      metric_writers.log(f'--- {name}, seed {c.seed}: {PAPER[name][1]}, '
                         f'{c.train.num_train_steps} steps ---')
      row_start = time.perf_counter()
      _, metrics = synthetic_streams.train_and_evaluate(c, run_dir)
      runs[name].append(metrics[c.data.eval_split]['top1'])
      seconds[name] += time.perf_counter() - row_start
    if all(name in runs for name in FUSED_ROWS):
      fusion.append(fused_top1([os.path.join(workdir, f'seed{seed}', n) for n in FUSED_ROWS],
                               config))
  rows = []
  for name, _ in rows_wanted:
    rows.append({'name': name, 'setting': PAPER[name][1], 'paper_top1': PAPER[name][0],
                 **ablation_table.summarise(runs[name]), 'seconds': round(seconds[name], 1)})
  if fusion:
    rows.append({'name': 'fusion', 'setting': PAPER['fusion'][1], 'paper_top1': PAPER['fusion'][0],
                 **ablation_table.summarise(fusion)})
  checks = ablation_table.orderings({r['name']: r for r in rows})
  table = ablation_table.markdown(rows, checks)
  result = {
      'rows': rows,
      'orderings': checks,
      'quick': bool(config.ablations.quick),
      'seeds': config.ablations.seeds,
      'spec': spec.to_dict(),
      'records': records,
      'steps': {'temporal': config.demo.temporal_steps, 'spatial': config.demo.spatial_steps,
                'pretrain': config.ablations.pretrain_steps},
      'protocol': f'{config.data.test_num_frames} frames x {config.data.test_num_crops} crops',
      'num_test_videos': videos['num_test'],
      'seconds': round(time.perf_counter() - start, 1),
      'devices': jax.device_count(),
      'load_average_1min': os.getloadavg()[0],
  }
  note = (f'\nAblation set: {spec.width}x{spec.height}, {spec.num_frames} frames, '
          f'{len(videos["class_names"])} classes, {spec.train_per_class} training and '
          f'{spec.test_per_class} test videos per class; {result["protocol"]} per test video; '
          f'{config.ablations.seeds} seed(s); steps {result["steps"]}; {result["seconds"]:.0f} s on '
          f'{jax.device_count()} device(s), load average {result["load_average_1min"]:.1f}'
          + (' (QUICK MODE: a check of the chain, not a result)' if result['quick'] else '') + '.\n')
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, ABLATIONS_JSON), 'w') as f:
      json.dump(result, f, indent=1)
    with open(os.path.join(workdir, ABLATIONS_MD), 'w') as f:
      f.write(table + note)
  print('\n' + table + note, flush=True)
  metric_writers.log(f'ablations: {os.path.join(workdir, ABLATIONS_JSON)} ({result["seconds"]:.0f} s)')
  return result
