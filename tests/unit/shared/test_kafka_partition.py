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


def test_murmur2_is_aiokafkas_for_every_length() -> None:
    import random

    from aiokafka.partitioner import murmur2 as aiokafka_murmur2

    from llmops_shared.kafka import murmur2

    assert murmur2 is not aiokafka_murmur2  # the suite's own (~2 µs less a key), the same values
    rng = random.Random(26)
    for length in range(0, 150):
        for _ in range(40):
            data = bytes(rng.getrandbits(8) for _ in range(length))
            assert murmur2(data) == aiokafka_murmur2(data), data
    for data in (b"\xff" * 64, b"\x00" * 7, b"\x80\x00\x00\x00" * 9, "trace-é-😀".encode()):
        assert murmur2(data) == aiokafka_murmur2(data)
