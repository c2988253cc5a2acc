from __future__ import annotations

from llmops_devtools.stack.kafka import _cluster_id


def test_cluster_ids_never_look_like_an_option_to_storage_tool() -> None:
    ids = [_cluster_id() for _ in range(2000)]  # about 30 of these would start with '-' unchecked
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(i) == 22 for i in ids)
