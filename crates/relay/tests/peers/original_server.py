#!/usr/bin/env python3
"""A server of seed 002's original chat, written for protolab's tests from the
behaviour issue #17 describes (not from its code): it keeps a log of payloads
(chat lines `name: text` and `Server: ('IP', PORT) has joined the net`), sends
each client the log's frames one at a time, resending about once a second
until the client ACKs that number, and takes each recv(1024) as exactly one
frame. It prints every log entry on standard output (and the bound port first)."""

import argparse
import socket
import threading
import time


def frame(number, ack, payload=b""):
    return number.to_bytes(32, "big", signed=True) + (b"\x01" if ack else b"\x00") + payload


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    args = parser.parse_args()
    host, port = args.address.rsplit(":", 1)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, int(port)))
    listener.listen()
    print(f"port {listener.getsockname()[1]}", flush=True)
    log = []
    cond = threading.Condition()

    def append(payload):
        with cond:
            log.append(payload)
            print(payload.decode(), flush=True)
            cond.notify_all()

    def serve(conn, addr):
        acked = {"n": -1}
        append(f"Server: {addr} has joined the net".encode())

        def receive():
            while True:
                data = conn.recv(1024)
                if not data:
                    return
                number = int.from_bytes(data[:32], "big", signed=True)
                if data[32] == 1:
                    with cond:
                        acked["n"] = max(acked["n"], number)
                        cond.notify_all()
                else:
                    append(data[33:])

        threading.Thread(target=receive, daemon=True).start()
        position = 0
        while True:
            with cond:
                while position >= len(log):
                    cond.wait()
                payload = log[position]
            while True:
                conn.sendall(frame(position, False, payload))
                deadline = time.time() + 1.0
                with cond:
                    while acked["n"] < position and time.time() < deadline:
                        cond.wait(deadline - time.time())
                    if acked["n"] >= position:
                        break
            position += 1

    while True:
        conn, addr = listener.accept()
        threading.Thread(target=serve, args=(conn, addr), daemon=True).start()


if __name__ == "__main__":
    main()
