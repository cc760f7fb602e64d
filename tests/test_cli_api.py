"""The operator commands beside cancel-batch: ``wxlogistics path`` and ``wxlogistics deliveries``,
against the fake served over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from wxlogistics import cli
from wxlogistics.testing import FakeWeChat

from .test_cli_batch import APPID, SECRET, Served, serving


@pytest.fixture
def served() -> Iterator[Served]:
    yield from serving(FakeWeChat(appid=APPID, secret=SECRET))


def creds(served: Served) -> list[str]:
    return ["--appid", APPID, "--secret", SECRET, "--base-url", served.url]


def test_path_prints_the_track_as_a_table(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    served.fake.add_waybill("o1", "SF", "W1")
    served.fake.add_trace("o1", 100001, "揽件成功", action_time=1_700_000_000)
    served.fake.add_trace("o1", 200001, "运输中", action_time=1_700_003_600)
    code = cli.main(
        ["path", *creds(served), "--order-id", "o1", "--delivery-id", "SF", "--waybill-id", "W1"]
    )
    out = capsys.readouterr().out
    assert code == cli.EXIT_OK
    lines = out.splitlines()
    assert lines[0] == "waybill W1 (SF): 2 events"
    assert lines[1].split() == ["time", "(UTC)", "type", "event"]
    assert lines[3].split() == ["2023-11-14", "22:13:20", "100001", "揽件成功"]
    assert lines[4].split() == ["2023-11-14", "23:13:20", "200001", "运输中"]
    assert SECRET not in out


def test_path_as_json_and_an_unknown_order(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    served.fake.add_waybill("o1", "SF", "W1")
    served.fake.add_trace("o1", 100001, "揽件成功", action_time=1_700_000_000)
    args = ["path", *creds(served), "--delivery-id", "SF", "--waybill-id", "W1", "--json"]
    assert cli.main([*args, "--order-id", "o1"]) == cli.EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert data["path_item_list"] == [
        {"action_time": 1_700_000_000, "action_type": 100001, "action_msg": "揽件成功"}
    ]
    assert cli.main([*args, "--order-id", "nobody"]) == cli.EXIT_REFUSED
    assert "930563" in capsys.readouterr().err


def test_deliveries_lists_carriers_and_service_types(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["deliveries", *creds(served)]) == cli.EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["delivery_id", "name"]
    assert any(line.startswith("TEST ") for line in out[2:])
    assert cli.main(["deliveries", *creds(served), "--json"]) == cli.EXIT_OK
    data = json.loads(capsys.readouterr().out)["data"]
    test = next(d for d in data if d["delivery_id"] == "TEST")
    assert test["service_type"][0]["service_type"] == 1
