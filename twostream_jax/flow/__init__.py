"""Optical flow: the OpenCV algorithms (`algorithms`), TV-L1 in JAX (`tvl1_jax`, `tvl1_ops`) and
flow pictures in the Middlebury colour wheel (`visualization`).

Imports nothing of the package. `tvl1_jax` and `tvl1_ops` are JAX only (no TensorFlow, no OpenCV),
so that they run on accelerator hosts without TensorFlow; `algorithms` needs OpenCV. This
`__init__` imports no submodule, so importing one does not load the others' dependencies.
"""
