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
from twostream_jax.evaluation import fusion
from twostream_jax.evaluation import fusion_run
from twostream_jax.evaluation import score_files
from twostream_jax.inference import clip_reader
from twostream_jax.inference import record_match
from twostream_jax.inference import stream_predictor
from twostream_jax.inference import video_prediction
from twostream_jax.prep import dataset_writer
from twostream_jax.prep import shard_writer
from twostream_jax.prep import synthetic_videos
from twostream_jax.prep import video_decoding
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


# ------------------------------------------------------------------ what predict checks (issue 26)

def test_records_record_the_source_frame_rate(runs):
  records = dataset_metadata.load_metadata(runs['records'])
  # The synthetic .avi files are written at SPEC.fps; every written video counts once.
  assert records.extra[dataset_metadata.SOURCE_FPS_KEY] == {f'{SPEC.fps:g}': 24}
  assert dataset_metadata.stored_frame_rate(records) == SPEC.fps
  # Per video, in the shards' results.
  results = [shard_writer.load_result(p) for p in records.shard_files(runs['records'], 'test1')]
  assert {o.fps for r in results for o in r.videos} == {float(SPEC.fps)}
  # The run's workdir carries it to predict.
  recorded = workdir_metadata.load(runs['workdirs']['temporal']).dataset
  assert dataset_metadata.stored_frame_rate(recorded) == SPEC.fps


def _rewrite(source: str, path: str, fps: int, repeat: int) -> None:
  """`source`'s frames, each `repeat` times, as an .avi at `fps`."""
  frames = np.stack(list(video_decoding.iter_frames(source)))
  synthetic_videos.write_avi(np.repeat(frames, repeat, axis=0), path, fps)


def test_a_faster_clip_is_resampled_to_the_records_frame_rate(runs, tmp_path, capsys):
  same, fast = str(tmp_path / 'same.avi'), str(tmp_path / 'fast.avi')
  _rewrite(runs['paths'][0], same, SPEC.fps, 1)
  _rewrite(runs['paths'][0], fast, 2 * SPEC.fps, 2)  # twice the rate, each frame twice
  predictor = video_prediction.Predictor(temporal_workdir=runs['workdirs']['temporal'],
                                         num_workers=0)
  assert predictor.settings.records_fps == SPEC.fps and not predictor.warnings
  plain, resampled = predictor.predict([same, fast], progress=False)
  assert (plain['fps'], resampled['fps']) == (SPEC.fps, 2 * SPEC.fps)
  assert 'fps_note' not in plain and resampled['num_frames'] == plain['num_frames']
  # Every second frame of the fast clip is the slow clip: the same flow, the same scores.
  np.testing.assert_array_equal(resampled['predictions']['temporal']['probs'],
                                plain['predictions']['temporal']['probs'])
  note = resampled['fps_note']
  assert f'clip at {2 * SPEC.fps} fps, the records at {SPEC.fps} fps: resampled' in note
  assert note in capsys.readouterr().err
  # Not resampled: the flow between repeated frames is zero, the scores differ, the note says so.
  predictor.settings = dataclasses.replace(predictor.settings, resample_fps=False)
  (kept,) = predictor.predict([fast], progress=False)
  assert kept['num_frames'] == 2 * plain['num_frames']
  assert f'clip at {2 * SPEC.fps} fps, the records at {SPEC.fps} fps: not resampled' in kept['fps_note']
  assert not np.allclose(kept['predictions']['temporal']['probs'],
                         plain['predictions']['temporal']['probs'], atol=1e-6)


def test_frame_selection_at_a_rate_that_is_no_whole_multiple(tmp_path):
  # Frame i has grey level 8 i; at 40 fps against records at 25 fps, frame k of the result is
  # source frame round(1.6 k), and the cap counts kept frames.
  frames = np.repeat(np.arange(30, dtype=np.uint8)[:, None, None, None] * 8, 3, axis=-1)
  path = str(tmp_path / 'clip.avi')
  synthetic_videos.write_avi(np.broadcast_to(frames, (30, 16, 16, 3)).copy(), path, 40)
  settings = clip_reader.ClipSettings(short_side=0, max_frames=0, frame_stride=3, jpeg_quality=90,
                                      flow_bound_px=20.0, num_views=2, num_flow_fields=0,
                                      want_frames=True, pair_flow='', records_fps=25.0)
  rgb, fps, note = clip_reader.decode_frames(path, settings)
  levels = [int(round(f.mean() / 8)) for f in rgb]
  assert fps == 40 and levels == [round(1.6 * k) for k in range(19)], levels
  assert 'clip at 40 fps, the records at 25 fps: resampled' in note
  capped, _, _ = clip_reader.decode_frames(path, dataclasses.replace(settings, max_frames=7))
  assert [int(round(f.mean() / 8)) for f in capped] == levels[:7]
  # A rate the records do not know: the records' own frame stride, no note.
  rgb, _, note = clip_reader.decode_frames(path, dataclasses.replace(settings, records_fps=0.0))
  assert [int(round(f.mean() / 8)) for f in rgb] == list(range(0, 30, 3)) and note == ''


