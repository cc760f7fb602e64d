"""cancel-batch: configuration errors stop the batch, broken input is refused before sending.

The CLI runs in this process (``cli.main``) against a fake WeChat served over HTTP from a
thread, so the tests can count every request the fake received.
"""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.from_thread
import attrs
import pytest

import wxlogistics as wx
from wxlogistics import cli
from wxlogistics.testing import FakeResponse, FakeWeChat, serve

APPID = "wxfake0000000000"
SECRET = "fake-app-secret"
CANCEL = "/cgi-bin/express/business/order/cancel"
TOKEN_PATHS = {"/cgi-bin/stable_token", "/cgi-bin/token"}


class Served:
    """A fake WeChat served over HTTP on loopback, from a thread of its own."""

    def __init__(self, fake: FakeWeChat, url: str) -> None:
        self.fake = fake
        self.url = url

    def token_requests(self) -> int:
        return sum(call.path in TOKEN_PATHS for call in self.fake.calls)

    def cancel_requests(self) -> int:
        return sum(call.path == CANCEL for call in self.fake.calls)


def serving(fake: FakeWeChat) -> Iterator[Served]:
    with anyio.from_thread.start_blocking_portal() as portal:
        future, port = portal.start_task(serve, fake, "127.0.0.1", 0)
        try:
            yield Served(fake, f"http://127.0.0.1:{port}")
        finally:
            future.cancel()


@pytest.fixture
def served() -> Iterator[Served]:
    yield from serving(FakeWeChat(appid=APPID, secret=SECRET))


def orders(path: Path, fake: FakeWeChat, n: int) -> None:
    """A CSV of ``n`` orders, each a waybill the fake can cancel."""
    lines = ["order_id,delivery_id,waybill_id,openid"]
    for i in range(n):
        fake.add_waybill(f"B{i:04d}", "SF", f"W{i}")
        lines.append(f"B{i:04d},SF,W{i},")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def batch(
    served: Served, file: Path, *extra: str, secret: str = SECRET, concurrency: int = 8
) -> int:
    return cli.main(
        [
            "cancel-batch",
            str(file),
            "--appid",
            APPID,
            "--secret",
            secret,
            "--base-url",
            served.url,
            "--concurrency",
            str(concurrency),
            *extra,
        ]
    )


