"""The main job on synthetic action videos: videos -> records -> both streams -> paper protocol -> fusion.

`python -m twostream_jax.main --config configs/demo.py` runs, in `<workdir>`:
  1. synthetic videos (twostream_jax.prep.synthetic_videos) in `demo.data_root/videos`, if absent;
  2. their records (the dataset writer of `tools/make_tfrecords.py`, `demo.flow_algorithm`) in
     `demo.data_root/records` (`--config.demo.records_only=True` stops here);
  3. the spatial stream (RGB) and the temporal stream (flow, mean subtraction per field) trained
     from scratch, and with `demo.compare_mean_subtraction` a temporal stream without it;
  4. each evaluated on the test split with the paper's protocol and scored on the training split;
  5. fusion of spatial + temporal (averaging, weights fitted on training scores, linear SVM);
  6. `<workdir>/results.json` and `results.md`: each stream and each fusion, next to the
     accuracy ceilings the synthetic classes allow;
  7. `python -m twostream_jax.predict` on three test videos (of different classes) from their .avi
     files, flow computed on the fly, fused with the fitted SVM: `<workdir>/predictions.json` and
     one picture per video in `<workdir>/predictions/`, linked from results.md.
Every step skips work that is already done (videos, records, finished checkpoints), so rerunning
the command is cheap.
"""

from __future__ import annotations

import copy
import json
import os
import time
from typing import Any

import ml_collections

from twostream_jax import fuse
from twostream_jax import predict
from twostream_jax.data import record_schema
from twostream_jax.evaluation import evaluate as evaluation
from twostream_jax.evaluation import results_table
from twostream_jax.prep import dataset_writer
from twostream_jax.prep import shard_writer
from twostream_jax.prep import synthetic_videos
from twostream_jax.train import loop as train_loop
from twostream_jax.train import metric_writers

def synthetic_spec(config: ml_collections.ConfigDict) -> synthetic_videos.SyntheticSpec:
  d = config.demo
  return synthetic_videos.SyntheticSpec(
      height=d.video_height, width=d.video_width, num_frames=d.video_frames,
      train_per_class=d.train_per_class, test_per_class=d.test_per_class,
      camera_pan=d.camera_pan, seed=config.seed)


def build_records(config: ml_collections.ConfigDict, videos: dict[str, Any], *,
                  subdir: str = 'records', backward_flow: bool = False) -> str:
  """Builds the videos' records with the dataset writer (a no-op when complete); returns their folder.

  `backward_flow` also stores flow(i+1 -> i) (make_tfrecords --backward_flow), in `subdir`.
  """
  records = os.path.join(config.demo.data_root, subdir)
  if os.path.exists(os.path.join(records, 'twostream_metadata.json')):
    metric_writers.log(f'records: {records} (already built)')
    return records
  options = dataset_writer.WriterOptions(
      source_root=os.path.abspath(videos['videos_dir']), source_kind='videos',
      splits_dir=os.path.abspath(videos['splits_dir']), output_dir=os.path.abspath(records),
      dataset_name=dataset_writer.default_dataset_name(records),
      settings=shard_writer.EncodeSettings(
          flow_algorithm=config.demo.flow_algorithm,
          flow_bound_px=record_schema.DEFAULT_FLOW_BOUND_PX, short_side=0, max_frames=0,
          frame_stride=1, jpeg_quality=record_schema.DEFAULT_JPEG_QUALITY,
          backward_flow=backward_flow),
      num_workers=config.demo.num_workers, command_line='twostream_jax.demo (build_records)')
  metric_writers.log(f'records: {records} ({config.demo.flow_algorithm} flow, '
                     f'{config.demo.num_workers} workers)')
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # inherited by the workers
  summary = dataset_writer.run(options, dataset_writer.prepare(options))
  metric_writers.log(dataset_writer.format_summary(summary))
  if not summary.complete:
    raise RuntimeError(f'the demo records in {records} are incomplete; see {records}/failures.json')
  return records


def stream_configs(config: ml_collections.ConfigDict, records: str) -> dict[str, ml_collections.ConfigDict]:
  """name -> config of each stream the demo trains."""
  base = copy.deepcopy(config)
  base.unlock()
  base.mode = 'train_eval'
  base.lock()
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


