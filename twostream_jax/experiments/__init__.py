"""Experiments that run many trainings of the package: the paper's ablations on the synthetic set
(`ablations`, `--config configs/ablations.py`). Entry-point level: may import every subpackage and
the demo. This `__init__` imports no submodule.
"""
