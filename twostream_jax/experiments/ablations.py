"""The paper's ablations (its Table 1) on the synthetic action videos: `experiment='ablations'`.

  python -m twostream_jax.main --config configs/ablations.py [--workdir runs/ablations]

Trains and evaluates each row with the demo's budget (`demo.temporal_steps` / `demo.spatial_steps`)
and test protocol, on the demo's videos and records (`demo.data_root`, built when absent). Temporal
rows: L = 1 / 5 / 10 with mean flow subtraction, L = 10 without it, with trajectory stacking, and
bi-directional (on records with backward flow, `<demo.data_root>/records_backward_flow`). Spatial
rows: from scratch; initialised from a net trained on a second synthetic set (another seed,
`ablations.pretrain_data_root`) and fine-tuned, or with only its last layer trained. Writes
`ablations.json` (per row: test top-1, the paper's UCF101 split 1 number, steps, seconds) and
`ablations.md` in the workdir. `ablations.quick=True` runs every row with `ablations.quick_steps`
steps on a small set of its own and a 2 x 1 protocol: a check of the chain in minutes, not a
result. Finished trainings are not repeated (each row's checkpoint is resumed).
"""

from __future__ import annotations

import copy
import json
import os
import time
from typing import Any

import jax
import ml_collections

from twostream_jax.data import dataset_metadata
from twostream_jax.data import record_schema
from twostream_jax.experiments import synthetic_streams
from twostream_jax.models import pretrained
from twostream_jax.prep import synthetic_videos
from twostream_jax.train import metric_writers

ABLATIONS_JSON = 'ablations.json'
ABLATIONS_MD = 'ablations.md'
PRETRAINED_SUBDIR = 'pretrained_spatial'
# Records of the demo's videos with backward flow too, beside the demo's (`demo.data_root`).
BACKWARD_RECORDS = 'records_backward_flow'
# The paper's Table 1 (UCF101 split 1, top-1 %). Spatial: dropout 0.5 column (ablations.
# spatial_dropout = 0.5; the 0.9 column in the note). Temporal: mean subtraction on, or off where
# the row turns it off.
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
}


def row_settings(config: ml_collections.ConfigDict) -> list[tuple[str, dict[str, Any]]]:
  """(row name, settings) of every ablation, in table order.

  Settings: 'modality', and for flow 'fields', 'mean_subtraction', 'stacking', 'direction'; for
  RGB 'init' ('scratch' | 'pretrained') and 'last_layer_only'.
  """
  flow = lambda fields, mean='per_field', stacking='optical_flow', direction='forward': dict(
      modality='flow', fields=min(fields, config.demo.video_frames - 1), mean_subtraction=mean,
      stacking=stacking, direction=direction)
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
  return [(n, s) for n, s in rows if not wanted or n in wanted]


