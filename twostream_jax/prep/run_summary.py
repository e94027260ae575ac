"""What a dataset-writing run did and what the folder holds, and its printed form."""

from __future__ import annotations

import dataclasses

FAILURES_FILENAME = 'failures.json'  # next to the shards: failed videos with reasons, warnings


@dataclasses.dataclass
class RunSummary:
  """What a run did and what the folder holds (see `format_summary`)."""
  output_dir: str
  complete: bool
  videos_total: int
  videos_done_before: int
  videos_written: int
  shards_total: int
  shards_written_now: int
  per_split: dict[str, int]
  per_partition: dict[str, int]
  failures: list[dict[str, str]]
  warnings: list[dict[str, str]]
  bytes_on_disk: int
  frames: int
  frame_bytes: int
  flow_fields: int
  flow_bytes: int
  flow_float32_bytes: int
  rawframes_layouts: dict[str, int]
  seconds: float
  max_failures: int
  empty_splits: list[str] = dataclasses.field(default_factory=list)


def _mib(n: int) -> str:
  return f'{n / 2**20:.2f} MiB'


def format_summary(s: RunSummary) -> str:
  """A few lines for the console."""
  lines = [f'Wrote {s.output_dir}: {s.videos_written}/{s.videos_total} videos in '
           f'{s.shards_total} shards ({s.shards_written_now} written now, '
           f'{s.videos_done_before} videos were done before) in {s.seconds:.1f} s.']
  lines.append('  videos per split: ' + ', '.join(f'{k} {v}' for k, v in sorted(s.per_split.items())))
  lines.append(f'  bytes on disk: {_mib(s.bytes_on_disk)}; frames {s.frames} '
               f'({_mib(s.frame_bytes)} JPEG)')
  if s.flow_fields:
    ratio = s.flow_float32_bytes / max(1, s.flow_bytes)
    lines.append(f'  flow: {s.flow_fields} fields, {_mib(s.flow_bytes)} as JPEG vs '
                 f'{_mib(s.flow_float32_bytes)} as float32 ({ratio:.1f}x smaller, '
                 f'{s.flow_bytes / s.flow_fields:.0f} bytes per field)')
  if s.rawframes_layouts:
    lines.append('  rawframes layouts: ' + ', '.join(f'{k} {v}' for k, v in
                                                     s.rawframes_layouts.items()))
  if s.warnings:
    lines.append(f'  {len(s.warnings)} warnings (see {FAILURES_FILENAME}), e.g. '
                 f'{s.warnings[0]["video_id"]}: {s.warnings[0]["warning"]}')
  if s.failures:
    lines.append(f'  {len(s.failures)} videos failed (listed in {FAILURES_FILENAME}):')
    lines += [f'    {f["video_id"]}: {f["reason"]}' for f in s.failures[:20]]
    if len(s.failures) > 20:
      lines.append(f'    ... and {len(s.failures) - 20} more')
  if s.empty_splits:
    lines.append(f'  WARNING: split{"s" if len(s.empty_splits) > 1 else ""} '
                 f'{", ".join(s.empty_splits)} {"have" if len(s.empty_splits) > 1 else "has"} NO '
                 'videos: every one of them failed. Training or evaluating on '
                 f'{"them" if len(s.empty_splits) > 1 else "it"} fails; replace the failed files and '
                 'run the same command again to add them.')
  if not s.complete:
    lines.append(f'  More videos failed than --max_failures={s.max_failures}: metadata NOT written. '
                 'Replace those files and run the same command again (shards with failures are '
                 'redone), or run it again with a higher --max_failures to accept the data set '
                 'without them.')
  return '\n'.join(lines)
