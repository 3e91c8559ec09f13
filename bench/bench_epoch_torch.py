#!/usr/bin/python3
# PyTorch 1.13's training time per epoch for the two training scripts, on this machine:
#  - the MNIST notebook's MLP on Fashion-MNIST (batch 64, SGD lr 0.01 momentum 0.5), once
#    with the data preloaded as normalised tensors and once through torchvision's DataLoader
#    as the notebook does it;
#  - d2l's softmax regression from scratch (batch 256, lr 0.1) through the DataLoader.
# Compare with scripts/mnist_mlp.lua and scripts/softmax_regression.lua (epoch_seconds in
# their metrics.csv).  Run: /usr/bin/python3 bench/bench_epoch_torch.py [data_root]
import sys, time, torch, torch.nn as nn, torch.nn.functional as F
from torchvision import datasets, transforms
from torch.utils.data import DataLoader

root = sys.argv[1] if len(sys.argv) > 1 else "data"

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
    t0 = time.perf_counter()
    for x, y in batches():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0

norm = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
train = datasets.FashionMNIST(root, train=True, transform=norm)
X = ((train.data.float() / 255 - 0.1307) / 0.3081).unsqueeze(1)
Y = train.targets

def preloaded():
    perm = torch.randperm(len(Y))
    for i in range(0, len(Y), 64):
        idx = perm[i:i + 64]
        yield X[idx], Y[idx]

print("PyTorch %s, %d thread(s)" % (torch.__version__, torch.get_num_threads()))
print("MLP epoch, data preloaded as tensors: %.2f s" % min(mlp_epoch(preloaded) for _ in range(2)))
print("MLP epoch, torchvision DataLoader:    %.2f s" % mlp_epoch(lambda: DataLoader(train, batch_size=64, shuffle=True)))

# d2l softmax regression
tf = transforms.ToTensor()
tr = DataLoader(datasets.FashionMNIST(root, train=True, transform=tf), batch_size=256, shuffle=True)
W = torch.normal(0, 0.01, size=(784, 10), requires_grad=True)
b = torch.zeros(10, requires_grad=True)
def net(X):
    e = torch.exp(X.reshape(-1, 784) @ W + b)
    return e / e.sum(1, keepdim=True)
def sr_epoch(batches):
    t0 = time.perf_counter()
    for Xb, yb in batches:
        y_hat = net(Xb)
        l = -torch.log(y_hat[range(len(y_hat)), yb])
        l.sum().backward()
        with torch.no_grad():
            for p in (W, b):
                p -= 0.1 * p.grad / Xb.shape[0]
                p.grad.zero_()
        float((y_hat.argmax(axis=1).type(yb.dtype) == yb).type(yb.dtype).sum())
    return time.perf_counter() - t0

X01 = (train.data.float() / 255).unsqueeze(1)
def preloaded256():
    perm = torch.randperm(len(Y))
    for i in range(0, len(Y), 256):
        idx = perm[i:i + 256]
        yield X01[idx], Y[idx]
print("softmax regression epoch, data preloaded as tensors: %.2f s" % min(sr_epoch(preloaded256()) for _ in range(2)))
print("softmax regression epoch, DataLoader: %.2f s" % sr_epoch(tr))
