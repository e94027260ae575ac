"""The bill: hours and storage of the real UCF101 split-1 run, from the rehearsal's per-item costs.

Each stage of the real run is a count of items (`real_run_items`: flow pairs, training examples,
evaluation views) times a cost per item. On this machine the costs are the rehearsal's measured
rates; on N accelerators they are the rates of `bench/gpu.sh`'s table when given
(`parse_gpu_table`), else `PUBLIC_DEVICE_RATES`, figures from public sources or estimates, each
labelled with where it comes from. Items are assumed to split evenly over the N devices.
Plain Python: no TensorFlow, no JAX.
"""

from __future__ import annotations

import re
from typing import Any, Optional

# UCF101 (Soomro et al. 2012, arXiv 1212.0402; ucfTrainTestlist): 13,320 clips of 101 classes; split 1
# lists 9,537 training and 3,783 test videos (trainlist01.txt, testlist01.txt).
UCF101_CLIPS = 13320
SPLIT1_TRAIN_VIDEOS = 9537
SPLIT1_TEST_VIDEOS = 3783
UCF101_CLASSES = 101
# Mean clip length 7.21 s (Soomro et al. 2012, Table 1); most clips are 25 fps, some 29.97, which
# gives about 2.48 million frames over the 13,320 clips (the ~2.5 million pairs of bench/RESULTS.md).
MEAN_FRAMES_PER_CLIP = 186
# The paper's schedules (configs/temporal.py, configs/spatial.py) and protocol (configs/default.py).
TEMPORAL_STEPS, SPATIAL_STEPS, BATCH = 80000, 20000, 256
TEST_VIEWS = 25 * 10
TRAIN_SCORE_VIEWS = 5 * 1  # eval.train_num_frames x eval.train_num_crops
VAL_EVERY, HELDOUT_FRACTION = 1000, 0.05  # clip-level validation, one view per held-out video
KEEP_CHECKPOINTS = 3

# Per-device rates when no bench/gpu.sh table is given: (items/s, source).
PUBLIC_DEVICE_RATES = {
    'flow_pairs': (250.0, 'estimate, not a measurement: bench/RESULTS.md ("Hours to build UCF101 '
                   'with TV-L1"), JAX TV-L1 at 341x256, batches of 64, one data-centre GPU'),
    'temporal_train': (2600.0 * 4.1 / 2.7, 'public figure scaled: ResNet-50 training at about '
                       '2,600 img/s on one A100 with mixed precision (timm benchmark.py, '
                       'huggingface/pytorch-image-models issue 1491), times 4.1 G / 2.7 G '
                       'multiply-adds (ResNet-50 / CNN-M-2048 on 224x224x20)'),
    'spatial_train': (2600.0 * 4.1 / 1.8, 'public figure scaled: the same ResNet-50 figure times '
                      '4.1 G / 1.8 G multiply-adds (ResNet-50 / ResNet-18)'),
    'temporal_eval': (3 * 2600.0 * 4.1 / 2.7, 'estimate: 3x the training rate above (a forward '
                      'pass is about a third of a training step)'),
    'spatial_eval': (3 * 2600.0 * 4.1 / 1.8, 'estimate: 3x the training rate above'),
}


def real_run_items() -> dict[str, float]:
  """Items of each stage of the real split-1 run (flow for every clip of every split)."""
  heldout = round(HELDOUT_FRACTION * SPLIT1_TRAIN_VIDEOS)
  return {
      'flow_pairs': UCF101_CLIPS * (MEAN_FRAMES_PER_CLIP - 1),
      'temporal_train': TEMPORAL_STEPS * BATCH + TEMPORAL_STEPS // VAL_EVERY * heldout,
      'spatial_train': SPATIAL_STEPS * BATCH + SPATIAL_STEPS // VAL_EVERY * heldout,
      'temporal_eval': SPLIT1_TEST_VIDEOS * TEST_VIEWS + SPLIT1_TRAIN_VIDEOS * TRAIN_SCORE_VIEWS,
      'spatial_eval': SPLIT1_TEST_VIDEOS * TEST_VIEWS + SPLIT1_TRAIN_VIDEOS * TRAIN_SCORE_VIEWS,
  }


ITEM_UNITS = {'flow_pairs': 'flow pairs', 'temporal_train': 'training examples (+ validation clips)',
              'spatial_train': 'training examples (+ validation clips)',
              'temporal_eval': 'views (25 x 10 test + 5 x 1 train)',
              'spatial_eval': 'views (25 x 10 test + 5 x 1 train)'}


