"""Every bounded setting refuses what it cannot take, naming the setting (from the
environment, as services are configured)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from driftline.settings import Settings

BAD = [
    ("DRIFTLINE_ALERTMANAGER_RESEND_S", "0"),
    ("DRIFTLINE_ALERTMANAGER_RESEND_S", "86400"),
    ("DRIFTLINE_ALERTMANAGER_RESEND_S", "nan"),
    ("DRIFTLINE_DASHBOARD_URL", "ftp://dashboard"),
    ("DRIFTLINE_DASHBOARD_URL", "http://" + "x" * 3000),
    ("DRIFTLINE_METRICS_HOST", ""),
    ("DRIFTLINE_METRICS_HOST", "h" * 300),
    ("DRIFTLINE_WORKER_METRICS_PORT", "-1"),
    ("DRIFTLINE_WORKER_METRICS_PORT", "65536"),
    ("DRIFTLINE_RETRAINER_METRICS_PORT", "70000"),
    ("DRIFTLINE_MAX_NAME_LENGTH", "0"),
    ("DRIFTLINE_MAX_SEGMENT_KEYS", "100000"),
    ("DRIFTLINE_MAX_EVENT_FUTURE_S", "-5"),
    ("DRIFTLINE_WINDOW_SECONDS", str(8 * 86400)),
    ("DRIFTLINE_MAX_CUSTOM_METRICS", "0"),
    ("DRIFTLINE_MAX_CUSTOM_METRICS", "1001"),
    ("DRIFTLINE_MAX_CUSTOM_METRIC_NAME_LENGTH", "257"),
    ("DRIFTLINE_MAX_WINDOW_CUSTOM_METRICS", "0"),
    ("DRIFTLINE_BATCH_MAX_BYTES", "0"),
    ("DRIFTLINE_BATCH_MAX_BYTES", str(1 << 40)),
    ("DRIFTLINE_BATCH_MAX_BYTES", "32MB"),
]


@pytest.mark.parametrize(("name", "value"), BAD)
def test_an_out_of_bounds_setting_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as error:
        Settings()
    assert name.removeprefix("DRIFTLINE_").lower() in str(error.value)


def test_the_defaults_and_the_edges_are_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in [
        ("DRIFTLINE_ALERTMANAGER_RESEND_S", "3600"),
        ("DRIFTLINE_DASHBOARD_URL", "https://driftline.example/"),
        ("DRIFTLINE_METRICS_HOST", "0.0.0.0"),
        ("DRIFTLINE_WORKER_METRICS_PORT", "65535"),
        ("DRIFTLINE_RETRAINER_METRICS_PORT", "0"),
    ]:
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert (settings.alertmanager_resend_s, settings.worker_metrics_port) == (3600, 65535)
    assert settings.metrics_host == "0.0.0.0" and settings.retrainer_metrics_port == 0
