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

from moto.core.common_models import BaseModel


def untrack_dynamodb_values():
    """moto keeps every model instance it ever creates in a class list, for its dashboard
    (`/moto-api/data.json`; moto/core/common_models.py). Its DynamoDB creates models per request:
    an Item and DynamoTypes for every item a Scan or Query copies, and a whole Table copy (every
    item) for each TransactWriteItems, its backup in case the transaction fails. Tracked, none is
    ever freed: the server grew by about 3 MB per such request on a 2,400-item table, 24 GB within
    one benchmark run. DynamoDB's models are therefore not tracked (nothing here reads them from the
    dashboard); every other service's still are (SES's messages, which the mailer tests read)."""
    tracked_new = BaseModel.__new__

    def new(cls, *args, **kwargs):
        if cls.__module__.startswith("moto.dynamodb."):
            return object.__new__(cls)
        return tracked_new(cls, *args, **kwargs)

    BaseModel.__new__ = staticmethod(new)


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
    untrack_dynamodb_values()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, Serialized(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
