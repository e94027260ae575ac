"""A results table of streams and fusions, written as markdown (for people) and JSON (for programs).

A row is a dict with at least
  {'name': str, 'top1': float, 'top5': float, 'mean_class_accuracy': float, 'num_videos': int}
where accuracies are fractions in [0, 1] (as `classification_metrics.compute_metrics` gives them).
The markdown shows them as percentages with one decimal, as the paper does; the JSON keeps the
fractions at full precision. Other keys are kept in the JSON; a 'notes' key is also shown as the
markdown table's last column.
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

RESULTS_MD = 'results.md'
RESULTS_JSON = 'results.json'
ROW_KEYS = ('name', 'top1', 'top5', 'mean_class_accuracy', 'num_videos')
_PERCENT_KEYS = ('top1', 'top5', 'mean_class_accuracy')


def _check_rows(rows: Sequence[dict[str, Any]]) -> None:
  for i, row in enumerate(rows):
    missing = [key for key in ROW_KEYS if key not in row]
    if missing:
      raise ValueError(f'Results row {i} ({row.get("name", "?")!r}) lacks keys {missing}; a row needs '
                       f'{list(ROW_KEYS)}.')
    for key in _PERCENT_KEYS:
      if not 0.0 <= float(row[key]) <= 1.0:
        raise ValueError(f'Results row {row["name"]!r}: {key} = {row[key]} is not a fraction in '
                         '[0, 1].')


def _cell(text: Any) -> str:
  # A '|' inside a cell would split the markdown row.
  return str(text).replace('|', '\\|').replace('\n', ' ')


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
  """The rows as a GitHub-flavoured markdown table (accuracies in %), ending with a newline."""
  _check_rows(rows)
  with_notes = any('notes' in row for row in rows)
  header = ['Scores', 'Top-1 (%)', 'Top-5 (%)', 'Mean class acc. (%)', 'Videos']
  align = [':---', '---:', '---:', '---:', '---:']
  if with_notes:
    header.append('Notes')
    align.append(':---')
  lines = ['| ' + ' | '.join(header) + ' |', '| ' + ' | '.join(align) + ' |']
  for row in rows:
    cells = [_cell(row['name'])] + [f'{100.0 * float(row[k]):.1f}' for k in _PERCENT_KEYS]
    cells.append(str(int(row['num_videos'])))
    if with_notes:
      cells.append(_cell(row.get('notes', '')))
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def _to_json(value: Any) -> Any:
  # Numpy scalars and arrays (weights, metrics) are common in rows; json knows neither.
  if hasattr(value, 'tolist'):
    return value.tolist()
  raise TypeError(f'{type(value).__name__} in a results row cannot be written as JSON.')


def _write_atomic(path: str, text: str) -> None:
  tmp_path = path + '.tmp'
  with open(tmp_path, 'w') as f:
    f.write(text)
  os.replace(tmp_path, path)


def write_results_table(rows: Sequence[dict[str, Any]], output_dir: str) -> tuple[str, str]:
  """Writes `results.md` and `results.json` into `output_dir` (created if needed).

  Args:
    rows: table rows, in display order (module docstring).
    output_dir: folder of the two files.

  Returns:
    (markdown path, JSON path). The JSON is `{"rows": [...]}` with every key of every row.
  """
  _check_rows(rows)
  os.makedirs(output_dir, exist_ok=True)
  md_path = os.path.join(output_dir, RESULTS_MD)
  json_path = os.path.join(output_dir, RESULTS_JSON)
  _write_atomic(md_path, markdown_table(rows))
  _write_atomic(json_path, json.dumps({'rows': [dict(row) for row in rows]}, indent=2,
                                      default=_to_json) + '\n')
  return md_path, json_path
