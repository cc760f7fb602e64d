"""check_base_url, check_timeout, check_max_connections, check_max_retries, delays, fractions.

The BAD_* tables are plain data so that client-level tests can reuse them.
"""

from __future__ import annotations

import ast
import math
import traceback
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import pytest

import wxlogistics._validate
from wxlogistics import ValidationError
from wxlogistics._constants import DEFAULT_CONNECT_TIMEOUT
from wxlogistics._validate import (
    MAX_CONNECTIONS,
    MAX_DELAY,
    MAX_RETRIES,
    MAX_TIMEOUT,
    check_base_url,
    check_delay,
    check_fraction,
    check_max_connections,
    check_max_retries,
    check_timeout,
)

PACKAGE = str(Path(wxlogistics.__file__).parent)

# (base_url, words the message must contain)
BAD_BASE_URLS: list[tuple[Any, str]] = [
    (None, "base_url must be a str, not NoneType"),
    (b"https://api.weixin.qq.com", "base_url must be a str, not bytes"),
    ("", "base_url must start with https:// or http://"),
    ("api.weixin.qq.com", "base_url must start with https:// or http://"),
    ("ftp://x", "base_url must start with https:// or http://"),
    ("file:///etc/passwd", "base_url must start with https:// or http://"),
    ("javascript:alert(1)", "base_url must start with https:// or http://"),
    ("http://", "base_url has no host"),
    ("https://", "base_url has no host"),
    ("http:///path", "base_url has no host"),
    ("https:api.weixin.qq.com", "base_url has no host"),
    ("http://:8080", "base_url has no host"),
    ("https://api.weixin.qq.com:", "base_url has an empty port"),
    ("https://api.weixin.qq.com:/x", "base_url has an empty port"),
    ("https://api.weixin.qq.com:0", "not a number from 1 to 65535"),
    ("https://api.weixin.qq.com:65536", "not a number from 1 to 65535"),
    ("https://api.weixin.qq.com:99999999999", "not a number from 1 to 65535"),
    ("https://api.weixin.qq.com:+443", "not a number from 1 to 65535"),
    ("https://api.weixin.qq.com:https", "not a number from 1 to 65535"),
    ("https://api.weixin.qq.com::443", "not a number from 1 to 65535"),
    ("https://api.weixin.qq.com/cgi-bin?x=1", "base_url must not have a query string"),
    ("https://api.weixin.qq.com/?", "base_url must not have a query string"),
    ("https://api.weixin.qq.com#top", "base_url must not have a fragment"),
    ("https://api.weixin.qq.com/#", "base_url must not have a fragment"),
    ("https://api.weixin.qq.com /x", "base_url must not contain white space"),
    (" https://api.weixin.qq.com", "at position 0"),
    ("https://api.weixin.qq.com\r\nX-Injected: 1", "base_url must not contain white space"),
    ("https://api.weixin.qq.com\n", "base_url must not contain white space"),
    ("https://api.weixin.qq.com/\x00", "base_url must not contain white space"),
    ("https://api.weixin.qq.com\u3000", "base_url must not contain white space"),
    ("https://api.weixin.qq.com\\@evil.example", "a backslash"),
    ("https://api.weixin.qq.com/\ud800", "a control character"),
    ("https://a..b", "base_url has an invalid host name"),
    ("https://.example.com", "base_url has an invalid host name"),
    ("https://exa<mple.com", "base_url has an invalid host name"),
    ("https://" + "a" * 64 + ".example", "base_url has an invalid host name"),
    ("https://[::1", "base_url is not a valid URL"),
    ("https://[not-ipv6]", "IPv6"),  # urlsplit checks the brackets from 3.11.4 on, we always
    ("https://[::1]junk", "base_url has an invalid IPv6 host"),
]

# Credentials in the URL: refused, and the message must not repeat them.
CREDENTIAL_URLS = [
    "https://user:hunter2pass@api.weixin.qq.com",
    "https://hunter2pass@api.weixin.qq.com",
    "https://user:hunter2pass@api.weixin.qq.com:/x?q#f",
    "ftp://user:hunter2pass@api.weixin.qq.com",
    "https://user:hunter2pass@[::1]:443",
    "https://user:hunter2pass@[zz]",
    "https:user:hunter2pass@host",  # no authority: still never quoted
]

