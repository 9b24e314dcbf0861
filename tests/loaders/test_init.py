"""What importing the loaders sets up."""

import os

import pyarrow as pa
import pytest

import loaders  # noqa: F401 (sets the allocator)


@pytest.mark.skipif("ARROW_DEFAULT_MEMORY_POOL" in os.environ, reason="the operator chose")
def test_arrow_buffers_come_from_jemalloc():
    """Not mimalloc's transparent huge pages, zeroed whole on first touch."""
    assert pa.default_memory_pool().backend_name == "jemalloc"
