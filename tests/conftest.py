from __future__ import annotations

import pytest
from hypothesis import settings

# No per-example deadline: on a shared 2-core CI machine a first example can take longer
# than hypothesis's 200 ms while nothing is wrong (a timing failure, not a property's).
settings.register_profile("wxlogistics", deadline=None)
settings.load_profile("wxlogistics")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every ``@pytest.mark.anyio`` test on asyncio and on trio."""
    return str(request.param)
