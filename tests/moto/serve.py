"""moto's server, with each request handled atomically.

`moto_server` serves requests on parallel threads and does not lock around a DynamoDB
TransactWriteItems or a conditional write: two concurrent transactions can both pass their
conditions, which real DynamoDB never allows. keygate's race tests (exactly one of N concurrent
refreshes wins) would then fail at random. This runs the same WSGI application behind one lock, so
every request is applied as a whole before the next starts, as each DynamoDB request is; connections
are still accepted in parallel.

usage: python serve.py -H 127.0.0.1 -p PORT
"""

import argparse
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


class Serialized:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            # Materialise the body inside the lock: the response is computed while iterating.
            return list(self.app(environ, start_response))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, Serialized(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
