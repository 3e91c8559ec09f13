#!/usr/bin/python3
"""torchvision's side of bench/bench_data.lua: Fashion-MNIST loading and one DataLoader epoch
(batch 64, shuffle, ToTensor + Normalize).  Run with Debian's /usr/bin/python3 from the
repository root after `make data`:  /usr/bin/python3 bench/bench_data_torch.py [data_root]"""
import gzip, sys, time
import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms
from torchvision.datasets.mnist import read_image_file, read_sn3_pascalvincent_tensor

root = sys.argv[1] if len(sys.argv) > 1 else "data"
torch.set_num_threads(1)

def best(n, f):
    b = float("inf")
    for _ in range(n):
        t0 = time.process_time(); f(); b = min(b, time.process_time() - t0)
    return b * 1000

gz = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
plain = root + "/FashionMNIST/raw/train-images-idx3-ubyte"
def load_gz():
    import io, tempfile
    raw = gzip.open(gz, "rb").read()  # gunzip, then torchvision's parser on the bytes
    with tempfile.NamedTemporaryFile() as f:
        f.write(raw); f.flush(); read_image_file(f.name)
rows = [("gunzip + read_image_file train-images .gz", best(5, load_gz)),
        ("read_image_file train-images plain", best(5, lambda: read_image_file(plain))),
        ("FashionMNIST(train=True) (both files + checks)", best(5, lambda: datasets.FashionMNIST(root, train=True)))]
ds = datasets.FashionMNIST(root, train=True, transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]))
ld = DataLoader(ds, batch_size=64, shuffle=True)
torch.manual_seed(0)
def epoch():
    for X, y in ld: pass
rows.append(("one epoch, batch 64, shuffle, ToTensor+Normalize (938 batches)", best(2, epoch)))
for name, ms in rows:
    print("%-70s %9.1f ms" % (name, ms))
