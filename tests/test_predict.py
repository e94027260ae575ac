"""`python -m twostream_jax.predict` (`inference`) on raw video files against evaluation on records.

A demo-like synthetic set (6 classes, 48x64, 10 frames, camera panning; 2 training and 2 test videos
per class) gets records with DIS flow, a tiny spatial and a tiny temporal stream trained a few steps
(accuracy does not matter here, agreement does), the paper's protocol on the test split
(`evaluate_run`: 3 frames or stacks x 10 crops) and fusion (`fusion_run.run_fusion`). Then predict reads
the test videos' .avi files, decodes them, recomputes DIS flow and scores them, and must agree with
the evaluation's per-video scores from the records.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from twostream_jax.data import dataset_metadata
from twostream_jax.data import protocol_positions
from twostream_jax.data import record_schema
from twostream_jax.data import workdir_metadata
from twostream_jax.evaluation import evaluate
from twostream_jax.evaluation import fusion_run
from twostream_jax.evaluation import score_files
from twostream_jax.inference import clip_reader
from twostream_jax.inference import stream_predictor
from twostream_jax.inference import video_prediction
from twostream_jax.prep import dataset_writer
from twostream_jax.prep import shard_writer
from twostream_jax.prep import synthetic_videos
from twostream_jax.train import loop as train_loop
from twostream_jax.train import protocol_evaluation
from tests import record_fixtures
from tests.config_fixtures import REPO_ROOT, spec_of, tiny_train_config

SPEC = synthetic_videos.SyntheticSpec(height=48, width=64, num_frames=10, train_per_class=2,
                                      test_per_class=2, camera_pan=True)


def _train_and_evaluate(records: str, workdir: str, modality: str):
  config = tiny_train_config(records, modality)
  config.data.test_num_frames = 3
  config.data.test_num_crops = 10
  config.train.eval_batch_size = 16
  config.eval.train_num_frames = 1
  state = train_loop.train(config, spec_of(config), workdir)
  protocol_evaluation.evaluate_run(config, spec_of(config), workdir, state)
  return config


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """Videos, records, two trained and evaluated streams, and the fitted fusions."""
  root = tmp_path_factory.mktemp('predict')
  videos = synthetic_videos.write_dataset(SPEC, str(root / 'synthetic'))
  records = str(root / 'records')
  options = dataset_writer.WriterOptions(
      source_root=videos['videos_dir'], source_kind='videos', splits_dir=videos['splits_dir'],
      output_dir=records, dataset_name='synthetic',
      settings=shard_writer.EncodeSettings(
          flow_algorithm='dis', flow_bound_px=record_schema.DEFAULT_FLOW_BOUND_PX, short_side=0,
          max_frames=0, frame_stride=1, jpeg_quality=record_schema.DEFAULT_JPEG_QUALITY),
      num_workers=1, progress=False)
  assert dataset_writer.run(options, dataset_writer.prepare(options)).complete
  workdirs = {'spatial': str(root / 'spatial'), 'temporal': str(root / 'temporal')}
  for name, modality in (('spatial', 'rgb'), ('temporal', 'flow')):
    _train_and_evaluate(records, workdirs[name], modality)
  scores = {name: {split: os.path.join(evaluate.split_dir(w, split), 'scores.npz')
                   for split in ('train1', 'test1')} for name, w in workdirs.items()}
  fused = fusion_run.run_fusion([scores[s]['train1'] for s in ('spatial', 'temporal')],
                          [scores[s]['test1'] for s in ('spatial', 'temporal')],
                          str(root / 'fusion'), methods=('svm',), svm_steps=50)
  test = {name: score_files.load_scores(scores[name]['test1']) for name in workdirs}
  paths = [os.path.join(videos['videos_dir'], v + '.avi') for v in test['spatial'].video_ids]
  return {'root': root, 'records': records, 'workdirs': workdirs, 'test': test, 'paths': paths,
          'fused': fused, 'videos': videos}


def test_test_positions_repeat_the_pipeline_sampling():
  for n in range(2, 40):
    for k in (1, 2, 5, 25):
      np.testing.assert_array_equal(clip_reader.view_starts(n, 1, k),
                                    protocol_positions.frame_indices(n, k))
      for length in (1, 5, 10):
        np.testing.assert_array_equal(clip_reader.flow_indices(n, k, length),
                                      protocol_positions.flow_indices(n, k, length))


def _compare(predicted: list, reference: score_files.VideoScores, key: str) -> tuple[float, float]:
  """(top-1 agreement, mean |prob difference|) of predict's `key` scores against the reference."""
  probs = np.stack([np.asarray(v['predictions'][key]['probs']) for v in predicted])
  agree = float(np.mean(probs.argmax(1) == reference.probs.argmax(1)))
  return agree, float(np.mean(np.abs(probs - reference.probs)))