def predict_examples(videos: dict[str, Any], workdir: str, md_path: str) -> dict[str, Any]:
  """Predicts three test videos of different classes from their files; links their pictures in results.md.

  Returns:
    {'output': predictions.json path, 'pictures': PNG paths, 'top1': predicted fused class per video}.
  """
  with open(os.path.join(videos['splits_dir'], 'testlist01.txt')) as f:
    tests = [line.split()[0] for line in f if line.strip()]
  names = videos['class_names']
  # The first test video of the first, middle and last class: different patterns, both motions.
  wanted = [names[i] for i in sorted({0, len(names) // 2, len(names) - 1})]
  picked = [os.path.join(videos['videos_dir'], next(t for t in tests if t.split('/')[0] == name))
            for name in wanted if any(t.split('/')[0] == name for t in tests)]
  output = os.path.join(workdir, 'predictions.json')
  metric_writers.log(f'--- predict: {len(picked)} test videos from their files ---')
  content = predict.run(picked, spatial_workdir=os.path.join(workdir, 'spatial'),
                        temporal_workdir=os.path.join(workdir, 'temporal'),
                        fusion_path=os.path.join(workdir, 'fusion', 'fusion_svm.npz'),
                        output=output, render_dir=os.path.join(workdir, 'predictions'),
                        num_workers=0)
  lines = ['', '## Predictions from video files', '',
           '`python -m twostream_jax.predict` on three test videos (flow computed on the fly, '
           'linear SVM fusion); `predictions.json` has every score.', '']
  for v in (v for v in content['videos'] if v['ok']):
    fused = v['predictions']['fusion']['top_k'][0]
    name = os.path.relpath(v['path'], videos['videos_dir'])
    lines += [f'- `{name}`: {fused["class"]} ({fused["prob"]:.2f})', '',
              f'  ![{name}]({os.path.relpath(v["render"], workdir)})', '']
  with open(md_path, 'a') as f:
    f.write('\n'.join(lines))
  done = [v for v in content['videos'] if v['ok']]
  return {'output': output, 'pictures': [v['render'] for v in done], 'failed': content['num_failed'],
          'top1': {v['path']: v['predictions']['fusion']['top_k'][0]['class'] for v in done}}


def run_demo(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs the whole chain (module docstring); returns what results.json holds."""
  start = time.perf_counter()
  spec = synthetic_spec(config)
  videos = synthetic_videos.write_dataset(spec, os.path.join(config.demo.data_root, 'videos'))
  ceilings = synthetic_videos.accuracy_ceilings(spec)
  metric_writers.log(f'synthetic videos: {videos["num_train"]} train, {videos["num_test"]} test, '
                     f'classes {videos["class_names"]}; ceilings {ceilings}')
  records = build_records(config, videos)
  if config.demo.records_only:
    metric_writers.log(f'demo.records_only: stopping after the records in {records}')
    return {'records': records, 'videos': videos['videos_dir']}

  streams = stream_configs(config, records)
  metrics = {}
  for name, c in streams.items():
    stream_dir = os.path.join(workdir, name)
    metric_writers.log(f'--- {name}: {c.data.modality}, {c.train.num_train_steps} steps ---')
    state = train_loop.train(c, stream_dir)
    metrics[name] = evaluation.evaluate_run(c, stream_dir, state)
  eval_split, train_split = config.data.eval_split, config.data.train_split

  def scores(name, split):
    return os.path.join(evaluation.split_dir(os.path.join(workdir, name), split), 'scores.npz')

  fused = fuse.run_fusion([scores('spatial', train_split), scores('temporal', train_split)],
                          [scores('spatial', eval_split), scores('temporal', eval_split)],
                          os.path.join(workdir, 'fusion'), seed=config.seed)
  rows = [dict(name=name, **{k: m[eval_split][k] for k in
                             ('top1', 'top5', 'mean_class_accuracy', 'num_videos')})
          for name, m in metrics.items()]
  rows += [r for r in fused['rows'] if r['name'] not in metrics]
  md_path, json_path = results_table.write_results_table(rows, workdir)
  results = {
      'rows': rows,
      'ceilings': ceilings,
      'classes': videos['class_names'],
      'camera_pan': spec.camera_pan,
      'flow_algorithm': config.demo.flow_algorithm,
      'split': eval_split,
      'protocol': f'{config.data.test_num_frames} frames x {config.data.test_num_crops} crops',
      'seconds': round(time.perf_counter() - start, 1),
  }
  results['predictions'] = predict_examples(videos, workdir, md_path)
  with open(json_path, 'w') as f:
    json.dump(results, f, indent=1)
  metric_writers.log('\n' + results_table.markdown_table(rows))
  metric_writers.log(f'ceilings on this synthetic set: appearance only '
                     f'{100 * ceilings["appearance_only"]:.1f}%, motion only '
                     f'{100 * ceilings["motion_only"]:.1f}%, both {100 * ceilings["both"]:.1f}%')
  metric_writers.log(f'results: {json_path}, {md_path} ({results["seconds"]:.0f} s)')
  return results
