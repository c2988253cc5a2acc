"""`kafka.key_partition`: the partition aiokafka's own default partitioner picks for a key."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

from llmops_shared.kafka import key_partition


def test_key_partition_is_the_default_partitioners_choice() -> None:
    partitioner = DefaultPartitioner()
    keys = [f"tenant-{i}/app-{j}".encode() for i in range(20) for j in range(20)] + [b"", b"\xff\x00", "é".encode()]
    for partitions in (1, 3, 6, 12):
        every = list(range(partitions))
        for key in keys:
            assert key_partition(key, partitions) == partitioner(key, every, every)
            assert key_partition(key, partitions) == partitioner(key, every, every)  # cached: the same answer
