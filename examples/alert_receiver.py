"""A webhook receiver to try Driftline's alert subscriptions with (standard library only).

    python examples/alert_receiver.py --port 9000 --secret s3cret

prints each notification and whether its X-Driftline-Signature matches the secret. Answers
200 (Driftline retries anything else with backoff: stop this for a while to see it).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any


def verified(secret: str, body: bytes, header: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--secret", default="", help="the subscription's secret")
    args = parser.parse_args()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            signature = self.headers.get("X-Driftline-Signature", "")
            if args.secret:
                good = verified(args.secret, body, signature)
                check = "signature OK" if good else "BAD SIGNATURE"
            else:
                check = "unsigned" if not signature else "signed (no --secret to check)"
            note = json.loads(body)
            alert = note["alert"]
            now = datetime.now(UTC).strftime("%H:%M:%S")
            print(
                f"[{now}] webhook {note['event'].upper():8} {alert['rule_name']} "
                f"{alert['model']!r} {alert['feature'] or ''} {alert['metric']} = {alert['value']}"
                f"{' (repeat)' if note.get('repeat') else ''} — {check}, "
                f"delivery {self.headers.get('X-Driftline-Delivery')}",
                flush=True,
            )
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *a: Any) -> None:
            pass

    print(f"listening on http://127.0.0.1:{args.port}/", flush=True)
    HTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
