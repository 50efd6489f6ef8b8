import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benches"))


def have_adapter():
    import brian2wgpu
    return bool(brian2wgpu.list_adapters())


@pytest.fixture
def gpu():
    """GPU tests fail under CI=true without an adapter; elsewhere they skip."""
    if not have_adapter():
        if os.environ.get("CI") in ("true", "1"):
            pytest.fail("CI requires a wgpu adapter (install mesa-vulkan-drivers)")
        pytest.skip("no wgpu adapter")
    return True


@pytest.fixture(autouse=True, scope="session")
def integrator_cache_dir(tmp_path_factory):
    """The state-updater disk cache in a fresh directory: tests never read or fill the
    user's cache, and every model a second test builds again goes through cache hits."""
    where = tmp_path_factory.mktemp("integrators")
    os.environ["BRIAN2WGPU_INTEGRATOR_CACHE"] = str(where)
    yield where
