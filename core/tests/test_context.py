"""Request ids: unique, well-formed, and no counter a caller could read."""

from __future__ import annotations

import itertools
import os
import re

from modelbus.context import new_request_id


def test_request_ids_are_unique_and_do_not_count_up() -> None:
    ids = [new_request_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"mb-[0-9a-f]{24}", rid) for rid in ids)

    # consecutive ids share no prefix beyond chance: nothing reveals how many came in between
    def shared_prefix(a: str, b: str) -> int:
        return next((i for i, (x, y) in enumerate(zip(a[3:], b[3:], strict=True)) if x != y), 24)

    shared = [shared_prefix(a, b) for a, b in itertools.pairwise(ids)]
    assert sum(shared) / len(shared) < 1  # about 1/15 for random hex


def test_a_forked_child_draws_its_own_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    assert child != new_request_id()
    assert re.fullmatch(r"mb-[0-9a-f]{24}", child)
