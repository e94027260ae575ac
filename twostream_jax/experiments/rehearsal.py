r"""The rehearsal: the paper's configurations at their own shapes on UCF101-shaped data, and the bill.

  python -m twostream_jax.experiments.rehearsal --quick [--workdir runs/rehearsal]

runs each stage as the command a user types, in a child process whose time and peak memory are
measured (`stage_runner`): UCF101-shaped videos (tools/make_synthetic_videos.py --ucf101_shaped),
their records with TV-L1 in JAX at short side 256 (tools/make_tfrecords.py), a randomly initialised
torchvision ResNet-18 saved as .pth and converted (tools/convert_torchvision.py), configs/temporal.py
and configs/spatial.py trained a few steps with validation and a checkpoint (`python -m
twostream_jax.main`), each evaluated with the 25 x 10 protocol at 224 on test videos and scored on
training videos, SVM fusion at the class count (`python -m twostream_jax.fuse`) and prediction of
raw test videos (`python -m twostream_jax.predict`). Before starting it checks that the eval and
training inputs fit (`rehearsal_limits`). It writes `rehearsal.json` and `rehearsal.md` (the stage
table and the bill of the real UCF101 split-1 run, `rehearsal_bill`) and prints both.
Only step counts, batch sizes and the amount of data are scaled down (`--quick` says how); see
docs/rehearsal.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from typing import Any

from twostream_jax.experiments import rehearsal_bill
from twostream_jax.experiments import rehearsal_limits
from twostream_jax.experiments import stage_runner
from twostream_jax.prep import ucf101_shaped

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# --quick: what it scales down, and to what (the defaults without it in brackets).
QUICK = {'groups': '1,8', 'clip_frames': 5, 'steps': 6, 'batch': 8, 'eval_videos': 4}
FULL = {'groups': '1,8', 'clip_frames': 0, 'steps': 40, 'batch': 16, 'eval_videos': 40}


def parse_args(argv: list[str]) -> argparse.Namespace:
  p = argparse.ArgumentParser(prog='python -m twostream_jax.experiments.rehearsal',
                              description=__doc__.split('\n\n')[0])
  p.add_argument('--workdir', default='runs/rehearsal')
  p.add_argument('--quick', action='store_true', help='Short clips, few steps, few eval videos: '
                 + ', '.join(f'{k}={v} (else {FULL[k]})' for k, v in QUICK.items()))
  p.add_argument('--num_classes', type=int, default=101)
  p.add_argument('--groups', help='Groups written per class (1-7: split-1 test; 8-25 train).')
  p.add_argument('--clip_frames', type=int, help='Frames per clip; 0: lengths drawn in 3-10 s.')
  p.add_argument('--long_clip_frames', type=int, default=300,
                 help='The first test video of class 0 has this many frames (0: none).')
  p.add_argument('--steps', type=int, help='Training steps of each stream.')
  p.add_argument('--batch', type=int, help='Global training batch of each stream.')
  p.add_argument('--eval_videos', type=int, help='Test videos under the 25 x 10 protocol (the '
                 'first of the split: the long video first), and training videos scored with 5 x 1 '
                 'views for fitting fusion (the first as many).')
  p.add_argument('--predict_videos', type=int, default=3)
  p.add_argument('--width', type=int, default=320)
  p.add_argument('--height', type=int, default=240)
  p.add_argument('--short_side', type=int, default=256)
  p.add_argument('--crop', type=int, default=224, help='Network input side of both configs.')
  p.add_argument('--temporal_model', default='', help='Override configs/temporal.py\'s model '
                 '(tests only).')
  p.add_argument('--spatial_model', default='', help='Override configs/spatial.py\'s resnet18; '
                 'another model trains from scratch without the conversion (tests only).')
  p.add_argument('--flow_algorithm', default='tvl1_jax', help='Flow of the records (and of '
                 'predict, which follows the records); other than tvl1_jax for tests only.')
  p.add_argument('--num_workers', type=int, default=2)
  p.add_argument('--accelerators', type=int, default=8, help='N for the bill.')
  p.add_argument('--gpu_table', default='', help='Saved stdout of `bash bench/gpu.sh` on the '
                 'accelerator: its rates replace the public figures in the bill.')
  p.add_argument('--memory_gb', type=float, default=0.0,
                 help='Memory the run may use (0: what psutil reports available, else 8 GB).')
  args = p.parse_args(argv)
  for key, value in (QUICK if args.quick else FULL).items():
    if getattr(args, key) is None:
      setattr(args, key, value)
  return args


def _available_memory(args) -> int:
  if args.memory_gb > 0:
    return int(args.memory_gb * 1e9)
  if stage_runner.psutil is not None:
    return int(stage_runner.psutil.virtual_memory().available)
  return int(8e9)


def _main_command(config: str, workdir: str, records: str, args, extra: list[str]) -> list[str]:
  """`python -m twostream_jax.main` with the config's own shapes. eval_batch_size (views a batch)
  becomes the training batch: validation and the training split's 5 x 1 scores batch
  eval_batch_size // views videos (rehearsal_limits), while the 25 x 10 protocol still sends one
  video's 250 views a batch."""
  return [sys.executable, '-m', 'twostream_jax.main', f'--config={config}', f'--workdir={workdir}',
          f'--config.data.data_dirs={records}', f'--config.data.crop_size={args.crop}',
          f'--config.train.eval_batch_size={args.batch}', *extra]


