# Regenerates division_py2.txt with the real Python 2 semantics of the original
# math server: str(float(a) / b) for i16 a, b (b != 0). Run with Python 2.7:
#   ~/.pyenv/versions/2.7.18/bin/python gen_division_table.py > division_py2.txt
import random

cases = [(1, 3), (2, 3), (1, 32767), (1, -32768), (0, -5), (-32768, -1), (8, 2),
         (0, 1), (-1, 3), (32767, 1), (-32768, 1), (32767, -32768), (1, 7), (22, 7),
         (-7, 2), (5, 10), (1, 1000), (1, 10000), (3, 30000), (100, 3), (1, 11),
         (12345, 99), (-1, -1), (0, -1), (7, -3), (1, 16), (1, 1024), (2, 32767)]
rng = random.Random(4)
while len(cases) < 300:
    a = rng.randint(-32768, 32767)
    b = rng.randint(-32768, 32767)
    if rng.random() < 0.3:
        b = rng.randint(-20, 20)
    if b != 0:
        cases.append((a, b))
for a, b in cases:
    print("%d %d %s" % (a, b, str(float(a) / b)))
