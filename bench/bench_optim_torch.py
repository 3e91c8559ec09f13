# bench_optim_torch.py (make bench): PyTorch 1.13's optimizer steps over the same MLP
# parameters as bench/bench_optim.lua (single-threaded, its CPU default implementation).
import time

import torch

torch.set_num_threads(1)
torch.manual_seed(0)
sizes = [784, 512, 256, 128, 64, 10]
params = []
for i, o in zip(sizes[:-1], sizes[1:]):
    layer = torch.nn.Linear(i, o)
    params += [layer.weight, layer.bias]
for p in params:
    p.grad = torch.randn_like(p)
cases = [("SGD(momentum=0.5)", lambda: torch.optim.SGD(params, lr=0.01, momentum=0.5)),
         ("Adam", lambda: torch.optim.Adam(params)),
         ("AdamW", lambda: torch.optim.AdamW(params)),
         ("AdamW(amsgrad)", lambda: torch.optim.AdamW(params, amsgrad=True))]
for name, make in cases:
    opt = make()
    for _ in range(10):
        opt.step()
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(50):
            opt.step()
        best = min(best, (time.perf_counter() - t0) / 50)
    print("PyTorch %-18s step: %8.1f us" % (name, best * 1e6))
