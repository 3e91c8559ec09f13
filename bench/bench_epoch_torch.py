#!/usr/bin/python3
# PyTorch 1.13's training time for one Fashion-MNIST epoch, the counterpart of
# bench/bench_epoch.lua (make bench runs them interleaved and takes medians):
#   mlp         the MNIST notebook's MLP (batch 64, SGD lr 0.01 momentum 0.5), data preloaded
#               as normalised tensors
#   mlp-loader  the same through torchvision's DataLoader, as the notebook does it
#   sr          d2l's softmax regression from scratch (batch 256, lr 0.1), data preloaded
# Prints the epoch's seconds of wall time and of CPU time.  Run: /usr/bin/python3 bench/bench_epoch_torch.py MODE [data_root]
import sys, time, torch, torch.nn as nn, torch.nn.functional as F
from torchvision import datasets, transforms
from torch.utils.data import DataLoader

mode = sys.argv[1] if len(sys.argv) > 1 else "mlp"
root = sys.argv[2] if len(sys.argv) > 2 else "data"

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(784, 512), nn.Linear(512, 256), nn.Linear(256, 128)
        self.l4, self.l5 = nn.Linear(128, 64), nn.Linear(64, 10)
    def forward(self, x):
        x = x.view(-1, 784)
        x = F.relu(self.l1(x)); x = F.relu(self.l2(x)); x = F.relu(self.l3(x)); x = F.relu(self.l4(x))
        return self.l5(x)

def mlp_epoch(batches):
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
    t0, c0 = time.perf_counter(), time.process_time()
    for x, y in batches:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0, time.process_time() - c0

def preloaded(X, Y, bs):
    perm = torch.randperm(len(Y))
    for i in range(0, len(Y), bs):
        idx = perm[i:i + bs]
        yield X[idx], Y[idx]

norm = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
train = datasets.FashionMNIST(root, train=True, transform=norm)
Y = train.targets

def sr_epoch(batches):
    torch.manual_seed(0)
    W = torch.normal(0, 0.01, size=(784, 10), requires_grad=True)
    b = torch.zeros(10, requires_grad=True)
    def net(X):
        e = torch.exp(X.reshape(-1, 784) @ W + b)
        return e / e.sum(1, keepdim=True)
    t0, c0 = time.perf_counter(), time.process_time()
    for Xb, yb in batches:
        y_hat = net(Xb)
        l = -torch.log(y_hat[range(len(y_hat)), yb])
        l.sum().backward()
        with torch.no_grad():
            for p in (W, b):
                p -= 0.1 * p.grad / Xb.shape[0]
                p.grad.zero_()
        float((y_hat.argmax(axis=1).type(yb.dtype) == yb).type(yb.dtype).sum())
    return time.perf_counter() - t0, time.process_time() - c0

if mode == "mlp":
    X = ((train.data.float() / 255 - 0.1307) / 0.3081).unsqueeze(1)
    print("%.4f %.4f" % mlp_epoch(preloaded(X, Y, 64)))
elif mode == "mlp-loader":
    print("%.4f %.4f" % mlp_epoch(DataLoader(train, batch_size=64, shuffle=True)))
elif mode == "sr":
    X01 = (train.data.float() / 255).unsqueeze(1)
    print("%.4f %.4f" % sr_epoch(preloaded(X01, Y, 256)))
else:
    sys.exit("modes: mlp, mlp-loader, sr")