GOOD_BASE_URLS: list[tuple[str, str]] = [
    ("https://api.weixin.qq.com", "https://api.weixin.qq.com"),
    ("https://api.weixin.qq.com/", "https://api.weixin.qq.com"),
    ("https://api.weixin.qq.com//", "https://api.weixin.qq.com"),
    ("HTTPS://api.weixin.qq.com", "https://api.weixin.qq.com"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://localhost:1", "http://localhost:1"),
    ("https://proxy.example:65535/wx/", "https://proxy.example:65535/wx"),
    ("https://proxy.example/wx/v1", "https://proxy.example/wx/v1"),
    ("https://[::1]:8443/wx", "https://[::1]:8443/wx"),
    ("http://[2001:db8::1]", "http://[2001:db8::1]"),
    ("https://my_proxy.internal", "https://my_proxy.internal"),
    ("https://例子.测试/wx", "https://例子.测试/wx"),
    ("https://proxy.example/a%20b", "https://proxy.example/a%20b"),
]


@pytest.mark.parametrize(("url", "words"), BAD_BASE_URLS)
def test_check_base_url_refuses(url: Any, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_base_url(url)
    assert str(info.value).startswith("base_url ")
    assert words in str(info.value)
    assert info.value.__cause__ is None  # urllib's ValueError, which quotes the URL, is dropped


@pytest.mark.parametrize("url", CREDENTIAL_URLS)
def test_check_base_url_refuses_credentials_without_repeating_them(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_base_url(url)
    assert "hunter2pass" not in str(info.value)
    assert "hunter2pass" not in repr(info.value.args)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None
    for frame, _ in traceback.walk_tb(info.value.__traceback__):
        if frame.f_code.co_filename.startswith(PACKAGE):
            assert "hunter2pass" not in repr(frame.f_locals)


@pytest.mark.parametrize(("url", "expected"), GOOD_BASE_URLS)
def test_check_base_url_normalises(url: str, expected: str) -> None:
    assert check_base_url(url) == expected


@pytest.mark.parametrize(("url", "expected"), GOOD_BASE_URLS)
def test_accepted_base_urls_make_urls_httpx_accepts(url: str, expected: str) -> None:
    """Whatever passes here must not fail later, on the first call, inside httpx."""
    built = httpx.URL(check_base_url(url) + "/cgi-bin/express/business/order/cancel")
    assert built.path.endswith("/cgi-bin/express/business/order/cancel")
    assert built.host
    assert not built.query


# (timeout, words the message must contain)
BAD_TIMEOUTS: list[tuple[Any, str]] = [
    (None, "timeout must not be None"),
    (True, "timeout must be a number of seconds or an httpx.Timeout"),
    (False, "not bool"),
    ("10", "not str"),
    (Fraction(1, 2), "not Fraction"),
    ((5, 10), "not tuple"),
    (0, "timeout must be more than 0 and at most 3600 seconds, not 0"),
    (0.0, "not 0.0"),
    (-1, "not -1"),
    (math.inf, "not inf"),
    (-math.inf, "not -inf"),
    (math.nan, "not nan"),
    (3600.001, "not 3600.001"),
    pytest.param(10**400, "not a huge number", id="10**400"),
    pytest.param(-(10**400), "not a huge negative number", id="-10**400"),
    # repr() of this int raises ValueError (too many digits): the message must not call it.
    pytest.param(10**5000, "not a huge number", id="10**5000"),
    (httpx.Timeout(None), "timeout.connect is not set (None)"),
    (httpx.Timeout(5.0, read=None), "timeout.read is not set (None)"),
    (httpx.Timeout(5.0, pool=None), "timeout.pool is not set (None)"),
    (httpx.Timeout(math.inf), "timeout.connect must be more than 0"),
    (httpx.Timeout(5.0, write=math.inf), "timeout.write must be more than 0"),
    (httpx.Timeout(5.0, read=math.nan), "timeout.read must be more than 0"),
    (httpx.Timeout(5.0, read=0), "timeout.read must be more than 0"),
    pytest.param(
        httpx.Timeout(5.0, read=10**400), "timeout.read must be more than 0", id="read=10**400"
    ),
    (httpx.Timeout(5.0, connect=True), "timeout.connect must be a number of seconds, not bool"),
    (httpx.Timeout(5.0, read="5"), "timeout.read must be a number of seconds, not str"),
]


@pytest.mark.parametrize(("value", "words"), BAD_TIMEOUTS)
def test_check_timeout_refuses(value: Any, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_timeout(value)
    assert str(info.value).startswith("timeout")
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (10, (5.0, 10.0, 10.0, 10.0)),
        (10.0, (5.0, 10.0, 10.0, 10.0)),
        (0.5, (0.5, 0.5, 0.5, 0.5)),
        (DEFAULT_CONNECT_TIMEOUT, (5.0, 5.0, 5.0, 5.0)),
        (MAX_TIMEOUT, (5.0, 3600.0, 3600.0, 3600.0)),
        (httpx.Timeout(7.0), (7.0, 7.0, 7.0, 7.0)),
        (httpx.Timeout(10, connect=1, read=2, write=3, pool=4), (1.0, 2.0, 3.0, 4.0)),
    ],
)
def test_check_timeout_resolves(value: Any, expected: tuple[float, float, float, float]) -> None:
    result = check_timeout(value)
    assert result == expected
    assert all(type(part) is float for part in result)


def test_check_timeout_is_duck_typed() -> None:
    class Parts:
        connect, read, write, pool = 1, 2.5, 3, 4

    assert check_timeout(Parts()) == (1.0, 2.5, 3.0, 4.0)


BAD_MAX_CONNECTIONS: list[tuple[Any, str]] = [
    (0, "from 1 to 10,000, not 0"),
    (-1, "not -1"),
    (MAX_CONNECTIONS + 1, "not 10001"),
    pytest.param(10**400, "not a huge number", id="10**400"),
    (True, "must be an int, not bool"),
    (10.0, "not float"),
    ("10", "not str"),
    (None, "not NoneType"),
]

BAD_MAX_RETRIES: list[tuple[Any, str]] = [
    (-1, "from 0 to 100, not -1"),
    (MAX_RETRIES + 1, "not 101"),
    pytest.param(10**400, "not a huge number", id="10**400"),
    (True, "must be an int, not bool"),
    (False, "must be an int, not bool"),
    (2.5, "not float"),
    (math.inf, "not float"),
    ("2", "not str"),
    (None, "not NoneType"),
]


@pytest.mark.parametrize(("value", "words"), BAD_MAX_CONNECTIONS)
def test_check_max_connections_refuses(value: Any, words: str) -> None:
    with pytest.raises(ValidationError, match=r"^max_connections ") as info:
        check_max_connections(value)
    assert words in str(info.value)


@pytest.mark.parametrize("value", [1, 100, MAX_CONNECTIONS])
def test_check_max_connections_accepts(value: int) -> None:
    assert check_max_connections(value) == value


@pytest.mark.parametrize(("value", "words"), BAD_MAX_RETRIES)
def test_check_max_retries_refuses(value: Any, words: str) -> None:
    with pytest.raises(ValidationError, match=r"^max_retries ") as info:
        check_max_retries(value)
    assert words in str(info.value)


@pytest.mark.parametrize("value", [0, 2, MAX_RETRIES])
def test_check_max_retries_accepts(value: int) -> None:
    assert check_max_retries(value) == value


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (-0.1, "not -0.1"),
        (math.inf, "not inf"),
        (math.nan, "not nan"),
        (MAX_DELAY + 1, "not 3601.0"),
        pytest.param(10**400, "not a huge number", id="10**400"),
        (True, "not bool"),
        (None, "not NoneType"),
        ("1", "not str"),
    ],
)
def test_check_delay_refuses(value: Any, words: str) -> None:
    with pytest.raises(ValidationError, match=r"^initial_delay ") as info:
        check_delay("initial_delay", value)
    assert words in str(info.value)


@pytest.mark.parametrize("value", [0, 0.0, 0.5, 8, MAX_DELAY])
def test_check_delay_accepts(value: float) -> None:
    assert check_delay("initial_delay", value) == value


@pytest.mark.parametrize(
    ("value", "words"),
    [(-0.01, "not -0.01"), (1.01, "not 1.01"), (math.nan, "not nan"), (True, "not bool")],
)
def test_check_fraction_refuses(value: Any, words: str) -> None:
    with pytest.raises(ValidationError, match=r"^jitter must be a number from 0 to 1") as info:
        check_fraction("jitter", value)
    assert words in str(info.value)


@pytest.mark.parametrize("value", [0, 0.25, 1])
def test_check_fraction_accepts(value: float) -> None:
    assert check_fraction("jitter", value) == value


def test_validate_module_imports_no_http_library() -> None:
    """Pure checks: only the standard library and wxlogistics itself (the one-seam rule)."""
    source = Path(wxlogistics._validate.__file__).read_text(encoding="utf-8")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "ipaddress", "re", "urllib", "typing"}
