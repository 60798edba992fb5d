"""The emulator's server process, run by scripts/emulator (start and serve) with the
venv's python.

moto's WSGI app (as its own moto_server runs it) in werkzeug's threaded server, bound in
the main thread before the URL is printed: a reader of the URL can connect at once, and a
bind error ends the process at once.

    server.py MARKER [--port N] [--port-file PATH] [--exit-on-stdin-eof]

MARKER (argv[1]) lets `scripts/emulator stop` recognise its own process. --port 0 (the
default) lets the kernel choose the port. Once listening, it writes the port to
--port-file (atomically, via PATH.tmp) if given, then prints its URL on stdout. It exits on
SIGTERM, SIGINT or SIGHUP, and with --exit-on-stdin-eof also when its stdin closes.
"""

import os, signal, sys, threading

args = sys.argv[2:]
port = int(args[args.index("--port") + 1]) if "--port" in args else 0
port_file = args[args.index("--port-file") + 1] if "--port-file" in args else None

from werkzeug.serving import make_server
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

# DynamoDB applies each write to an item atomically, and the status tables rely on it (a
# conditional ADD per finished segment). moto evaluates a condition and applies an update in
# steps that nothing synchronises across its request threads, so two concurrent updates of
# one item could interleave. One lock around every DynamoDB call gives the atomicity of the
# real service; S3 and SQS (long polls) stay concurrent.
app = DomainDispatcherApplication(create_backend_app)
dynamodb_lock = threading.Lock()

def serialised_dynamodb(environ, start_response):
    if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
        return app(environ, start_response)
    with dynamodb_lock:
        result = app(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            getattr(result, "close", lambda: None)()
    return [body]

server = make_server(
    "127.0.0.1",
    port,
    serialised_dynamodb,
    threaded=True,
    request_handler=MotoRequestHandler,
)
host, port = server.server_address[:2]
threading.Thread(target=server.serve_forever, daemon=True).start()
os.environ["MOTO_PORT"] = str(port)  # moto builds some URLs from it
if port_file:
    with open(port_file + ".tmp", "w") as f:
        f.write(f"{port}\n")
    os.replace(port_file + ".tmp", port_file)

stop = threading.Event()
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, lambda *_: stop.set())

if "--exit-on-stdin-eof" in args:
    # The parent holds the write end of our stdin; the kernel closes it when
    # the parent exits, however it exits (even SIGKILL), and read() sees EOF.
    def watch_stdin():
        while sys.stdin.buffer.read1(4096):
            pass
        stop.set()
    threading.Thread(target=watch_stdin, daemon=True).start()

print(f"http://{host}:{port}", flush=True)
print(f"moto server listening on http://{host}:{port}, pid {os.getpid()}", file=sys.stderr, flush=True)
while not stop.wait(1.0):
    pass
# The state is in memory only: nothing to flush, and in-flight requests need not finish.
os._exit(0)
