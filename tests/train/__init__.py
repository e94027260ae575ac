"""Tests of twostream_jax.train."""
