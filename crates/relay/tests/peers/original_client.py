#!/usr/bin/env python3
"""A client of seed 002's original chat, written for protolab's tests from the
behaviour issue #17 describes (not from its code): a frame is a 32-byte
big-endian signed number, a flag byte (1: ACK) and a UTF-8 payload; each recv
is taken as exactly one frame. It prints a frame's payload when it has seen
none yet or when the number is its last + 1, and ACKs every frame (unless
--no-ack). Each line of standard input goes out as `name: line`, numbered with
the last number seen."""

import argparse
import socket
import sys
import threading


def frame(number, ack, payload=b""):
    return number.to_bytes(32, "big", signed=True) + (b"\x01" if ack else b"\x00") + payload


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--no-ack", action="store_true")
    args = parser.parse_args()
    host, port = args.address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    state = {"last": None}
    lock = threading.Lock()

    def receive():
        while True:
            data = sock.recv(2048)
            if not data:
                print("#closed", flush=True)
                return
            number = int.from_bytes(data[:32], "big", signed=True)
            payload = data[33:].decode("utf-8")
            with lock:
                if state["last"] is None or number == state["last"] + 1:
                    print(payload, flush=True)
                    state["last"] = number
            if not args.no_ack:
                sock.sendall(frame(number, True))

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    for line in sys.stdin:
        with lock:
            last = state["last"] or 0
        sock.sendall(frame(last, False, f"{args.name}: {line.rstrip(chr(10))}".encode()))
    thread.join()


if __name__ == "__main__":
    main()
