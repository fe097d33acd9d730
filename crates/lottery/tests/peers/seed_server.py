#!/usr/bin/env python3
"""The lottery server as the seed's author describes it (seed 000): a binary
header `code u8 | agency u8 | len u32 BE`, the payload read completely
(`__recv_all`), codes SEND_BET (1) and SEND_LAST_BET (2) only, each answered
`BET_PROCESSED` (`01 00000000`) once stored. It knows nothing else: any other
code closes the connection. Written for protolab's tests from that
description; every bet is appended, one line each, to the file named on the
command line.

Usage: seed_server.py BETS_FILE; prints "listening on 127.0.0.1:PORT".
"""
import socket
import struct
import sys
import threading

MAX_SIZE = 8192


def recv_all(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def client(conn, path, lock):
    with conn:
        while True:
            header = recv_all(conn, 6)
            if header is None:
                return
            code, agency, length = struct.unpack(">BBI", header)
            if code not in (1, 2) or length > MAX_SIZE:
                return
            payload = recv_all(conn, length)
            if payload is None:
                return
            with lock, open(path, "a", encoding="utf-8") as f:
                for bet in payload.split(b"\0"):
                    if bet:
                        f.write("%d,%s\n" % (agency, bet.decode("utf-8")))
            conn.sendall(struct.pack(">BI", 1, 0))


def main():
    path = sys.argv[1]
    lock = threading.Lock()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    print("listening on 127.0.0.1:%d" % s.getsockname()[1], flush=True)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=client, args=(conn, path, lock), daemon=True).start()


if __name__ == "__main__":
    main()
