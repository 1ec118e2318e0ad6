"""Scale-out: context parallelism (ring attention over sequence shards) and FSDP2 sharding of the DiT.

- :func:`ring_attention`: exact self-attention over a sequence split into contiguous, possibly uneven
  shards across a process group; :func:`shard_sequence`, :func:`gather_sequence` and
  :func:`shard_sizes` split and reassemble the sequence; :func:`context_parallel` turns it on in a DiT.
  :func:`ulysses_attention`: the same by all-to-alls over heads, alone or around a ring (hybrid).
- :func:`shard_model`: FSDP2 per DiT block on a 1-D (data) or 2-D (data, context) device mesh;
  :func:`save_sharded`/:func:`load_sharded`: distributed checkpoints that load at any world size.

docs/DISTRIBUTED.md has the usage under torchrun and the scaling model (ring vs Ulysses).
"""

from cosmos_kernels.distributed.fsdp import load_sharded, save_sharded, shard_model
from cosmos_kernels.distributed.ring_attention import ring_attention
from cosmos_kernels.distributed.sequence import context_parallel, gather_sequence, shard_sequence, shard_sizes
from cosmos_kernels.distributed.ulysses import ulysses_attention

__all__ = [
    "context_parallel",
    "gather_sequence",
    "load_sharded",
    "ring_attention",
    "save_sharded",
    "shard_model",
    "shard_sequence",
    "shard_sizes",
    "ulysses_attention",
]
