r"""Classify new videos with trained streams: decode, compute flow, run both streams, fuse.

    python -m twostream_jax.predict --spatial_workdir runs/spatial --temporal_workdir runs/temporal \
        [--fusion runs/fusion1/fusion_svm.npz] [--output predictions.json] [--top_k 5] \
        [--render DIR] [--dataset NAME_OR_INDEX] [--accept_flow_mismatch] VIDEO_OR_FOLDER...

A folder stands for the videos under it. One stream alone works too; without `--fusion` two
streams are averaged with equal weights. Writes `--output` (JSON, see
`inference.video_prediction`) and, with `--render`, one PNG per video (frames | flow | top-5 bars).
Exit status 1 if a video could not be decoded (the others are predicted), 2 on a start-up error
(workdirs without checkpoints or metadata, streams trained on different class lists, flow
parameters that differ from the records' without --accept_flow_mismatch, ...).
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

# The library behind this program; `demo` calls `predict.run` (same signature).
from twostream_jax.inference.video_prediction import run


def _define_flags() -> None:
  from absl import flags  # Only the program needs absl's flags (as in fuse.py).
  flags.DEFINE_string('spatial_workdir', '', 'Workdir of the trained spatial (RGB) stream.')
  flags.DEFINE_string('temporal_workdir', '', 'Workdir of the trained temporal (flow) stream.')
  flags.DEFINE_string('fusion', '', 'fusion_<method>.npz written by `python -m twostream_jax.fuse` '
                      '(default: average the two streams with equal weights).')
  flags.DEFINE_string('output', 'predictions.json', 'Where the JSON results go.')
  flags.DEFINE_integer('top_k', 5, 'Classes listed per stream and video.')
  flags.DEFINE_string('render', '', 'Folder for one PNG per video: frames | flow | top-5 bars.')
  flags.DEFINE_integer('num_workers', 2, 'Decoding (and OpenCV flow) worker processes; 0: none.')
  flags.DEFINE_string('flow_algorithm', '', 'Override the records\' flow algorithm (needed for '
                      'records made from rawframes).')
  flags.DEFINE_bool('jpeg_roundtrip', True, 'Pass frames and flow through the records\' JPEG '
                    'coding, so that scores match evaluation on records.')
  flags.DEFINE_integer('batch_size', 0, 'Views per network call (0: the run\'s eval batch size).')
  flags.DEFINE_string('dataset', '', 'A multi-task run\'s data set (its metadata name or index in '
                      'data.data_dirs) whose head predicts (default: the run\'s eval.dataset).')
  flags.DEFINE_bool('accept_flow_mismatch', False, 'Predict even when the flow parameters (or the '
                    'OpenCV version) differ from those the records were made with (a warning '
                    'names each difference; without this flag it is an error).')
  flags.DEFINE_bool('resample_fps', True, 'Bring clips faster than the records\' frame rate to it '
                    'by frame selection (a warning names both rates either way).')


def main(argv: Sequence[str]) -> None:
  """Runs `run` from the flags; exit status 1 if a video failed, 2 on a start-up error."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  try:
    content = run(argv[1:], spatial_workdir=f.spatial_workdir, temporal_workdir=f.temporal_workdir,
                  fusion_path=f.fusion, output=f.output, top_k=f.top_k, render_dir=f.render,
                  num_workers=f.num_workers, flow_algorithm=f.flow_algorithm,
                  jpeg_roundtrip=f.jpeg_roundtrip, batch_size=f.batch_size, dataset=f.dataset,
                  accept_flow_mismatch=f.accept_flow_mismatch, resample_fps=f.resample_fps)
  except (ValueError, FileNotFoundError) as e:
    # A user's mistake (workdirs, classes, fusion file, paths): one clear line, no traceback.
    print(f'predict: error: {e}', file=sys.stderr)
    sys.exit(2)
  for v in content['videos']:
    if v['ok']:
      best = v['predictions'].get('fusion') or next(iter(v['predictions'].values()))
      top = best['top_k'][0]
      print(f'{v["path"]}: {top["class"]} ({top["prob"]:.3f})')
    else:
      print(f'{v["path"]}: FAILED: {v["error"]}')
  print(f'Wrote {f.output}: {len(content["videos"]) - content["num_failed"]} videos predicted, '
        f'{content["num_failed"]} failed, {content["seconds"]:.1f} s.')
  sys.exit(1 if content['num_failed'] else 0)


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  from absl import app  # pylint: disable=g-import-not-at-top
  _define_flags()
  app.run(main)
