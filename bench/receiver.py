"""A webhook receiver for bench/run.sh --feeds: takes every message on loopback (204) and counts
them and their bytes, doing as little as it can (it shares the machine with scimd). Prints its
port on the first line, then nothing; SIGTERM ends it and writes "messages bytes" to the file
given.

    receiver.py COUNT_FILE
"""

import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

counts = {"messages": 0, "bytes": 0}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        size = int(self.headers["content-length"])
        self.rfile.read(size)
        with lock:
            counts["messages"] += 1
            counts["bytes"] += size
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def stop(*_):
        with open(sys.argv[1], "w") as f:
            f.write(f"{counts['messages']} {counts['bytes']}\n")
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
