"""Dataset preparation: videos or rawframes -> sharded TFRecords (offline, never imported by training).

Split files, the plan (which video goes in which shard), video decoding, the shard writer and its
worker processes, the batched flow writer (TV-L1 in JAX fed by decoding workers), rawframes import,
the writer's JPEG codec, and the synthetic action videos of the demo.

May import: `twostream_jax.flow` (flow algorithms) and `twostream_jax.data`'s schema, metadata and
test positions (`data.protocol_positions`, numpy only).
Nothing else of the package.
"""