def test_predictions_from_video_files_agree_with_evaluation_on_records(runs):
  w = runs['workdirs']
  svm_file = runs['fused']['fusion_files']['svm']
  with_jpeg = video_prediction.Predictor(w['spatial'], w['temporal'], svm_file, num_workers=0)
  assert with_jpeg.flow_algorithm == 'dis'
  results = with_jpeg.predict(runs['paths'], progress=False)
  assert all(r['ok'] for r in results) and len(results) == 12
  # The same restored streams, reading the videos without the records' JPEG coding.
  with_jpeg.settings = dataclasses.replace(with_jpeg.settings, jpeg_roundtrip=False)
  without = with_jpeg.predict(runs['paths'], progress=False)
  measured = {}
  for name in ('spatial', 'temporal'):
    agree, diff = _compare(results, runs['test'][name], name)
    agree_raw, diff_raw = _compare(without, runs['test'][name], name)
    measured[name] = (agree, diff, agree_raw, diff_raw)
    # Same decoding, flow, quantisation and JPEG coding as the records, the same views: only the
    # JPEG decoder (OpenCV here, TensorFlow for records) and the batching of views could differ.
    assert agree >= 0.95, measured
    assert diff < 1e-5, measured
    # Without the round trip the networks see frames and flow before JPEG: the whole difference
    # is the JPEG storage's, so it must be the larger one, and small for these barely trained
    # nets (probabilities near 1/6).
    assert diff_raw > diff and diff_raw < 0.05, measured
  print('agreement (top-1, mean |dp|) with / without JPEG round trip:', measured)
  # The fitted SVM from `fuse`, read back from its file, fuses as it did the test scores.
  svm_scores = runs['fused']['fusions']['svm'].scores
  agree, diff = _compare(results, svm_scores, 'fusion')
  assert agree >= 0.95 and diff < 1e-3, (agree, diff)
  top = results[0]['predictions']['fusion']['top_k']
  assert len(top) == 5 and top[0]['prob'] >= top[1]['prob']
  assert set(results[0]['seconds']) == {'decode', 'flow', 'networks'}


def test_one_stream_alone_with_pictures(runs, tmp_path):
  temporal_only = video_prediction.Predictor(temporal_workdir=runs['workdirs']['temporal'],
                                             num_workers=0)
  assert temporal_only.fusion is None and not temporal_only.settings.want_frames
  results = temporal_only.predict(runs['paths'][:2], render_dir=str(tmp_path), progress=False)
  assert [set(r['predictions']) for r in results] == [{'temporal'}, {'temporal'}]
  probs = np.stack([r['predictions']['temporal']['probs'] for r in results])
  np.testing.assert_allclose(probs, runs['test']['temporal'].probs[:2], atol=1e-5)
  assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(r['render']) for r in results)
  with pytest.raises(video_prediction.PredictError, match='both streams'):
    video_prediction.Predictor(runs['workdirs']['spatial'],
                               fusion_path=runs['fused']['fusion_files']['svm'])


