#!/usr/bin/python3
# PyTorch 1.13's training time per epoch of the two CNN scripts on Fashion-MNIST (60,000
# images of 28x28), the data preloaded as tensors (the batches Lunet's DataLoader makes):
#  - the course's CNN (scripts/mnist_cnn.lua): batch 64, SGD lr 0.01 momentum 0.5,
#    ToTensor + Normalize;
#  - d2l's LeNet-5 (scripts/lenet.lua): batch 256, SGD lr 0.9, ToTensor only;
# (the scripts' networks as spec/fixtures/cnn_models.py makes them) and the share of the epoch's CPU time its convolutions take (forward and the gradients
# training needs: weight and bias, and the input's for the second layer; timed alone over
# the same batches).
# Compare with bench/bench_cnn.lua.  Run: /usr/bin/python3 bench/bench_cnn_torch.py [data_root]
import os
import sys
import time

import torch
import torch.nn.functional as F
from torchvision import datasets

# the scripts' models, as their fixture generator makes them
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "spec", "fixtures"))
from cnn_models import CNN, lenet  # noqa: E402

root = sys.argv[1] if len(sys.argv) > 1 else "data"
train = datasets.FashionMNIST(root, train=True)
X0 = (train.data.float() / 255).unsqueeze(1)
Y = train.targets


def batches(X, bs):
    perm = torch.randperm(len(Y))
    for i in range(0, len(Y), bs):
        idx = perm[i:i + bs]
        yield X[idx], Y[idx]


def epoch(model, X, bs, lr, momentum):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    t0, c0 = time.perf_counter(), time.process_time()
    for x, y in batches(X, bs):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return time.perf_counter() - t0, time.process_time() - c0


def conv_time(c1, between, c2, X, bs):
    # forward, then backward of ones (made outside the timed regions, once per shape: a fill
    # is not convolution work), for both layers
    total, ones = 0.0, {}

    def ones_for(y):
        return ones.setdefault(tuple(y.shape), torch.ones_like(y))

    def timed(f, *args):
        nonlocal total
        t0 = time.process_time()
        r = f(*args)
        total += time.process_time() - t0
        return r

    for x, _ in batches(X, bs):
        y1 = timed(c1, x)
        timed(y1.backward, ones_for(y1))
        h = between(y1.detach()).requires_grad_(True)
        y2 = timed(c2, h)
        timed(y2.backward, ones_for(y2))
    return total


torch.manual_seed(0)
print("PyTorch %s, %d thread(s)" % (torch.__version__, torch.get_num_threads()))
Xn = (X0 - 0.1307) / 0.3081
m = CNN()
t, cpu = epoch(m, Xn, 64, 0.01, 0.5)
tc = conv_time(m.conv1, lambda y: F.relu(F.max_pool2d(y, 2)), m.conv2, Xn, 64)
print("PyTorch course CNN epoch (batch 64): %.2f s (CPU %.2f s); convolution %.2f s CPU (%.0f%%)"
      % (t, cpu, tc, 100 * tc / cpu))
le = lenet()
t, cpu = epoch(le, X0, 256, 0.9, 0.0)
tc = conv_time(le[0], lambda y: F.avg_pool2d(torch.sigmoid(y), 2), le[3], X0, 256)
print("PyTorch LeNet-5 epoch (batch 256): %.2f s (CPU %.2f s); convolution %.2f s CPU (%.0f%%)"
      % (t, cpu, tc, 100 * tc / cpu))
