# A Python 2 positions client in the style of the seed's original: packs two
# shorts, reads one broadcast.
# Usage: python2 positions_client.py PORT
import socket, struct, sys

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(struct.pack("hh", 3, -4))
print s.recv(1024)
s.close()
