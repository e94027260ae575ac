"""Classify video files: decode, compute flow on the fly, run both streams, fuse (`run`).

The library of `python -m twostream_jax.predict`. Per video: decode and resize it as the run's
records were (`data.workdir_metadata`: short side, frame stride and cap, JPEG quality, flow
algorithm and bound), compute the flow fields the test stacks need with the records' algorithm
(OpenCV ones in worker processes; tvl1_jax, and OpenCV TV-L1 on an accelerator, batched here),
make each run's test views (`data.test_num_frames` x `data.test_num_crops`) as evaluation makes
them from the records, score them with each stream's jitted eval step restored from its latest
checkpoint, and fuse the streams with the fusion `python -m twostream_jax.fuse` fitted or by
plain averaging. One stream alone works too. By default frames and quantised flow pass through
the records' JPEG coding first, so that a video scores as its records would.

Before any video is read, the flow parameters it will compute with (and the OpenCV version) are
compared with those the records recorded: a difference is refused, naming each parameter, unless
`accept_flow_mismatch` (then a warning); a clip faster than the records' frame rate is resampled
to it by frame selection, with a warning naming both rates (`record_match`); a multi-task run
predicts with the head of `dataset`.

`run` writes JSON: per video the top-k classes and probabilities of each stream and the fusion,
the probability vectors and timings; optionally a PNG strip per video. A video that cannot be
decoded is reported and skipped; bad workdirs or fusion files fail before any video is read.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from typing import Any, Sequence

import numpy as np
import tqdm

from twostream_jax.data import dataset_metadata
from twostream_jax.data import record_schema
from twostream_jax.evaluation import fusion
from twostream_jax.evaluation import fusion_file
from twostream_jax.evaluation import stream_scores
from twostream_jax.flow import algorithms as optical_flow
from twostream_jax.flow import visualization
from twostream_jax.inference import clip_reader
from twostream_jax.inference import prediction_strip
from twostream_jax.inference import record_match
from twostream_jax.inference import stream_predictor
from twostream_jax.prep import video_decoding

RENDER_FRAMES = 4


class PredictError(ValueError):
  """A start-up problem a user can fix (bad workdirs, paths, fusion file); the message says how."""


def find_videos(inputs: Sequence[str]) -> list[str]:
  """Video files named, or found (recursively, sorted) under folders named; missing paths kept.

  A missing path stays in the list so that it is reported as a failed video with the others.
  """
  out = []
  for item in inputs:
    if os.path.isdir(item):
      found = sorted(os.path.join(root, name) for root, _, names in os.walk(item) for name in names
                     if name.lower().endswith(video_decoding.VIDEO_EXTENSIONS))
      if not found:
        raise PredictError(f'folder {item!r} holds no video files '
                           f'({", ".join(video_decoding.VIDEO_EXTENSIONS)})')
      out.extend(found)
    else:
      out.append(item)
  if not out:
    raise PredictError('no videos given: pass video files or folders after the flags')
  return out


def _decoding(predictors: list[stream_predictor.StreamPredictor]) -> dict[str, Any]:
  """The records' decoding settings, which every stream must share."""
  settings = {}
  for p in predictors:
    m = p.metadata
    mine = {'short_side': int(m.short_side), 'max_frames': int(m.extra.get('max_frames', 0)),
            'frame_stride': int(m.extra.get('frame_stride', 1)), 'jpeg_quality': int(m.jpeg_quality)}
    if settings and mine != settings:
      raise PredictError(f'the streams were trained on records decoded differently ({settings} vs '
                         f'{mine} in {p.workdir}): predict decodes each video once for both')
    settings = mine
  return settings


def _tvl1_params(algorithm: str, records: dataset_metadata.DatasetMetadata) -> Any:
  """tvl1_jax's parameters: the records' own when they were made with tvl1_jax, else the defaults
  (OpenCV's, which OpenCV TV-L1 records used); None for another algorithm."""
  if algorithm != 'tvl1_jax':
    return None
  from twostream_jax.flow import tvl1_jax  # pylint: disable=g-import-not-at-top
  recorded = records.extra.get('flow_parameters') or {}
  fields = {f.name for f in dataclasses.fields(tvl1_jax.TVL1Params)}
  return tvl1_jax.TVL1Params(**{k: v for k, v in recorded.items() if k in fields}
                             if records.flow_algorithm == 'tvl1_jax' else {})


