# A Python 2 echo client in the style of the seed's original.
# Usage: python2 echo_client.py PORT
import socket, sys

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect(("127.0.0.1", int(sys.argv[1])))
for _ in range(3):
    s.sendall("Test Packet")
    print s.recv(1024)
s.close()
