"""Which head belongs to which data set in a multi-task run, and which one evaluation reads.

A multi-task model has one head per folder of `data.data_dirs`, in that order (`head_0`, `head_1`,
...). Heads are positional, so a checkpoint is only meaningful with its data sets in the order it was
trained with: the training loop stores the data sets' names in the checkpoint metadata and
`check_checkpoint_datasets` refuses a restore whose `data.data_dirs` name them in another order
(with equal class counts the heads would otherwise restore silently swapped).

`eval.dataset` (a data set's name, e.g. 'hmdb51', or its index in `data.data_dirs`; '' = the
first) selects both the data set evaluated and the head that scores it.
"""

from __future__ import annotations

from typing import Sequence


def eval_dataset_index(names: Sequence[str], choice: str) -> int:
  """The index among the run's data sets `names` that `eval.dataset` (`choice`) names; its head
  has the same index.

  Raises:
    ValueError: `choice` names no data set of the run, or a name two data sets share.
  """
  choice = str(choice).strip()
  if not choice:
    return 0
  if choice.isdigit():
    index = int(choice)
    if index < len(names):
      return index
    raise ValueError(f'eval.dataset={choice}: the run has {len(names)} data set(s) '
                     f'({", ".join(names)}); use an index below {len(names)} or a name')
  matches = [i for i, n in enumerate(names) if n == choice]
  if len(matches) == 1:
    return matches[0]
  if matches:
    raise ValueError(f'eval.dataset={choice!r}: data sets {matches} share that name; pass the '
                     'index instead (--config.eval.dataset=1)')
  raise ValueError(f'eval.dataset={choice!r} is not one of the run\'s data sets '
                   f'({", ".join(names)}); pass one of these names or an index')


def check_checkpoint_datasets(saved: Sequence[str] | None, current: Sequence[str],
                              where: str) -> None:
  """Refuses to restore heads trained on the data sets `saved` into a run over `current`.

  Args:
    saved: the names stored with the checkpoint (None: a checkpoint written before they were).
    current: the data sets' names of this run (`DataSpec.names`).
    where: the checkpoint folder, for the message.

  Raises:
    ValueError: the data sets differ in number or order.
  """
  if saved is None or list(saved) == list(current):
    return
  raise ValueError(f'{where} was trained on data sets {list(saved)} (one head each, in that '
                   f'order), this config has {list(current)}: list data.data_dirs in the '
                   'training order, or use another workdir')
