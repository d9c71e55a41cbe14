#!/usr/bin/env python3
"""Both ends of bench/network.sh's throughput transfers (by hand, never from tests).

    transfer.py serve PORT SIZE      accept connections forever; send SIZE zero bytes to each
    transfer.py read HOST PORT SIZE  connect, read to the end; exit 0 when SIZE bytes came

Every path (loopback, published port, container to container) is measured with the same
two ends, copying 1 MiB per system call: busybox's nc and a shell's `cat </dev/tcp` copy in
a few KiB at a time and would be the bottleneck of every path, hiding what the path costs.
The server runs in a container's network namespace (`nsenter --net`), which is all the
network path sees of the container.
"""

import socket
import sys

CHUNK = 1 << 20


def serve(port, size):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(16)
    print("ready", flush=True)
    block = memoryview(bytes(CHUNK))
    while True:
        conn, _ = listener.accept()
        try:
            left = size
            while left > 0:
                n = conn.send(block[: min(left, CHUNK)])
                left -= n
        except OSError:
            pass
        conn.close()


def read(host, port, size):
    conn = socket.create_connection((host, port), timeout=30)
    buf = bytearray(CHUNK)
    got = 0
    while True:
        n = conn.recv_into(buf)
        if n == 0:
            break
        got += n
    return 0 if got == size else 1


def main(argv):
    if argv[1:2] == ["serve"]:
        serve(int(argv[2]), int(argv[3]))
    elif argv[1:2] == ["read"]:
        return read(argv[2], int(argv[3]), int(argv[4]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
