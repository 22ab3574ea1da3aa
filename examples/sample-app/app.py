"""A tiny fleet-management HTTP service, the sample that agent-orch's demo workflow deploys
locally and verifies. Standard library only."""

import argparse
import json
import secrets
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fleet import VEHICLES, fleet_summary, utilization

VERSION = "1.0.0"
TOKENS = set()


class Handler(BaseHTTPRequestHandler):
    def _send(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self):
        header = self.headers.get("Authorization", "")
        return header.startswith("Bearer ") and header[len("Bearer "):] in TOKENS

    def do_GET(self):
        if self.path == "/health":
            self._send(200, {"status": "ok", "version": VERSION})
        elif self.path == "/":
            self._send(200, b"<html><body><h1>Fleet</h1></body></html>", "text/html")
        elif self.path == "/login":
            self._send(200, b"<html><body><form>login</form></body></html>", "text/html")
        elif self.path == "/api/v1/vehicles":
            if not self._authorized():
                self._send(401, {"error": "missing or invalid bearer token"})
                return
            vehicles = [dict(v, utilization=utilization(v)) for v in VEHICLES]
            self._send(200, {"vehicles": vehicles, "summary": fleet_summary(VEHICLES)})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self):
        if self.path == "/api/auth/login":
            length = int(self.headers.get("Content-Length", "0"))
            try:
                credentials = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                self._send(400, {"error": "body is not JSON"})
                return
            if credentials.get("user") and credentials.get("password"):
                token = secrets.token_hex(16)
                TOKENS.add(token)
                self._send(200, {"token": token})
            else:
                self._send(401, {"error": "user and password are required"})
        else:
            self._send(404, {"error": "not found"})

    def log_message(self, format, *args):
        print("%s %s" % (self.address_string(), format % args), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8087)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("fleet sample listening on http://127.0.0.1:%d" % args.port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