def _budget(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The config with the quick mode's data and budget applied (a copy)."""
  c = copy.deepcopy(config)
  if c.ablations.quick:
    c.demo.data_root = c.ablations.quick_data_root
    c.demo.train_per_class = 3
    c.demo.test_per_class = 2
    c.demo.temporal_steps = c.demo.spatial_steps = c.ablations.quick_steps
    c.data.test_num_frames = 2
    c.data.test_num_crops = 1
    c.train.checkpoint_every_steps = c.ablations.quick_steps
  return c


def _run_config(config: ml_collections.ConfigDict, records: str, settings: dict[str, Any],
                name: str) -> ml_collections.ConfigDict:
  """The train_eval config of one row (the demo's stream settings, then the row's)."""
  modality = settings['modality']
  streams = synthetic_streams.stream_configs(config, records)
  c = copy.deepcopy(streams['spatial' if modality == 'rgb' else 'temporal'])
  c.eval.stream_name = name
  c.eval.score_train_split = False  # Only the test split's top-1 enters the table.
  if modality == 'flow':
    c.data.num_flow_fields = settings['fields']
    c.data.flow_mean_subtraction = settings['mean_subtraction']
    c.data.stacking = settings['stacking']
    c.data.flow_direction = settings['direction']
  else:
    c.model.dropout_rate = config.ablations.spatial_dropout
    c.optim.train_last_layer_only = settings['last_layer_only']
  return c


def pretrain_spatial(config: ml_collections.ConfigDict, workdir: str) -> str:
  """Trains the spatial net on the second synthetic set; returns its pretrained directory."""
  out = os.path.join(workdir, PRETRAINED_SUBDIR)
  if os.path.isdir(os.path.join(out, pretrained.VARIABLES_SUBDIR)):
    metric_writers.log(f'pretrained spatial net: {out} (already trained)')
    return out
  second = copy.deepcopy(config)
  second.demo.data_root = config.ablations.pretrain_data_root
  if config.ablations.quick:
    second.demo.data_root = config.ablations.quick_data_root + '_pretrain'
  # Another seed: other random colours, textures and positions of the same classes.
  second.unlock()
  second.seed = config.seed + config.ablations.pretrain_seed_offset
  second.lock()
  spec = synthetic_streams.synthetic_spec(second)
  videos = synthetic_videos.write_dataset(spec, os.path.join(second.demo.data_root, 'videos'))
  records = synthetic_streams.build_records(second, videos)
  c = _run_config(second, records, dict(modality='rgb', last_layer_only=False), 'pretrain_spatial')
  c.model.dropout_rate = config.ablations.spatial_dropout
  metric_writers.log(f'--- pretraining the spatial net on {records} ({c.train.num_train_steps} steps) ---')
  state, _ = synthetic_streams.train_and_evaluate(c, os.path.join(workdir, 'pretrain_spatial'),
                                                  evaluate=False)
  variables = jax.device_get({'params': state.params, 'batch_stats': state.batch_stats})
  if jax.process_index() == 0:
    pretrained.save_pretrained(variables, out, info={
        'source': f'twostream_jax ablations: spatial {c.model.name} trained on {records} '
                  f'(seed {second.seed}) for {c.train.num_train_steps} steps'}, overwrite=True)
  return out


def _has_backward_flow(records: str) -> bool:
  metadata = dataset_metadata.load_metadata(records)
  return bool(metadata.extra.get(record_schema.BACKWARD_FLOW_METADATA_KEY))


def markdown(rows: list[dict[str, Any]]) -> str:
  """The table of ablations.md: our top-1 beside the paper's."""
  lines = ['| Ablation | Setting | Top-1 here (%) | Paper, UCF101 split 1 (%) | Steps | Notes |',
           '| :--- | :--- | ---: | ---: | ---: | :--- |']
  for r in rows:
    top1 = '-' if r.get('top1') is None else f'{100 * r["top1"]:.1f}'
    paper = '-' if r.get('paper_top1') is None else f'{r["paper_top1"]:.1f}'
    lines.append(f'| {r["name"]} | {r["setting"]} | {top1} | {paper} | {r.get("steps", "-")} | '
                 f'{r.get("notes", "")} |')
  return '\n'.join(lines) + '\n'


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs every row (module docstring); returns what ablations.json holds."""
  start = time.perf_counter()
  config = _budget(config)
  rows_wanted = row_settings(config)
  spec = synthetic_streams.synthetic_spec(config)
  videos = synthetic_videos.write_dataset(spec, os.path.join(config.demo.data_root, 'videos'))
  records = synthetic_streams.build_records(config, videos)
  backward_records = None
  pretrained_dir = None
  rows = []
  for name, settings in rows_wanted:
    paper, setting = PAPER[name]
    row = {'name': name, 'setting': setting, 'paper_top1': paper, 'top1': None}
    row_records = records
    if settings.get('direction') == 'bidirectional':
      # The demo's records hold forward flow only: a second set of the same videos adds backward.
      if _has_backward_flow(records):
        backward_records = records
      elif backward_records is None:
        backward_records = synthetic_streams.build_records(
            config, videos, subdir=BACKWARD_RECORDS, backward_flow=True)
      row_records = backward_records
    if settings['modality'] == 'rgb' and settings['init'] == 'pretrained' and pretrained_dir is None:
      pretrained_dir = pretrain_spatial(config, workdir)
    c = _run_config(config, row_records, settings, name)
    if settings['modality'] == 'rgb' and settings['init'] == 'pretrained':
      c.model.init_from = pretrained_dir
    run_dir = os.path.join(workdir, name)
    metric_writers.log(f'--- {name}: {setting}, {c.train.num_train_steps} steps ---')
    row_start = time.perf_counter()
    _, metrics = synthetic_streams.train_and_evaluate(c, run_dir)
    metrics = metrics[c.data.eval_split]
    row.update(top1=metrics['top1'], top5=metrics['top5'], num_videos=metrics['num_videos'],
               steps=c.train.num_train_steps, seconds=round(time.perf_counter() - row_start, 1))
    rows.append(row)
  ceilings = synthetic_videos.accuracy_ceilings(spec)
  result = {
      'rows': rows,
      'ceilings': ceilings,
      'quick': bool(config.ablations.quick),
      'records': records,
      'protocol': f'{config.data.test_num_frames} frames x {config.data.test_num_crops} crops',
      'seconds': round(time.perf_counter() - start, 1),
      'devices': jax.device_count(),
      'load_average_1min': os.getloadavg()[0],
  }
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, ABLATIONS_JSON), 'w') as f:
      json.dump(result, f, indent=1)
    note = (f'\nSynthetic set ({spec.width}x{spec.height}, {spec.num_frames} frames; ceilings: '
            f'appearance only {100 * ceilings["appearance_only"]:.1f}%, motion only '
            f'{100 * ceilings["motion_only"]:.1f}%); {result["protocol"]} per test video; '
            f'{result["seconds"]:.0f} s on {jax.device_count()} device(s)'
            + (' (QUICK MODE: a check of the chain, not a result)' if result['quick'] else '') + '.\n')
    with open(os.path.join(workdir, ABLATIONS_MD), 'w') as f:
      f.write(markdown(rows) + note)
  metric_writers.log('\n' + markdown(rows))
  metric_writers.log(f'ablations: {os.path.join(workdir, ABLATIONS_JSON)} ({result["seconds"]:.0f} s)')
  return result
