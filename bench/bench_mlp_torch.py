#!/usr/bin/python3
# PyTorch 1.13's time for what bench/bench_core.c measures: one SGD step of the
# 784-512-256-128-64-10 ReLU MLP at batch 64 (forward + loss, backward, SGD-momentum update,
# zero_grad), best of 7 rounds of 100 steps.  Run: /usr/bin/python3 bench/bench_mlp_torch.py
import time, torch, torch.nn as nn, torch.nn.functional as F
torch.manual_seed(0)
sizes = [784, 512, 256, 128, 64, 10]
layers = []
for i in range(5):
    layers.append(nn.Linear(sizes[i], sizes[i + 1]))
    if i < 4:
        layers.append(nn.ReLU())
model = nn.Sequential(*layers)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
x, y = torch.randn(64, 784), torch.randint(0, 10, (64,))
best = None
for r in range(7):
    t = [0.0, 0.0, 0.0, 0.0]
    for k in range(100):
        t0 = time.perf_counter(); loss = F.cross_entropy(model(x), y)
        t1 = time.perf_counter(); loss.backward()
        t2 = time.perf_counter(); opt.step()
        t3 = time.perf_counter(); opt.zero_grad()
        t4 = time.perf_counter()
        for i, d in enumerate((t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            t[i] += d / 100
    if best is None or sum(t) < sum(best):
        best = t
print("PyTorch %s, %d threads: one SGD step %.0f us (forward + loss %.0f, backward %.0f, update %.0f, zero_grad %.0f)"
      % (torch.__version__, torch.get_num_threads(), sum(best) * 1e6, *(v * 1e6 for v in best)))