def _predict_cli(*args, timeout=300):
  env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
  return subprocess.run([sys.executable, '-m', 'twostream_jax.predict', *args], cwd=REPO_ROOT,
                        capture_output=True, text=True, timeout=timeout, env=env)


def test_corrupt_and_missing_videos_are_reported_and_skipped(runs, tmp_path):
  folder = tmp_path / 'videos'
  folder.mkdir()
  for path in runs['paths'][:2]:
    shutil.copy(path, folder / os.path.basename(path))
  (folder / 'broken.avi').write_bytes(os.urandom(3000))  # not a video
  (folder / 'empty.mp4').write_bytes(b'')
  output, render = tmp_path / 'predictions.json', tmp_path / 'pictures'
  w = runs['workdirs']
  out = _predict_cli(f'--spatial_workdir={w["spatial"]}', f'--temporal_workdir={w["temporal"]}',
                     f'--output={output}', f'--render={render}', '--top_k=3', '--num_workers=2',
                     str(folder), str(tmp_path / 'missing.avi'))
  assert out.returncode == 1, out.stderr[-3000:]
  content = json.loads(output.read_text())
  ok = [v for v in content['videos'] if v['ok']]
  failed = {os.path.basename(v['path']): v['error'] for v in content['videos'] if not v['ok']}
  assert len(ok) == 2 and content['num_failed'] == 3
  assert set(failed) == {'broken.avi', 'empty.mp4', 'missing.avi'}
  assert 'empty' in failed['empty.mp4'] and 'not found' in failed['missing.avi']
  assert all(len(v['predictions'][s]['top_k']) == 3 for v in ok for s in ('spatial', 'temporal',
                                                                          'fusion'))
  assert content['fusion']['method'] == 'average'
  assert sorted(os.listdir(render)) == sorted(os.path.basename(v['render']) for v in ok)
  assert 'FAILED' in out.stdout and 'Traceback' not in out.stderr


def test_streams_of_different_class_lists_fail_at_start(runs, tmp_path):
  other = str(tmp_path / 'other_records')
  record_fixtures.write_tiny_dataset(other)  # 3 classes of other names
  # What training on those records writes first (train.loop); the check needs nothing more.
  other_config = tiny_train_config(other, 'flow')
  other_spec = spec_of(other_config)
  workdir_metadata.save(str(tmp_path / 'other_temporal'), other_config, other_spec.data_dirs,
                        other_spec.metadatas)
  out = _predict_cli(f'--spatial_workdir={runs["workdirs"]["spatial"]}',
                     f'--temporal_workdir={tmp_path / "other_temporal"}', runs['paths'][0])
  assert out.returncode == 2
  assert 'different class lists' in out.stderr and 'Traceback' not in out.stderr


def test_workdir_without_checkpoints_fails_at_start(runs, tmp_path):
  config = tiny_train_config(runs['records'], 'rgb')
  spec = spec_of(config)
  workdir_metadata.save(str(tmp_path / 'untrained'), config, spec.data_dirs, spec.metadatas)
  with pytest.raises(stream_predictor.PredictorError, match='no checkpoint'):
    video_prediction.Predictor(str(tmp_path / 'untrained'), runs['workdirs']['temporal'])
  with pytest.raises(stream_predictor.PredictorError, match='dataset_metadata.json'):
    video_prediction.Predictor(str(tmp_path), runs['workdirs']['temporal'])
  # Nothing was created in the untrained workdir by trying.
  assert not (tmp_path / 'untrained' / 'checkpoints').exists()


def test_workdir_records_the_data_set(runs):
  recorded = workdir_metadata.load(runs['workdirs']['temporal'])
  records = dataset_metadata.load_metadata(runs['records'])
  assert recorded.dataset.class_names == records.class_names
  assert recorded.dataset.flow_algorithm == 'dis'
  assert recorded.dataset.extra['flow_parameters'] == records.extra['flow_parameters']
  assert recorded.config.data.modality == 'flow'
