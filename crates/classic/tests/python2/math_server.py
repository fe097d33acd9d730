# A Python 2 math server in the style of the seed's original (one client, one
# recv per request, struct.unpack of the header, Python 2 str() of the result).
# Usage: python2 math_server.py  -> prints its port, serves one connection.
import socket, struct, sys

srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.bind(("127.0.0.1", 0))
srv.listen(1)
print srv.getsockname()[1]
sys.stdout.flush()
conn, _ = srv.accept()
while True:
    data = conn.recv(1024)
    if not data:
        break
    length, a, b = struct.unpack("ihh", data[:8])
    cmd = data[8:8 + length]
    if cmd == "SUMA":
        r = a + b
    elif cmd == "RESTA":
        r = a - b
    elif cmd == "MULTIPLICACION":
        r = a * b
    elif cmd == "DIVISION":
        r = float(a) / b if b != 0 else False
    else:
        r = None
    conn.sendall("El resultado de la operacion es " + str(r))
conn.close()