def test_opencv_tvl1_records_against_tvl1_jax_compare_the_shared_numerics():
  from twostream_jax.flow import algorithms  # pylint: disable=g-import-not-at-top
  from twostream_jax.flow import tvl1_jax  # pylint: disable=g-import-not-at-top
  recorded = algorithms.make_flow_algorithm('tvl1').parameters()
  current = record_match.current_flow_parameters('tvl1_jax', tvl1_jax.TVL1Params())
  # tvl1_jax's defaults are OpenCV's: no difference, whatever the implementation or version.
  assert record_match.flow_mismatch('tvl1', recorded, 'tvl1_jax', current) == []
  changed = dict(recorded, tau=0.3, theta=0.5)
  assert record_match.flow_mismatch('tvl1', changed, 'tvl1_jax', current) == [
      'tau: 0.3 (records) vs 0.25 (predict)', 'theta: 0.5 (records) vs 0.3 (predict)']
  # The same algorithm: every key, the OpenCV version included.
  assert record_match.flow_mismatch('tvl1', dict(recorded, opencv='1.0'), 'tvl1', recorded) == [
      f"opencv: '1.0' (records) vs {recorded['opencv']!r} (predict)"]


def _edited_copy(workdir: str, folder: str, edit) -> str:
  """A copy of `workdir` whose recorded data set (head 0) `edit` changes in place."""
  shutil.copytree(workdir, folder)
  path = os.path.join(folder, workdir_metadata.FILENAME)
  with open(path) as f:
    content = json.load(f)
  edit(content['datasets'][0])
  with open(path, 'w') as f:
    json.dump(content, f)
  return folder


def test_flow_parameters_unlike_the_records_are_refused_naming_each(runs, tmp_path):
  parameters = dataset_metadata.load_metadata(runs['records']).extra['flow_parameters']
  patch = parameters['patch_size']

  def edit(dataset):
    dataset['extra']['flow_parameters'].update(patch_size=patch + 4, opencv='3.0.0')
    del dataset['extra'][dataset_metadata.SOURCE_FPS_KEY]  # records from before it was recorded

  workdir = _edited_copy(runs['workdirs']['temporal'], str(tmp_path / 'temporal'), edit)
  with pytest.raises(video_prediction.PredictError) as refused:
    video_prediction.Predictor(temporal_workdir=workdir, num_workers=0)
  message = str(refused.value)
  assert f'patch_size: {patch + 4} (records) vs {patch} (predict)' in message
  assert f"opencv: '3.0.0' (records) vs '{parameters['opencv']}' (predict)" in message
  assert 'finest_scale' not in message and '--accept_flow_mismatch' in message
  # The command line refuses at start, before any checkpoint is restored.
  out = _predict_cli(f'--temporal_workdir={workdir}', runs['paths'][0])
  assert out.returncode == 2 and 'patch_size' in out.stderr and 'Traceback' not in out.stderr
  # Accepted: a warning names the differences, another (one) says the frame rate is unknown.
  accepted = video_prediction.Predictor(temporal_workdir=workdir, num_workers=0,
                                        accept_flow_mismatch=True)
  assert [w for w in accepted.warnings if 'patch_size' in w]
  unknown = [w for w in accepted.warnings if 'frame rate' in w]
  assert len(unknown) == 1 and 'do not record the source videos' in unknown[0]
  assert accepted.settings.records_fps == 0.0
  (result,) = accepted.predict(runs['paths'][:1], progress=False)
  assert result['ok'] and 'fps_note' not in result


def test_dataset_picks_the_head_of_a_multitask_run(runs, tmp_path):
  other = str(tmp_path / 'other_records')
  record_fixtures.write_tiny_dataset(other, name='tiny_other')  # 3 classes, 'synthetic' flow
  config = tiny_train_config(f'{runs["records"]},{other}', 'flow')
  config.train.num_train_steps = 2
  workdir = str(tmp_path / 'multitask')
  train_loop.train(config, spec_of(config), workdir)
  stacks = np.random.default_rng(0).integers(0, 256, (3, 32, 40, 4), dtype=np.uint8)
  first = stream_predictor.StreamPredictor(workdir)
  assert first.head == 0 and first.score(stacks)[0].shape == (6,)
  for choice in ('tiny_other', '1'):
    chosen = stream_predictor.StreamPredictor(workdir, dataset=choice)
    assert chosen.head == 1 and chosen.metadata.name == 'tiny_other'
    assert chosen.class_names == dataset_metadata.load_metadata(other).class_names
    assert chosen.score(stacks)[0].shape == (3,)
  with pytest.raises(stream_predictor.PredictorError, match="'nope' is not one of.*synthetic, tiny_other"):
    video_prediction.Predictor(temporal_workdir=workdir, dataset='nope')
  # The whole predict on head 1: its classes, its records' decoding (short side 32).
  predictor = video_prediction.Predictor(temporal_workdir=workdir, dataset='tiny_other',
                                         flow_algorithm='dis', num_workers=0)
  assert predictor.class_names == chosen.class_names and predictor.settings.short_side == 32
  assert [w for w in predictor.warnings if "trained on 'synthetic' flow" in w]
  (result,) = predictor.predict(runs['paths'][:1], progress=False)
  assert len(result['predictions']['temporal']['probs']) == 3 and result['height'] == 32


def test_fusion_refuses_the_runs_score_files_the_wrong_way_round(runs, tmp_path):
  paths = {split: [os.path.join(evaluate.split_dir(runs['workdirs'][s], split), 'scores.npz')
                   for s in ('spatial', 'temporal')] for split in ('train1', 'test1')}
  out = str(tmp_path / 'fusion')
  # The protocol records the training split of the run that made the scores in each file.
  for path in paths['train1'] + paths['test1']:
    assert score_files.load_scores(path).train_split == 'train1'
  with pytest.raises(fusion.FusionError, match="'spatial/test1' are of split 'test1', which is not "
                     "the training split 'train1' of the run"):
    fusion_run.run_fusion(paths['test1'], paths['train1'], out, methods=('svm',))
  assert not os.path.exists(out)