def parse_gpu_table(text: str) -> dict[str, tuple[float, str]]:
  """Per-device rates from the table that `bash bench/gpu.sh` prints (its stdout saved to a file).

  Returns:
    stage -> (items/s, source) for the rows found: the best JAX TV-L1 batch, cnn_m_2048 on
    224x224x20 and resnet18 on 224x224x3 (train step and forward, JAX).
  """
  rates: dict[str, tuple[float, str]] = {}
  pairs = [float(m.group(1)) for m in re.finditer(r'\|\s*TV-L1 JAX B=[^|]*\|\s*([\d.]+) pairs/s', text)]
  if pairs:
    rates['flow_pairs'] = (max(pairs), 'bench/gpu.sh: best JAX TV-L1 batch')
  for model, what, prefix in (('cnn_m_2048', 'flow 224x224x20', 'temporal'),
                              ('resnet18', 'RGB 224x224x3', 'spatial')):
    for kind, stage in (('train step', 'train'), ('fwd', 'eval')):
      m = re.search(rf'\|\s*{model} {re.escape(what)} {kind} \(img/s, JAX / torch\)\s*\|\s*([\d.]+)',
                    text)
      if m:
        rates[f'{prefix}_{stage}'] = (float(m.group(1)), f'bench/gpu.sh: {model} {what} {kind}')
  return rates


def bill(measured: dict[str, float], measured_bytes: dict[str, float], *, accelerators: int,
         gpu_table: Optional[str] = None) -> dict[str, Any]:
  """The real run's hours per stage on this machine and on `accelerators` devices, and its storage.

  Args:
    measured: stage -> items/s measured here (`real_run_items`' keys; missing stages are skipped).
    measured_bytes: 'record_bytes_per_frame' (records bytes / frames stored),
      'temporal_checkpoint', 'spatial_checkpoint' (bytes of one checkpoint).
    accelerators: N.
    gpu_table: the text of a bench/gpu.sh run, or None for `PUBLIC_DEVICE_RATES`.
  """
  items = real_run_items()
  device = dict(PUBLIC_DEVICE_RATES)
  if gpu_table:
    device.update(parse_gpu_table(gpu_table))
  rows = []
  for stage, count in items.items():
    here = measured.get(stage)
    rate, source = device[stage]
    rows.append({'stage': stage, 'items': int(count), 'unit': ITEM_UNITS[stage],
                 'here_items_per_s': here,
                 'here_hours': count / here / 3600 if here else None,
                 'device_items_per_s': rate, 'device_source': source,
                 'devices_hours': count / (rate * accelerators) / 3600})
  frames = UCF101_CLIPS * MEAN_FRAMES_PER_CLIP
  storage = {
      'records': frames * measured_bytes.get('record_bytes_per_frame', 0.0),
      'checkpoints': KEEP_CHECKPOINTS * (measured_bytes.get('temporal_checkpoint', 0.0)
                                         + measured_bytes.get('spatial_checkpoint', 0.0)),
  }
  return {
      'ucf101_split1': {'clips': UCF101_CLIPS, 'train_videos': SPLIT1_TRAIN_VIDEOS,
                        'test_videos': SPLIT1_TEST_VIDEOS, 'mean_frames_per_clip': MEAN_FRAMES_PER_CLIP,
                        'frames': frames},
      'accelerators': accelerators,
      'device_rates_from': 'bench/gpu.sh table' if gpu_table else 'public figures and estimates',
      'rows': rows,
      'here_total_hours': sum(r['here_hours'] or 0.0 for r in rows),
      'devices_total_hours': sum(r['devices_hours'] for r in rows),
      'storage_bytes': storage,
  }


def _hours(h: float) -> str:
  return f'{h:.0f}' if h >= 10 else f'{h:.2f}' if h >= 0.1 else f'{h:.3f}'


def markdown(b: dict[str, Any]) -> str:
  """The bill as a markdown table."""
  n = b['accelerators']
  lines = [f'| stage (UCF101 split 1) | items | this machine: items/s | hours | {n} accelerator(s): '
           'items/s each | hours | device rate from |', '| :-- | --: | --: | --: | --: | --: | :-- |']
  for r in b['rows']:
    here = f'{r["here_items_per_s"]:.2f}' if r['here_items_per_s'] else '-'
    hours = _hours(r['here_hours']) if r['here_hours'] else '-'
    lines.append(f'| {r["stage"]} ({r["unit"]}) | {r["items"]:,} | {here} | {hours} | '
                 f'{r["device_items_per_s"]:.0f} | {_hours(r["devices_hours"])} | {r["device_source"]} |')
  lines.append(f'| total | | | {_hours(b["here_total_hours"])} | | {_hours(b["devices_total_hours"])} | |')
  s = b['storage_bytes']
  flow_train = next(r for r in b['rows'] if r['stage'] == 'temporal_train')
  lines += ['', f'The device rows count the networks and TV-L1 only: temporal training at '
            f'{flow_train["device_items_per_s"] * n:,.0f} examples/s over the {n} devices needs '
            f'{20 * flow_train["device_items_per_s"] * n:,.0f} flow-plane JPEG decodes/s (2L = 20 an '
            'example) from the hosts\' input pipelines.']
  lines.append('')
  lines.append(f'Storage: records {s["records"] / 1e9:.1f} GB '
               f'({b["ucf101_split1"]["frames"]:,} frames at the rehearsal\'s bytes per frame), '
               f'checkpoints {s["checkpoints"] / 1e9:.1f} GB ({KEEP_CHECKPOINTS} kept per stream).')
  return '\n'.join(lines)
