#!/usr/bin/python3
"""PyTorch's time for bench/bench_loss.c's work: F.cross_entropy forward + backward on float32
logits (64, 10) and (4096, 1000), microseconds per call, best of several rounds.
Run with Debian's torch: /usr/bin/python3 bench/bench_loss_torch.py [rounds] [threads]"""
import sys
import time

import torch
import torch.nn.functional as F

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
if len(sys.argv) > 2:
    torch.set_num_threads(int(sys.argv[2]))
torch.manual_seed(0)
for n, c in ((64, 10), (4096, 1000)):
    x = torch.randn(n, c, requires_grad=True)
    y = torch.randint(0, c, (n,))
    reps = 5 if n * c >= 1000000 else 2000
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(reps):
            x.grad = None
            F.cross_entropy(x, y).backward()
        best = min(best, (time.perf_counter() - t0) / reps * 1e6)
    print(f"torch cross_entropy fwd+bwd ({n}, {c}) float32: {best:10.2f} us "
          f"({torch.get_num_threads()} threads)")
