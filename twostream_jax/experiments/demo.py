"""The demo: synthetic action videos -> records -> both streams -> paper protocol -> fusion.

`python -m twostream_jax.main --config configs/demo.py` runs, in `<workdir>`:
  1. synthetic videos in `demo.data_root/videos` and their records (`demo.flow_algorithm`) in
     `demo.data_root/records`, each when absent (`demo.records_only=True` stops here);
  2. the spatial stream (RGB) and the temporal stream (flow, mean subtraction per field) trained
     from scratch, and with `demo.compare_mean_subtraction` a temporal stream without it;
  3. each evaluated on the test split with the paper's protocol and scored on the training split;
  4. fusion of spatial + temporal (averaging, weights fitted on training scores, linear SVM);
  5. `results.json` and `results.md`: each stream and each fusion, beside the accuracy ceilings the
     synthetic classes allow;
  6. prediction of three test videos (of different classes) from their .avi files, fused with the
     fitted SVM: `predictions.json` and one picture per video in `predictions/`, linked from
     results.md. Every step skips work already done, so rerunning the command is cheap.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import ml_collections

from twostream_jax.evaluation import evaluate
from twostream_jax.evaluation import fusion_run
from twostream_jax.evaluation import results_table
from twostream_jax.experiments import synthetic_streams
from twostream_jax.inference import video_prediction
from twostream_jax.prep import synthetic_videos
from twostream_jax.train import metric_writers


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
  content = video_prediction.run(picked, spatial_workdir=os.path.join(workdir, 'spatial'),
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


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs the whole chain (module docstring); returns what results.json holds."""
  start = time.perf_counter()
  spec = synthetic_streams.synthetic_spec(config)
  videos = synthetic_videos.write_dataset(spec, os.path.join(config.demo.data_root, 'videos'))
  ceilings = synthetic_videos.accuracy_ceilings(spec)
  metric_writers.log(f'synthetic videos: {videos["num_train"]} train, {videos["num_test"]} test, '
                     f'classes {videos["class_names"]}; ceilings {ceilings}')
  records = synthetic_streams.build_records(config, videos)
  if config.demo.records_only:
    metric_writers.log(f'demo.records_only: stopping after the records in {records}')
    return {'records': records, 'videos': videos['videos_dir']}

  streams = synthetic_streams.stream_configs(config, records)
  metrics = {}
  for name, c in streams.items():
    stream_dir = os.path.join(workdir, name)
    metric_writers.log(f'--- {name}: {c.data.modality}, {c.train.num_train_steps} steps ---')
    _, metrics[name] = synthetic_streams.train_and_evaluate(c, stream_dir)
  eval_split, train_split = config.data.eval_split, config.data.train_split

  def scores(name, split):
    return os.path.join(evaluate.split_dir(os.path.join(workdir, name), split), 'scores.npz')

  fused = fusion_run.run_fusion(
      [scores('spatial', train_split), scores('temporal', train_split)],
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
