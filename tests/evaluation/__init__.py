"""Tests of twostream_jax.evaluation."""
