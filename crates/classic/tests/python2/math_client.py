# A Python 2 math client in the style of the seed's original: struct-packed
# header (int, short, short), the command appended, one recv per reply.
# Usage: python2 math_client.py PORT
import socket, struct, sys

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect(("127.0.0.1", int(sys.argv[1])))
for cmd, a, b in [("SUMA", 20, -32), ("RESTA", 47, -92), ("MULTIPLICACION", -7, 8),
                  ("DIVISION", 1, 3), ("DIVISION", 0, -5), ("DIVISION", 5, 0), ("RAIZ", 1, 1)]:
    s.sendall(struct.pack("ihh", len(cmd), a, b) + cmd)
    print s.recv(1024)
s.close()
