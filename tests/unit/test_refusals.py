"""Warnings about refused connections: one per interval, however many are refused."""

from __future__ import annotations

import logging

import pytest

from actors.refusals import RefusalReport


def test_refusals_are_warned_of_at_most_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    report = RefusalReport(logging.getLogger("test.refusals"), "full", interval=60.0)
    with caplog.at_level(logging.WARNING, "test.refusals"):
        for now in (0.0, 1.0, 2.0, 59.0, 60.0, 61.0):
            report.refused(now)
    assert [record.getMessage() for record in caplog.records] == [
        "full: 1 connection(s) closed at once since the last warning",
        "full: 4 connection(s) closed at once since the last warning",
    ]
    assert report.unreported == 1