def flow_algorithm_for(records_algorithm: str, override: str, backend: str) -> str:
  """The flow algorithm to run: `override`, else the records' one (TV-L1 batched on an accelerator).

  Raises:
    PredictError: records whose flow predict cannot recompute (rawframes) and no override.
  """
  if override:
    if override not in optical_flow.ALGORITHMS:
      raise PredictError(f'--flow_algorithm {override!r} is not one of {optical_flow.ALGORITHMS}')
    return override
  if records_algorithm == 'tvl1' and backend != 'cpu':
    return 'tvl1_jax'  # the same TV-L1 numerics, batched on the accelerator
  if records_algorithm not in optical_flow.ALGORITHMS:
    raise PredictError(f'the temporal stream was trained on {records_algorithm!r} flow, which '
                       'predict cannot compute; pass --flow_algorithm (one of '
                       f'{", ".join(optical_flow.ALGORITHMS)}) closest to it')
  return records_algorithm


class Predictor:
  """Both (or one) restored streams and the fusion; `predict` runs videos through them."""

  def __init__(self, spatial_workdir: str = '', temporal_workdir: str = '', fusion_path: str = '',
               *, flow_algorithm: str = '', jpeg_roundtrip: bool = True, batch_size: int = 0,
               num_workers: int = 2, flow_batch_size: int = 8, dataset: str = '',
               accept_flow_mismatch: bool = False, resample_fps: bool = True):
    """Restores the streams and checks that they fit together (fails before any video is read).

    Args (beyond the flags of `python -m twostream_jax.predict`, same names):
      dataset: the data set (name or index) whose head a multi-task run predicts with ('': the
        run's `eval.dataset`).
      accept_flow_mismatch: go on, with a warning, when the flow parameters predict computes with
        differ from the records' (`record_match.flow_differences`).
      resample_fps: bring clips faster than the records' frame rate to it by frame selection.

    Attributes:
      warnings: what the start found worth saying (each also printed once to stderr).

    Raises:
      PredictError, stream_predictor.PredictorError, fusion.FusionError, FileNotFoundError.
    """
    import jax  # pylint: disable=g-import-not-at-top
    if not (spatial_workdir or temporal_workdir):
      raise PredictError('give --spatial_workdir, --temporal_workdir or both')
    given = [(w, m) for w, m in ((spatial_workdir, 'rgb'), (temporal_workdir, 'flow')) if w]
    workdirs = [w for w, _ in given]
    # Everything that can be checked from the workdirs' metadata and the fusion file is checked
    # before any checkpoint is restored, so that a mistake fails in a second.
    self.warnings: list[str] = []
    self.class_names = stream_predictor.check_same_classes(workdirs, dataset)
    runs = [stream_predictor.read_run(w) for w in workdirs]
    for (workdir, wanted), run in zip(given, runs):
      if run.config.data.modality != wanted:
        raise PredictError(f'{workdir} is a {run.config.data.modality} run, given as the '
                           f'{"spatial" if wanted == "rgb" else "temporal"} stream')
    for workdir, run in zip(workdirs, runs):
      # Keys of later input variants (issue 14's ablations): predict computes forward optical
      # flow stacks only, so a stream trained on anything else would get the wrong input.
      data = run.config.data
      unsupported = {k: data[k] for k, plain in (('flow_direction', 'forward'),
                                                 ('stacking', 'optical_flow'))
                     if k in data and data[k] != plain}
      if unsupported:
        raise PredictError(f'{workdir} was trained with {unsupported}; predict computes forward '
                           'optical flow stacks only')
    names = [stream_scores.stream_name(run.config.data.modality, run.config.eval.stream_name)
             for run in runs]
    if len(workdirs) > 1 and fusion_path:
      self.fusion = fusion_file.load_fitted_fusion(fusion_path)
      if sorted(self.fusion.streams) != sorted(names):
        raise fusion.FusionError(f'{fusion_path} fuses streams {self.fusion.streams}, the workdirs '
                                 f'hold {names}')
      if self.fusion.class_names != self.class_names:
        raise fusion.FusionError(f'{fusion_path} was fitted on other classes than the streams\'; '
                                 'fuse the scores of these two runs')
      self._order = [names.index(s) for s in self.fusion.streams]
    elif len(workdirs) > 1:
      self.fusion, self._order = fusion_file.equal_average(names, self.class_names), [0, 1]
    else:
      if fusion_path:
        raise PredictError('--fusion needs both streams')
      self.fusion, self._order = None, [0]
    temporal_data = (stream_predictor.chosen_dataset(runs[-1], dataset)[1]
                     if temporal_workdir else None)
    self.flow_algorithm, self._tvl1_params = '', None
    if temporal_data is not None:
      self.flow_algorithm = flow_algorithm_for(temporal_data.flow_algorithm, flow_algorithm,
                                               jax.default_backend())
      self._tvl1_params = _tvl1_params(self.flow_algorithm, temporal_data)
      self._check_flow(temporal_data, temporal_workdir, accept_flow_mismatch)
    self.predictors = [stream_predictor.StreamPredictor(w, batch_size=batch_size, dataset=dataset)
                       for w in workdirs]
    spatial = next((p for p in self.predictors if p.modality == 'rgb'), None)
    self.temporal = next((p for p in self.predictors if p.modality == 'flow'), None)
    decoding = _decoding(self.predictors)
    views = {p.num_views for p in self.predictors}
    if len(views) > 1:
      raise PredictError(f'the streams test {sorted(views)} frames per video '
                         '(data.test_num_frames); predict reads one set of positions per video')
    bound = (self.temporal or self.predictors[0]).metadata.flow_bound_px
    self.batched_flow = self.flow_algorithm in optical_flow.BATCHED_ALGORITHMS
    self.settings = clip_reader.ClipSettings(
        **decoding, flow_bound_px=float(bound), num_views=views.pop(),
        num_flow_fields=self.temporal.num_flow_fields if self.temporal else 0,
        want_frames=spatial is not None,
        pair_flow='' if self.batched_flow else self.flow_algorithm,
        jpeg_roundtrip=jpeg_roundtrip, records_fps=self._records_fps(), resample_fps=resample_fps)
    self.num_workers, self.flow_batch_size = num_workers, flow_batch_size

  def _warn(self, message: str) -> None:
    self.warnings.append(message)
    print(f'predict: warning: {message}', file=sys.stderr)

  def _check_flow(self, records: dataset_metadata.DatasetMetadata, workdir: str,
                  accept: bool) -> None:
    """Refuses (or, with `accept`, warns about) flow computed otherwise than the records'."""
    recorded = records.extra.get('flow_parameters') or {}
    if self.flow_algorithm != records.flow_algorithm and not (
        records.flow_algorithm == 'tvl1' and self.flow_algorithm == 'tvl1_jax'):
      self._warn(f'the temporal stream of {workdir} was trained on {records.flow_algorithm!r} flow; '
                 f'predict computes {self.flow_algorithm!r} flow (--flow_algorithm)')
      return
    if not recorded:
      self._warn(f'the records of {workdir} do not record their flow parameters: predict cannot '
                 f'check that its {self.flow_algorithm!r} flow is computed as theirs was')
      return
    current = record_match.current_flow_parameters(self.flow_algorithm, self._tvl1_params)
    differences = record_match.flow_mismatch(records.flow_algorithm, recorded,
                                             self.flow_algorithm, current)
    if not differences:
      return
    message = (f'the {records.flow_algorithm!r} flow the temporal stream of {workdir} was trained on '
               f'was computed with other parameters than predict would use: '
               f'{"; ".join(differences)}')
    if not accept:
      raise PredictError(f'{message}. Its flow would differ from the records\'; pass '
                         '--accept_flow_mismatch to predict anyway (with a warning)')
    self._warn(message + ' (--accept_flow_mismatch given: going on)')

  def _records_fps(self) -> float:
    """The records' stored frame rate (0: unknown, said once)."""
    rates = {p.workdir: dataset_metadata.stored_frame_rate(p.metadata) for p in self.predictors}
    known = {r for r in rates.values() if r > 0}
    unknown = [w for w, r in rates.items() if r <= 0]
    if unknown:
      self._warn(f'the records of {", ".join(unknown)} do not record the source videos\' frame '
                 'rate (records written before it was, or from rawframes): predict cannot check '
                 'a clip\'s frame rate against it')
    if len(known) > 1:
      self._warn(f'the streams\' records hold frames at different rates ({sorted(known)} fps): '
                 'clips are brought to the first stream\'s')
    return next((r for r in rates.values() if r > 0), 0.0)

  def describe(self) -> dict[str, Any]:
    """What the output file says about the streams and the fusion."""
    out = {'streams': {p.name: {'workdir': os.path.abspath(p.workdir), 'checkpoint_step': p.step,
                                'views': f'{p.num_views} x {p.num_crops}'}
                       for p in self.predictors},
           'flow_algorithm': self.flow_algorithm, 'jpeg_roundtrip': self.settings.jpeg_roundtrip,
           'records_fps': self.settings.records_fps, 'classes': self.class_names,
           'warnings': self.warnings}
    if self.fusion is not None:
      out['fusion'] = {'method': self.fusion.method, 'streams': self.fusion.streams,
                       **({'weights': [float(w) for w in self.fusion.weights]}
                          if self.fusion.weights is not None else {})}
    return out

  def _batched_flow(self, clip: clip_reader.Clip) -> None:
    from twostream_jax.flow import tvl1_jax  # pylint: disable=g-import-not-at-top
    start = time.perf_counter()
    flow = tvl1_jax.compute_flow_batch(clip.gray_pairs[:, 0], clip.gray_pairs[:, 1],
                                       self._tvl1_params, chunk_size=self.flow_batch_size)
    clip.fields = clip_reader.quantise_fields(flow, self.settings)
    clip.gray_pairs = None
    clip.flow_seconds += time.perf_counter() - start

  def _top(self, probs: np.ndarray, k: int) -> list[dict[str, Any]]:
    order = np.argsort(-probs, kind='stable')[:k]
    return [{'class': self.class_names[i], 'prob': float(probs[i])} for i in order]

  def predict(self, paths: Sequence[str], *, top_k: int = 5, render_dir: str = '',
              progress: bool = True) -> list[dict[str, Any]]:
    """One result dict per path, in order (see the module docstring; failures have 'error')."""
    settings = self.settings
    if render_dir:
      settings = dataclasses.replace(settings, render_frames=RENDER_FRAMES)
      os.makedirs(render_dir, exist_ok=True)
    results = []
    bar = tqdm.tqdm(total=len(paths), desc='predict', unit='video', disable=not progress)
    clips = clip_reader.iter_clips(list(paths), settings, self.num_workers)
    for clip in clips:
      if isinstance(clip, clip_reader.Failure):
        results.append({'path': clip.path, 'ok': False, 'error': clip.reason})
        bar.write(f'predict: skipped {clip.path}: {clip.reason}')
        bar.update(1)
        continue
      start = time.perf_counter()
      if clip.gray_pairs is not None:
        self._batched_flow(clip)
      probs, streams = [], {}
      for p in self.predictors:
        scores, _ = p.score(clip.frames if p.modality == 'rgb' else clip.stacks())
        probs.append(scores)
        streams[p.name] = {'top_k': self._top(scores, top_k), 'probs': scores.tolist()}
      if self.fusion is not None:
        fused = self.fusion.apply(np.stack([probs[i] for i in self._order])[:, None])[0]
        streams['fusion'] = {'method': self.fusion.method, 'top_k': self._top(fused, top_k),
                             'probs': fused.tolist()}
      network = time.perf_counter() - start - (clip.flow_seconds if self.batched_flow else 0.0)
      if clip.note:
        bar.write(f'predict: warning: {clip.path}: {clip.note}', file=sys.stderr)
      result = {'path': clip.path, 'ok': True, 'num_frames': clip.num_frames, 'fps': clip.fps,
                **({'fps_note': clip.note} if clip.note else {}),
                'height': clip.height, 'width': clip.width,
                'flow_fields': int(len(clip.field_indices)), 'predictions': streams,
                'seconds': {'decode': round(clip.decode_seconds, 4),
                            'flow': round(clip.flow_seconds, 4), 'networks': round(network, 4)}}
      if render_dir:
        result['render'] = self._render(clip, streams, render_dir, len(results))
      results.append(result)
      bar.update(1)
    bar.close()
    return results

  def _render(self, clip: clip_reader.Clip, streams: dict[str, Any], render_dir: str,
              index: int) -> str:
    flows = []
    if clip.fields is not None and len(clip.render_rows):
      bound = self.settings.flow_bound_px
      fields = [record_schema.dequantise_flow(clip.fields[r].astype(np.float32), bound)
                for r in clip.render_rows]
      # One scale for the strip's fields, so that their colours compare.
      scale = max(float(np.hypot(f[..., 0], f[..., 1]).max()) for f in fields)
      flows = [visualization.flow_to_color(f, max(scale, 1e-3)) for f in fields]
    stem = os.path.splitext(os.path.basename(clip.path))[0]
    path = os.path.join(render_dir, f'{index:04d}_{stem}.png')
    frames = clip.render_frames if len(clip.render_frames) else (
        clip.frames[:RENDER_FRAMES] if clip.frames is not None else np.zeros([0, 1, 1, 3], np.uint8))
    prediction_strip.save_strip(path, os.path.basename(clip.path), frames, flows,
                                {name: s['top_k'][:5] for name, s in streams.items()})
    return path


def run(inputs: Sequence[str], *, spatial_workdir: str = '', temporal_workdir: str = '',
        fusion_path: str = '', output: str = 'predictions.json', top_k: int = 5,
        render_dir: str = '', progress: bool = True, **predictor_options: Any) -> dict[str, Any]:
  """Predicts every video of `inputs` and writes `output`; returns what it wrote."""
  start = time.perf_counter()
  paths = find_videos(inputs)
  predictor = Predictor(spatial_workdir, temporal_workdir, fusion_path, **predictor_options)
  videos = predictor.predict(paths, top_k=top_k, render_dir=render_dir, progress=progress)
  content = {**predictor.describe(), 'videos': videos,
             'num_failed': sum(not v['ok'] for v in videos),
             'seconds': round(time.perf_counter() - start, 2)}
  if output:
    folder = os.path.dirname(os.path.abspath(output))
    os.makedirs(folder, exist_ok=True)
    with open(output + '.tmp', 'w') as f:
      json.dump(content, f, indent=1)
    os.replace(output + '.tmp', output)
  return content
