"""RecentRequests (the exporter-retry digests) against a plain ordered model, collisions included."""

import tracemalloc
from collections import OrderedDict

from hypothesis import given
from hypothesis import strategies as st

from tokenpulse.collector.pipeline import RecentRequests, request_digest

# A small pool of digests whose home slots collide often in a small table.
_POOL = [bytes([i % 4]) * 8 + bytes([i]) * 8 for i in range(24)]
_POOL += [request_digest(b"x%d" % i) for i in range(8)] + [b"short"]


@given(
    capacity=st.integers(1, 9),
    ops=st.lists(st.tuples(st.booleans(), st.sampled_from(_POOL)), max_size=200),
)
def test_recent_requests_behave_like_a_bounded_ordered_set(
    capacity: int, ops: list[tuple[bool, bytes]]
) -> None:
    recent = RecentRequests(capacity)
    model: OrderedDict[bytes, None] = OrderedDict()
    for is_add, digest in ops:
        if is_add:
            recent.add(digest)
            if digest not in model:
                model[digest] = None
                if len(model) > capacity:
                    model.popitem(last=False)
        assert (digest in recent) == (digest in model)
        assert len(recent) == len(model)
    assert all((digest in recent) == (digest in model) for digest in _POOL)


def test_recent_requests_take_no_more_memory_as_they_fill() -> None:
    recent = RecentRequests(capacity=20_000)
    digests = [request_digest(i.to_bytes(4, "big")) for i in range(30_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for digest in digests:
            recent.add(digest)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024  # an OrderedDict of 20k digests takes ~3 MiB
    assert digests[-1] in recent and digests[-20_000] in recent and digests[-20_001] not in recent
