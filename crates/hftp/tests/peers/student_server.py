#!/usr/bin/env python3
"""An HFTP server written the way a student of the course writes one: a thread
per client, a byte buffer split on CR LF, `sendall`. Written for protolab's
tests from the lab's description; its quirks are flags, each a reading of the
lab seen in real student servers:

  --trailing-space   status lines end with a space: "0 OK \r\n"
  --lab 2025         the older lab: no `help` (200) and no raw slices (201)
  --silent           accept connections and never read or answer

Usage: student_server.py DIR [flags]; prints "listening on 127.0.0.1:PORT".
"""
import base64
import os
import re
import socket
import sys
import threading

CODES = {
    0: "OK", 100: "BAD EOL", 101: "BAD REQUEST", 199: "INTERNAL SERVER ERROR",
    200: "NO SUCH COMMAND", 201: "INVALID ARGUMENTS FOR COMMAND",
    202: "FILE NOT FOUND", 203: "OFFSET EXCEEDS FILE SIZE",
}
NAME = re.compile(rb"^[A-Za-z0-9._-]+$")
MAX_LINE = 8 * 1024 * 1024


class Server:
    def __init__(self, directory, trailing_space, lab, silent):
        self.dir = directory
        self.trailing = " " if trailing_space else ""
        self.lab = lab
        self.silent = silent

    def status(self, code):
        return ("%d %s%s\r\n" % (code, CODES[code], self.trailing)).encode()

    def path(self, name):
        if not NAME.match(name) or name in (b".", b".."):
            return None
        return os.path.join(self.dir, name.decode())

    def handle(self, words):
        """(bytes to send, close after)"""
        cmd, args = words[0], words[1:]
        if cmd == b"get_file_listing":
            if args:
                return self.status(201), False
            names = sorted(n for n in os.listdir(self.dir)
                           if os.path.isfile(os.path.join(self.dir, n)))
            body = "".join(n + "\r\n" for n in names) + "\r\n"
            return self.status(0) + body.encode(), False
        if cmd == b"get_metadata":
            if len(args) != 1:
                return self.status(201), False
            p = self.path(args[0])
            if p is None:
                return self.status(201), False
            if len(args[0]) > 255 or not os.path.isfile(p):
                return self.status(202), False
            return self.status(0) + b"%d\r\n" % os.path.getsize(p), False
        if cmd == b"get_slice":
            allowed = (3,) if self.lab == "2025" else (3, 4)
            if len(args) not in allowed:
                return self.status(201), False
            p = self.path(args[0])
            if p is None or not args[1].isdigit() or not args[2].isdigit():
                return self.status(201), False
            if len(args) == 4 and args[3] not in (b"raw", b"base64"):
                return self.status(201), False
            if len(args[0]) > 255 or not os.path.isfile(p):
                return self.status(202), False
            offset, size = int(args[1]), int(args[2])
            if offset + size > os.path.getsize(p):
                return self.status(203), False
            with open(p, "rb") as f:
                f.seek(offset)
                data = f.read(size)
            if len(args) == 4 and args[3] == b"raw":
                return self.status(0) + b"Content-Length: %d\r\n\r\n" % size + data, False
            return self.status(0) + base64.b64encode(data) + b"\r\n", False
        if cmd == b"help" and self.lab != "2025":
            if args:
                return self.status(201), False
            body = b"get_file_listing\r\nget_metadata\r\nget_slice\r\nhelp\r\nquit\r\n\r\n"
            return self.status(0) + body, False
        if cmd == b"quit":
            if args:
                return self.status(201), False
            return self.status(0), True
        return self.status(200), False

    def client(self, conn):
        if self.silent:
            threading.Event().wait()
        buf = b""
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while True:
                    lf = buf.find(b"\n")
                    if lf < 0:
                        if len(buf) > MAX_LINE:
                            conn.sendall(self.status(101))
                            return
                        break
                    if lf == 0 or buf[lf - 1:lf] != b"\r":
                        conn.sendall(self.status(100))
                        return
                    line, buf = buf[:lf - 1], buf[lf + 1:]
                    words = line.split()
                    if not words:
                        conn.sendall(self.status(101))
                        return
                    out, close = self.handle(words)
                    conn.sendall(out)
                    if close:
                        return
        except OSError:
            return
        finally:
            try:
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            conn.close()


def main():
    args = sys.argv[1:]
    directory = args[0]
    lab = args[args.index("--lab") + 1] if "--lab" in args else "2026"
    server = Server(directory, "--trailing-space" in args, lab, "--silent" in args)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    print("listening on 127.0.0.1:%d" % s.getsockname()[1], flush=True)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=server.client, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
