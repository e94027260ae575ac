"""The ablation table: each row's top-1 over seeds (mean, std), the paper's number, and the orderings
the ablation set predicts with whether a run shows them. Plain Python + numpy.

An ordering `(a, relation, b)` compares the seed means of rows a and b against the larger of
their standard deviations s (sample std over seeds, 0 for one seed):
  '<'  shown when mean(b) - mean(a) > 2 s;
  '<=' shown unless mean(a) - mean(b) > 2 s (a is not clearly above b).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

# (lower row, relation, higher row, why the ablation set predicts it); docs/ablations.md explains.
ORDERINGS = (
    ('temporal_L1', '<', 'temporal_L10', 'one field cannot show a reversal'),
    ('temporal_L1', '<', 'temporal_L5', 'five fields often hold a reversal'),
    ('temporal_L5', '<=', 'temporal_L10', 'every 10-field stack holds a Reverse video\'s reversal'),
    ('temporal_L10_no_mean_subtraction', '<', 'temporal_L10', 'the zigzagging camera hides the '
     'disc\'s pattern in raw flow'),
    ('temporal_L10', '<=', 'temporal_L10_trajectory', 'trajectories keep the disc in the stack '
     'when it leaves the crop'),
    ('temporal_L10_bidirectional', '<=', 'temporal_L10', 'same span of frames either way (a tie)'),
    ('temporal_L10', '<=', 'temporal_L10_bidirectional', 'same span of frames either way (a tie)'),
    ('spatial_from_scratch', '<', 'spatial_pretrained_fine_tuned', 'few training videos; the '
     'pretraining set has the same families'),
    ('spatial_from_scratch', '<', 'spatial_pretrained_last_layer', 'the same'),
    ('spatial_pretrained_fine_tuned', '<', 'fusion', 'appearance alone tells 1 of 3 motions'),
    ('temporal_L10', '<', 'fusion', 'motion alone tells 1 of 3 appearances'),
)


def summarise(top1s: Sequence[float]) -> dict[str, Any]:
  """{'mean', 'std' (sample std over seeds, 0 for one), 'runs'} of per-seed top-1 fractions."""
  x = np.asarray(top1s, np.float64)
  std = float(x.std(ddof=1)) if len(x) > 1 else 0.0
  return {'mean': float(x.mean()) if len(x) else None, 'std': std, 'runs': [float(v) for v in x]}


def check_ordering(a: dict[str, Any], relation: str, b: dict[str, Any]) -> dict[str, Any]:
  """Whether summaries a, b (`summarise`) show `a relation b`; module docstring."""
  spread = max(a['std'], b['std'])
  diff = b['mean'] - a['mean']
  if relation == '<':
    shown = diff > 2 * spread
  elif relation == '<=':
    shown = -diff <= 2 * spread
  else:
    raise ValueError(f'Unknown relation {relation!r}; use < or <=.')
  return {'shown': bool(shown), 'diff': diff, 'spread': spread}


def orderings(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
  """Every `ORDERINGS` entry whose rows both ran, checked on their summaries."""
  out = []
  for lower, relation, higher, why in ORDERINGS:
    if lower in rows and higher in rows and rows[lower]['mean'] is not None and (
        rows[higher]['mean'] is not None):
      check = check_ordering(rows[lower], relation, rows[higher])
      out.append({'lower': lower, 'relation': relation, 'higher': higher, 'why': why, **check})
  return out


def _describe(o: dict[str, Any]) -> str:
  word = 'shown' if o['shown'] else 'NOT shown'
  return (f'{o["lower"]} {o["relation"]} {o["higher"]}: {word} (diff {100 * o["diff"]:+.1f}, '
          f'2 std {200 * o["spread"]:.1f})')


def markdown(rows: list[dict[str, Any]], checks: list[dict[str, Any]]) -> str:
  """The table (mean +- std over seeds beside the paper) and the orderings, as markdown."""
  lines = ['| Row | Setting | Top-1 here, mean +- std (%) | Seeds | Paper, UCF101 split 1 (%) | '
           'Predicted ordering |', '| :--- | :--- | ---: | ---: | ---: | :--- |']
  for r in rows:
    here = '-' if r.get('mean') is None else f'{100 * r["mean"]:.1f} +- {100 * r["std"]:.1f}'
    paper = '-' if r.get('paper_top1') is None else f'{r["paper_top1"]:.1f}'
    mine = [_describe(o) for o in checks if o['higher'] == r['name']]
    lines.append(f'| {r["name"]} | {r["setting"]} | {here} | {len(r.get("runs", []))} | {paper} | '
                 f'{"; ".join(mine)} |')
  return '\n'.join(lines) + '\n'