def results(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def assert_all_cancelled_once(served: Served, output: Path, n: int) -> None:
    """Every order has exactly one final line, each cancelled, and WeChat cancelled each once."""
    final = [r for r in results(output) if r["final"]]
    assert Counter(str(r["order_id"]) for r in final) == {f"B{i:04d}": 1 for i in range(n)}
    assert {r["outcome"] for r in final} == {"cancelled"}
    stats = served.fake.stats()
    assert stats["states"] == {"cancelled": n}
    assert stats["cancelled_twice"] == []


# -- configuration errors stop the batch ----------------------------------------------------------


def test_wrong_secret_sends_one_token_request_records_nothing_and_resume_cancels_all(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file, output = tmp_path / "orders.csv", tmp_path / "orders.csv.results.jsonl"
    orders(file, served.fake, 300)

    assert batch(served, file, secret="wrong-secret") == cli.EXIT_CREDENTIALS
    err = capsys.readouterr().err
    assert "error (errcode 40125): WeChat refused the appid/secret" in err
    assert "stopped before the first cancel: nothing was sent or recorded" in err
    assert "wrong-secret" not in err
    # One token request, not one per few rows; no cancel sent, no row recorded at all.
    assert served.token_requests() == 1
    assert served.cancel_requests() == 0
    assert results(output) == []

    assert batch(served, file) == cli.EXIT_OK
    assert_all_cancelled_once(served, output, 300)
    assert served.token_requests() == 2


class RotatingFake(FakeWeChat):
    """Resets its secret (and revokes every token) after ``after`` successful cancels."""

    def __init__(self, after: int | None) -> None:
        super().__init__(appid=APPID, secret=SECRET)
        self.after = after
        self.successes = 0

    def handle(self, method: str, path: str, query: str, body: bytes) -> FakeResponse:
        answer = super().handle(method, path, query, body)
        if path == CANCEL and json.loads(answer.body).get("errcode") == 0:
            self.successes += 1
            if self.successes == self.after:
                self.secret = "reset-in-the-console"
                self.revoke_tokens()
        return answer


def test_secret_reset_mid_batch_stops_pulling_rows_and_resume_finishes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = RotatingFake(after=50)
    file, output = tmp_path / "orders.csv", tmp_path / "out.jsonl"
    orders(file, fake, 400)
    concurrency = 8
    for served in serving(fake):
        code = batch(served, file, "--output", str(output), concurrency=concurrency)
        assert code == cli.EXIT_CREDENTIALS
        err = capsys.readouterr().err
        assert "error (errcode 40125): WeChat refused the appid/secret" in err
        assert "no further row was sent" in err
        first = results(output)
        done = [r for r in first if r["final"]]
        failed = [r for r in first if not r["final"]]
        assert len(done) == 50
        assert {r["outcome"] for r in done} == {"cancelled"}
        # Only the rows already in flight when the secret changed failed, and they are not
        # recorded as finished; nothing after them was pulled.
        assert 1 <= len(failed) <= concurrency
        assert {(r["outcome"], r["errcode"]) for r in failed} == {("failed", 40125)}
        assert served.cancel_requests() == len(first)
        assert served.token_requests() <= 1 + concurrency

        fake.secret, fake.after = "reset-in-the-console", None
        code = batch(
            served,
            file,
            "--output",
            str(output),
            "--secret",
            "reset-in-the-console",
            concurrency=concurrency,
        )
        assert code == cli.EXIT_OK
        assert "skipped (done before)        50" in capsys.readouterr().out
        assert_all_cancelled_once(served, output, 400)


def test_bad_base_url_mid_batch_stops_with_exit_3(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file, output = tmp_path / "orders.csv", tmp_path / "out.jsonl"
    orders(file, served.fake, 200)
    served.fake.fail_next(status=404, path=CANCEL)  # e.g. a proxy prefix missing from the URL
    assert batch(served, file, "--output", str(output), concurrency=4) == cli.EXIT_UNREACHABLE
    assert "ResponseError: HTTP 404" in capsys.readouterr().err
    first = results(output)
    assert [(r["outcome"], r["final"]) for r in first if not r["final"]] == [("failed", False)]
    assert len(first) < 200

    assert batch(served, file, "--output", str(output), concurrency=4) == cli.EXIT_OK
    assert_all_cancelled_once(served, output, 200)


def test_bad_base_url_stops_before_the_first_cancel(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "orders.csv"
    orders(file, served.fake, 50)
    served.url += "/not-wechat"
    assert batch(served, file) == cli.EXIT_UNREACHABLE
    assert "HTTP 404 from /not-wechat/cgi-bin/stable_token" in capsys.readouterr().err
    assert [c.status for c in served.fake.calls] == [404]
    assert not (tmp_path / "orders.csv.results.jsonl").exists()


def test_unreachable_host_stops_before_the_first_cancel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port nobody listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    file = tmp_path / "orders.csv"
    orders(file, FakeWeChat(), 50)
    served = Served(FakeWeChat(), f"http://127.0.0.1:{port}")
    assert batch(served, file) == cli.EXIT_UNREACHABLE
    err = capsys.readouterr().err
    assert "WeChat could not be reached" in err
    assert "nothing was sent or recorded" in err
    assert not (tmp_path / "orders.csv.results.jsonl").exists()


def test_finished_batch_needs_no_token(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "orders.csv"
    orders(file, served.fake, 5)
    assert batch(served, file) == cli.EXIT_OK
    assert batch(served, file, secret="rotated-since") == cli.EXIT_OK
    assert "skipped (done before)         5" in capsys.readouterr().out
    assert served.token_requests() == 1


def error(cls: type[wx.APIError], errcode: int) -> wx.APIError:
    return cls(errcode, "some errmsg rid: 1a2b-3c4d")


def describe(failure: Exception) -> str:
    if isinstance(failure, wx.APIError):
        return f"{type(failure).__name__}-{failure.errcode}"
    if isinstance(failure, wx.ResponseError):
        return f"HTTP-{failure.status_code}"
    assert isinstance(failure, wx.TransportError)
    sent = "maybe-sent" if failure.may_have_been_sent else "never-sent"
    return f"{type(failure).__name__}-{sent}"


@pytest.mark.parametrize(
    ("failure", "stops", "code"),
    [
        (error(wx.CredentialsError, 40125), True, cli.EXIT_CREDENTIALS),
        (error(wx.CredentialsError, 40164), True, cli.EXIT_CREDENTIALS),
        (error(wx.PermissionDeniedError, 48001), True, cli.EXIT_CREDENTIALS),
        (wx.TransportError("refused", may_have_been_sent=False), True, cli.EXIT_UNREACHABLE),
        (wx.RequestTimeoutError("connect", may_have_been_sent=False), True, cli.EXIT_UNREACHABLE),
        (wx.ResponseError("HTTP 404", status_code=404), True, cli.EXIT_UNREACHABLE),
        (wx.ResponseError("HTTP 401", status_code=401), True, cli.EXIT_UNREACHABLE),
        (error(wx.RateLimitError, 45009), True, cli.EXIT_REFUSED),
        (wx.TransportError("reset", may_have_been_sent=True), False, cli.EXIT_UNREACHABLE),
        (wx.RequestTimeoutError("read", may_have_been_sent=True), False, cli.EXIT_UNREACHABLE),
        (wx.ResponseError("HTTP 502", status_code=502), False, cli.EXIT_UNREACHABLE),
        (wx.ResponseError("HTTP 429", status_code=429), False, cli.EXIT_UNREACHABLE),
        (wx.ResponseError("html", status_code=200), False, cli.EXIT_UNREACHABLE),
        (error(wx.RateLimitError, 45011), False, cli.EXIT_REFUSED),
        (error(wx.SystemBusyError, -1), False, cli.EXIT_REFUSED),
        (error(wx.AccessTokenError, 40001), False, cli.EXIT_REFUSED),
        (error(wx.OrderNotFoundError, 930563), False, cli.EXIT_REFUSED),
        (error(wx.WaybillHasTracesError, 9300506), False, cli.EXIT_REFUSED),
        (error(wx.InvalidArgumentError, 930561), False, cli.EXIT_REFUSED),
    ],
    ids=lambda value: describe(value) if isinstance(value, Exception) else str(value),
)
def test_what_stops_a_batch(failure: wx.WxLogisticsError, stops: bool, code: int) -> None:
    assert cli.stops_batch(failure) is stops
    assert cli.exit_code_for(failure) == code
    request = wx.CancelOrderRequest(order_id="o", delivery_id="SF", waybill_id="w")
    line = json.loads(cli.outcome_line(wx.CancelOutcome(request=request, error=failure), 7))
    if stops:
        assert line["final"] is False  # a resume after fixing the configuration retries it
    assert line["outcome"] != "cancelled"


# -- outcomes -----------------------------------------------------------------------------------

REQUEST = wx.CancelOrderRequest(order_id="o", delivery_id="SF", waybill_id="w")
OK = {"errcode": 0, "errmsg": "ok", "delivery_resultcode": 0, "delivery_resultmsg": ""}


@attrs.frozen(kw_only=True)
class ConfirmedResult(wx.CancelOrderResult):
    """A result as the client returns it when a retry found the waybill cancelled."""

    confirmed_by_retry: bool = True


def test_success_outcome_is_cancelled_and_final() -> None:
    plain = wx.CancelOutcome(request=REQUEST, result=wx.CancelOrderResult.from_api(OK))
    confirmed = wx.CancelOutcome(
        request=REQUEST,
        result=ConfirmedResult(
            errcode=0, errmsg="", delivery_resultcode=None, delivery_resultmsg=None, payload={}
        ),
    )
    for outcome in (plain, confirmed):
        assert (outcome.status, outcome.final, outcome.ok) == ("cancelled", True, True)
    assert "confirmed_by_retry" not in json.loads(cli.outcome_line(plain, 3))
    line = json.loads(cli.outcome_line(confirmed, 3))
    assert line == {
        "order_id": "o",
        "delivery_id": "SF",
        "waybill_id": "w",
        "outcome": "cancelled",
        "errcode": 0,
        "errmsg": "",
        "final": True,
        "line": 3,
        "confirmed_by_retry": True,
    }


@pytest.mark.parametrize(
    "failure",
    [error(wx.CredentialsError, 40125), error(wx.PermissionDeniedError, 48001)],
    ids=["credentials", "permission"],
)
def test_configuration_errors_are_not_final(failure: wx.APIError) -> None:
    outcome = wx.CancelOutcome(request=REQUEST, error=failure)
    assert (outcome.status, outcome.final, outcome.ok) == ("failed", False, False)


def test_outcome_has_a_result_or_an_error() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        wx.CancelOutcome(request=REQUEST)
    with pytest.raises(ValueError, match="exactly one"):
        wx.CancelOutcome(
            request=REQUEST,
            result=wx.CancelOrderResult.from_api(OK),
            error=error(wx.AlreadyCancelledError, 9300524),
        )


# -- broken input is refused before anything is sent ----------------------------------------------


def many_rows(n: int) -> list[str]:
    return ["order_id,delivery_id,waybill_id,openid"] + [f"B{i:04d},SF,W{i}," for i in range(n)]


@pytest.mark.parametrize(
    ("edit", "line", "reason"),
    [
        pytest.param(
            lambda rows: rows.__setitem__(66, 'B0065,SF,"W65,'),
            67,
            "a quote opened on this line is never closed: the rest of the file would be read",
            id="unterminated-quote-swallows-the-rest",
        ),
        pytest.param(
            lambda rows: rows.__setitem__(1066, 'B1065,SF,"W1065,') or rows.extend(many_rows(9000)),
            1067,
            "malformed CSV (field larger than field limit (131072)): is a quote not closed?",
            id="unterminated-quote-in-a-large-file",
        ),
        pytest.param(
            lambda rows: (
                rows.__setitem__(10, 'B0009,SF,"W9,'),
                rows.__setitem__(20, 'B0019,SF,W19",'),
            ),
            11,
            "a quoted field opened on this line runs on to line 21: a quote is not closed",
            id="quote-closed-ten-lines-later",
        ),
        pytest.param(
            lambda rows: rows.__setitem__(0, "order,delivery_id,waybill_id"),
            1,
            "the header must name order_id, delivery_id, waybill_id",
            id="header-without-order_id",
        ),
    ],
)
def test_broken_csv_exits_2_before_sending_anything(
    served: Served,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    edit: object,
    line: int,
    reason: str,
) -> None:
    rows = many_rows(2006)
    edit(rows)  # type: ignore[operator]
    file = tmp_path / "orders.csv"
    file.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert batch(served, file) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert f"orders.csv:{line}: error: {reason}" in err
    assert "nothing was sent" in err
    assert served.fake.calls == []
    assert not (tmp_path / "orders.csv.results.jsonl").exists()


def test_undecodable_line_exits_2_naming_it(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("orders.csv", "orders.jsonl"):
        file = tmp_path / name
        if name.endswith(".csv"):
            rows = [r.encode() for r in many_rows(3000)]
        else:
            rows = [
                json.dumps({"order_id": f"B{i}", "delivery_id": "SF", "waybill_id": "W"}).encode()
                for i in range(3000)
            ]
        rows[2500] = rows[2500].replace(b"SF", b"S\xff")
        file.write_bytes(b"\n".join(rows) + b"\n")
        assert batch(served, file) == cli.EXIT_USAGE
        assert f"{name}:2501: error: not UTF-8 text" in capsys.readouterr().err
    assert served.fake.calls == []


def test_quoted_fields_and_bare_quotes_still_work(tmp_path: Path) -> None:
    file = tmp_path / "orders.csv"
    file.write_text(
        'order_id,delivery_id,waybill_id\r\n"A,1",SF,W1\r\nA2,SF,W"2\r\n"A""3",SF,W3\r\n',
        encoding="utf-8",
    )
    assert cli.check_input(file, None) is None
    rows = list(cli.read_requests(file, None, lambda line, why: pytest.fail(why)))
    assert [(line, r.order_id, r.waybill_id) for line, r in rows] == [
        (2, "A,1", "W1"),
        (3, "A2", 'W"2'),
        (4, 'A"3', "W3"),
    ]


def test_duplicate_names_the_first_line_even_after_it_finished(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "orders.csv"
    orders(file, served.fake, 20)
    with file.open("a", encoding="utf-8") as handle:
        handle.write("B0000,SF,W0,\n")  # line 22 repeats line 2, finished long before
    assert batch(served, file, concurrency=1) == cli.EXIT_OK
    captured = capsys.readouterr()
    assert "orders.csv:22: skipped: duplicate of line 2\n" in captured.err
    assert "None" not in captured.err
    assert "skipped (duplicate)           1" in captured.out
    assert served.cancel_requests() == 20
