"""One process of the two-process stop test (tests/train/test_stop_agreement.py).

  python tests/train/stop_agreement_driver.py COORDINATOR PROCESS_ID SIGNAL_AT_STEP

Joins a 2-process jax.distributed run (one CPU device each), calls `StopAgreement.stop_after`
once per step as the training loop does, and sends itself SIGTERM after step SIGNAL_AT_STEP
(-1: never). Prints 'stop after step N' for the first step it is told to stop after.
"""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import jax  # pylint: disable=g-import-not-at-top


def main(coordinator, process_id, signal_at_step):
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(coordinator_address=coordinator, num_processes=2,
                             process_id=int(process_id))
  # pylint: disable=g-import-not-at-top
  from twostream_jax.train import preemption
  from twostream_jax.train import sharding
  with preemption.StopSignals() as signals:
    agreement = preemption.StopAgreement(signals, sharding.create_mesh())
    for step in range(1, 20):
      if step == int(signal_at_step):
        os.kill(os.getpid(), signal.SIGTERM)
      if agreement.stop_after(step):
        print(f'stop after step {step} (signal here: {signals.requested})', flush=True)
        break
  jax.distributed.shutdown()


if __name__ == '__main__':
  main(*sys.argv[1:])
