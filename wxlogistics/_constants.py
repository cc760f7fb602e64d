"""Defaults, named so that users and docs can refer to them."""

from __future__ import annotations

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
]

__version__ = "0.1.0"

DEFAULT_BASE_URL = "https://api.weixin.qq.com"
"""WeChat's API host."""
DEFAULT_TIMEOUT = 10.0
"""Seconds allowed for each read, write and pool wait of one attempt."""
DEFAULT_CONNECT_TIMEOUT = 5.0
"""Seconds allowed to open a connection."""
DEFAULT_MAX_RETRIES = 2
"""Retries after the first attempt, for failures the retry policy deems retryable."""
DEFAULT_MAX_CONNECTIONS = 100
"""Concurrent requests per client; further callers wait their turn (no timeout on the queue)."""