def _examples_per_s(lines) -> float | None:
  rates = [float(m.group(1)) for _, line in lines
           for m in [re.search(r'examples_per_s ([0-9.eE+-]+)', line)] if m]
  return rates[-1] if rates else None


def run(args: argparse.Namespace) -> dict[str, Any]:
  """Runs every stage (module docstring); returns what rehearsal.json holds."""
  start = time.perf_counter()
  work = os.path.abspath(args.workdir)
  logs = os.path.join(work, 'logs')
  groups = tuple(int(g) for g in args.groups.split(','))
  spec = ucf101_shaped.Spec(num_classes=args.num_classes, groups=groups, width=args.width,
                            height=args.height, num_frames=args.clip_frames,
                            long_clip_frames=args.long_clip_frames)
  clips = ucf101_shaped.clips(spec)
  lengths = {v: ucf101_shaped.clip_length(spec, *v) for v in clips}
  test_groups = ucf101_shaped.UCF101_TEST_GROUPS[1]
  num_test = sum(v[1] in test_groups for v in clips)
  num_train = len(clips) - num_test
  if not num_test or not num_train:
    raise SystemExit(f'--groups={args.groups}: need a group in 1-7 (tested in split 1) and one '
                     'in 8-25 (trained on)')
  frame_hw = (args.short_side, round(args.short_side * args.width / args.height))
  shapes = {
      modality: rehearsal_limits.StreamShape(modality, 10, args.crop, frame_hw,
                                             eval_batch_size=args.batch, train_batch=args.batch)
      for modality in ('flow', 'rgb')
  }
  memory = _available_memory(args)
  limits = {name: rehearsal_limits.check_fits(name, shapes[modality], max(lengths.values()), memory)
            for name, modality in (('temporal', 'flow'), ('spatial', 'rgb'))}
  print(f'rehearsal: {spec.num_classes} classes, groups {list(groups)}, {len(clips)} videos '
        f'({num_train} train1, {num_test} test1), {sum(lengths.values())} frames; '
        f'{args.steps} steps of batch {args.batch}; 25 x 10 on {args.eval_videos} test videos; '
        f'inputs fit in {memory / 1e9:.1f} GB', flush=True)

  stages: list[dict[str, Any]] = []

  def stage(name, command, items, unit, bytes_path=None, steady_rate=None):
    r = stage_runner.run_stage(name, command, logs, cwd=REPO_ROOT)
    items_per_s = steady_rate(r.lines) if steady_rate else None
    on_disk = stage_runner.folder_bytes(bytes_path) if bytes_path and os.path.isdir(bytes_path) else (
        os.path.getsize(bytes_path) if bytes_path and os.path.isfile(bytes_path) else 0)
    row = {'stage': name, 'seconds': round(r.seconds, 1), 'peak_rss_bytes': r.peak_rss_bytes,
           'bytes_on_disk': on_disk, 'items': items, 'unit': unit,
           'items_per_s': items_per_s or (items / r.seconds if r.seconds > 0 else None),
           'rate_note': 'steady (the last logged window)' if items_per_s else
                        'whole stage (start-up and compile included)',
           'log': r.log, 'rss_method': r.rss_method}
    stages.append(row)
    print(f'== {name}: {row["seconds"]:.0f} s, peak RSS {r.peak_rss_bytes / 1e9:.2f} GB, '
          f'{on_disk / 1e6:.0f} MB on disk, {row["items_per_s"]:.2f} {unit}/s', flush=True)
    return r

  data = os.path.join(work, 'data')
  videos = os.path.join(data, 'ucf101_shaped')
  stage('videos', [sys.executable, 'tools/make_synthetic_videos.py', '--ucf101_shaped',
                   f'--output_dir={videos}', f'--num_classes={spec.num_classes}',
                   f'--groups={args.groups}', f'--num_frames={spec.num_frames}',
                   f'--long_clip_frames={spec.long_clip_frames}', f'--width={spec.width}',
                   f'--height={spec.height}'],
        sum(lengths.values()), 'frames', os.path.join(videos, 'videos'))
  records = os.path.join(data, 'records')
  pairs = sum(n - 1 for n in lengths.values())
  stage('records', [sys.executable, 'tools/make_tfrecords.py', f'--videos_dir={videos}/videos',
                    f'--splits_dir={videos}/splits', f'--output_dir={records}',
                    f'--flow_algorithm={args.flow_algorithm}', f'--short_side={args.short_side}',
                    f'--num_workers={args.num_workers}', '--noprogress'],
        pairs, 'flow pairs', records)

  spatial_extra = []
  if not args.spatial_model or args.spatial_model == 'resnet18':
    weights = os.path.join(work, 'weights')
    pth = os.path.join(weights, 'resnet18_random.pth')
    stage('torch_weights', [sys.executable, '-c', (
        'import os, sys, torch, torchvision; torch.manual_seed(0); '
        'os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True); '
        'torch.save(torchvision.models.resnet18().state_dict(), sys.argv[1])'), pth],
          1, 'models', pth)
    converted = os.path.join(weights, f'resnet18_{spec.num_classes}')
    stage('convert', [sys.executable, 'tools/convert_torchvision.py', '--arch=resnet18',
                      f'--weights={pth}', f'--num_classes={spec.num_classes}',
                      f'--output_dir={converted}', '--overwrite'], 1, 'models', converted)
    spatial_extra = [f'--config.model.init_from={converted}']
  else:
    spatial_extra = [f'--config.model.name={args.spatial_model}']

  steps, batch = args.steps, args.batch
  train_flags = [
      '--config.mode=train', f'--config.train.num_train_steps={steps}',
      f'--config.train.global_batch_size={batch}',
      f'--config.train.log_every_steps={max(1, steps // 2)}',
      f'--config.train.val_every_steps={steps}', f'--config.train.checkpoint_every_steps={steps}']
  eval_videos = min(args.eval_videos, num_test)
  runs = {}
  for name, config, extra in (
      ('temporal', 'configs/temporal.py',
       [f'--config.model.name={args.temporal_model}'] if args.temporal_model else []),
      ('spatial', 'configs/spatial.py', spatial_extra)):
    run_dir = runs[name] = os.path.join(work, name)
    stage(f'{name}_train', _main_command(config, run_dir, records, args, train_flags + extra),
          steps * batch, 'examples', os.path.join(run_dir, 'checkpoints'), _examples_per_s)
    # The 25 x 10 protocol on the first test videos and 5 x 1 views of as many training videos
    # (for fitting fusion): one `main --config.mode=eval`, eval.max_videos bounding both splits.
    stage(f'{name}_eval', _main_command(config, run_dir, records, args, extra + [
        '--config.mode=eval', f'--config.eval.max_videos={eval_videos}']),
          eval_videos * 250 + min(eval_videos, num_train) * 5, 'views',
          os.path.join(run_dir, 'eval'))

  def scores(split):
    return ','.join(os.path.join(runs[n], 'eval', split, 'scores.npz') for n in ('spatial', 'temporal'))

  fusion = os.path.join(work, 'fusion')
  stage('fuse', [sys.executable, '-m', 'twostream_jax.fuse', f'--train_scores={scores("train1")}',
                 f'--test_scores={scores("test1")}', f'--output_dir={fusion}'],
        eval_videos, 'test videos', fusion)
  test_lines = open(os.path.join(videos, 'splits', 'testlist01.txt')).read().split()
  short = [t for t in test_lines if lengths[_clip_of(spec, t)] < max(lengths.values())
           ] or test_lines
  picked = [os.path.join(videos, 'videos', t) for t in short[:args.predict_videos]]
  predictions = os.path.join(work, 'predictions.json')
  stage('predict', [sys.executable, '-m', 'twostream_jax.predict', f'--spatial_workdir={runs["spatial"]}',
                    f'--temporal_workdir={runs["temporal"]}',
                    f'--fusion={os.path.join(fusion, "fusion_svm.npz")}', f'--output={predictions}',
                    *picked],
        len(picked), 'videos', predictions)

  measured = {'flow_pairs': _rate(stages, 'records'), 'temporal_train': _rate(stages, 'temporal_train'),
              'spatial_train': _rate(stages, 'spatial_train'),
              'temporal_eval': _rate(stages, 'temporal_eval'),
              'spatial_eval': _rate(stages, 'spatial_eval')}
  frames_stored = sum(lengths.values())
  measured_bytes = {'record_bytes_per_frame': _bytes(stages, 'records') / frames_stored,
                    'temporal_checkpoint': _bytes(stages, 'temporal_train'),
                    'spatial_checkpoint': _bytes(stages, 'spatial_train')}
  gpu_table = open(args.gpu_table).read() if args.gpu_table else None
  the_bill = rehearsal_bill.bill(measured, measured_bytes, accelerators=args.accelerators,
                                 gpu_table=gpu_table)
  result = {
      'command': ' '.join(['python -m twostream_jax.experiments.rehearsal'] + sys.argv[1:]),
      'quick': args.quick,
      'scaled_down': {**{k: getattr(args, k) for k in QUICK},
                      'train.eval_batch_size': args.batch},
      'spec': spec.to_dict(), 'videos': len(clips), 'train1_videos': num_train,
      'test1_videos': num_test, 'longest_video_frames': max(lengths.values()),
      'limits': limits, 'memory_bytes_checked_against': memory,
      'stages': stages,
      'peak_rss_bytes': max(s['peak_rss_bytes'] for s in stages),
      'seconds': round(time.perf_counter() - start, 1),
      'bill': the_bill,
  }
  md = markdown(result)
  with open(os.path.join(work, 'rehearsal.json'), 'w') as f:
    json.dump(result, f, indent=1)
  with open(os.path.join(work, 'rehearsal.md'), 'w') as f:
    f.write(md + '\n')
  print('\n' + md)
  print(f'\nrehearsal: {result["seconds"]:.0f} s; {work}/rehearsal.json, rehearsal.md')
  return result


