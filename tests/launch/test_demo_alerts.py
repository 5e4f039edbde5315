"""`driftline demo` as a user runs it, with a webhook subscription: the injected drift fires
an alert that a real local receiver gets, signed, and a resolved one follows once the drift
ends."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from helpers import wait_until
from helpers.webhook_receiver import WebhookReceiver

from driftline.broker import free_port


def subscribe(api: str, url: str) -> bool:
    body = json.dumps({"url": url, "secret": "s3cret", "labels": {"feature": "age"}}).encode()
    request = urllib.request.Request(
        f"{api}/v1/subscriptions", body, {"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return bool(reply.status == 201)
    except OSError:
        return False


def test_demo_drift_fires_and_resolves_a_signed_webhook(tmp_path: Path) -> None:
    api_port, kafka_port = free_port(), free_port()
    log = tmp_path / "demo.log"
    with WebhookReceiver() as receiver:
        demo = subprocess.Popen(
            [sys.executable, "-m", "launch.cli", "demo",
             "--duration", "60", "--window-seconds", "2",
             "--drift-after", "14", "--drift-duration", "14",
             "--api-port", str(api_port), "--kafka-port", str(kafka_port),
             "--data-dir", str(tmp_path / "data")],
            stdout=log.open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            api = f"http://127.0.0.1:{api_port}"
            wait_until(lambda: subscribe(api, receiver.url), timeout=30, what="a subscription")
            wait_until(lambda: [e for e, _ in receiver.events()] == ["firing", "resolved"],
                       timeout=75, what="the age alert firing, then resolved")  # fmt: skip
        finally:
            demo.terminate()
            demo.wait(timeout=60)
    firing, resolved = (r.json for r in receiver.received)
    assert firing["alert"]["rule_id"] == "default-missing-rate"
    assert firing["alert"]["feature"] == "age" and firing["alert"]["value"] > 0.1
    assert resolved["alert"]["id"] == firing["alert"]["id"]
    assert all(r.signed_by("s3cret") for r in receiver.received)
    out = log.read_text()
    assert "ALERT firing   FeatureMissingRateHigh" in out and "ALERT resolved" in out
    assert "drift ends now" in out
