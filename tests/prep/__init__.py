"""Tests of twostream_jax.prep."""