def _clip_of(spec: ucf101_shaped.Spec, relpath: str) -> tuple[int, int, int]:
  m = re.search(r'v_(\w+)_g(\d+)_c(\d+)\.avi$', relpath)
  return ucf101_shaped.class_names(spec).index(m.group(1)), int(m.group(2)), int(m.group(3))


def _rate(stages, name):
  return next((s['items_per_s'] for s in stages if s['stage'] == name), None)


def _bytes(stages, name):
  return next((s['bytes_on_disk'] for s in stages if s['stage'] == name), 0)


def markdown(result: dict[str, Any]) -> str:
  """The stage table and the bill, as rehearsal.md holds them (also printed)."""
  lines = ['| stage | seconds | peak RSS (GB) | on disk (MB) | items | items/s |',
           '| :-- | --: | --: | --: | --: | --: |']
  for s in result['stages']:
    rate = f'{s["items_per_s"]:.2f}' if s['items_per_s'] else '-'
    lines.append(f'| {s["stage"]} | {s["seconds"]:.0f} | {s["peak_rss_bytes"] / 1e9:.2f} | '
                 f'{s["bytes_on_disk"] / 1e6:.0f} | {s["items"]:,} {s["unit"]} | {rate} |')
  lines.append(f'| whole rehearsal | {result["seconds"]:.0f} | {result["peak_rss_bytes"] / 1e9:.2f} '
               '| | | |')
  lines += ['', 'Scaled down: ' + ', '.join(f'{k}={v}' for k, v in result['scaled_down'].items())
            + f'; longest video {result["longest_video_frames"]} frames.', '',
            rehearsal_bill.markdown(result['bill'])]
  return '\n'.join(lines)


def main(argv=None) -> None:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  try:
    run(args)
  except (rehearsal_limits.LimitError, stage_runner.StageError, ValueError) as e:
    sys.exit(f'rehearsal: {e}')


if __name__ == '__main__':
  main()
