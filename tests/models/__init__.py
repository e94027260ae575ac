"""Tests of twostream_jax.models."""
