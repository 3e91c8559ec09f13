#!/usr/bin/python3
"""Runs every notebook in notebooks/ on the lunet kernel (nbclient) and checks it.

Usage: run_notebooks.py BUILD_DIR [--update]

Checks, for each notebook: no cell raised an error; each cell tagged "check" shows exactly
the outputs committed with the notebook (the seed numbers); the training notebooks show a
figure (image/svg+xml).  The training notebooks read LUNET_NB_EPOCHS and LUNET_NB_LIMIT:
unless set, this runs them with 1 epoch on 1,200 images so that CI stays short.
--update runs every notebook in full (no limits unless set) and writes the outputs back,
which is how the committed outputs are made.
"""
import copy
import glob
import os
import shutil
import subprocess
import sys
import tempfile

import nbformat
from nbclient import NotebookClient

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else "build")
UPDATE = "--update" in sys.argv
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIGURES = {"softmax_regression.ipynb", "mnist_mlp.ipynb"}
# the training notebooks read the real data (`make data`); without it they are skipped
NEEDS = {"softmax_regression.ipynb": "data/FashionMNIST/raw/train-images-idx3-ubyte",
         "mnist_mlp.ipynb": "data/MNIST/raw/train-images-idx3-ubyte"}

tmp = tempfile.mkdtemp(prefix="lunet-notebooks-")
subprocess.run([os.path.join(BUILD, "lunet"), "--install-kernel", "--prefix", tmp], check=True,
               stdout=subprocess.DEVNULL)
os.environ["JUPYTER_PATH"] = os.path.join(tmp, "share", "jupyter")
os.environ["JUPYTER_DATA_DIR"] = os.path.join(tmp, "data")
os.environ["JUPYTER_RUNTIME_DIR"] = os.path.join(tmp, "runtime")
if not UPDATE:
    os.environ.setdefault("LUNET_NB_EPOCHS", "1")
    os.environ.setdefault("LUNET_NB_LIMIT", "1200")


def texts(outputs):
    """What a cell showed, as comparable text: streams, and text/plain of results."""
    out = []
    for o in outputs:
        if o["output_type"] == "stream":
            out.append(("stream", o["name"], o["text"]))
        elif o["output_type"] in ("execute_result", "display_data"):
            out.append((o["output_type"], o["data"].get("text/plain", "")))
        elif o["output_type"] == "error":
            out.append(("error", o["ename"], o["evalue"]))
    return out


failures, skipped = [], 0
notebooks = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))
for path in notebooks:
    name = os.path.basename(path)
    if name in NEEDS and not os.path.exists(os.path.join(ROOT, NEEDS[name])):
        print("skip %s: no %s (make data)" % (name, NEEDS[name]))
        skipped += 1
        continue
    committed = nbformat.read(path, as_version=4)
    nb = copy.deepcopy(committed)
    client = NotebookClient(nb, timeout=600, kernel_name="lunet", allow_errors=True,
                            resources={"metadata": {"path": os.path.dirname(path)}})
    client.execute()
    problems = []
    mimes = set()
    for i, (old, new) in enumerate(zip(committed.cells, nb.cells)):
        if new.cell_type != "code":
            continue
        for o in new.outputs:
            if o["output_type"] == "error":
                problems.append("cell %d raised %s: %s" % (i, o["ename"], o["evalue"]))
            mimes.update(o.get("data", {}).keys())
        if "check" in new.metadata.get("tags", []) and not UPDATE and texts(old.outputs) != texts(new.outputs):
            problems.append("cell %d shows\n  %r\nexpected (committed)\n  %r" % (
                i, texts(new.outputs), texts(old.outputs)))
    if name in FIGURES and "image/svg+xml" not in mimes:
        problems.append("no figure (image/svg+xml) in the outputs")
    if not problems and not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"):
        problems.append("no outputs at all")
    if problems:
        failures.append((name, problems))
        print("FAIL %s\n  %s" % (name, "\n  ".join(problems)))
    else:
        print("ok   %s (%d cells, outputs: %s)" % (name, len(nb.cells), ", ".join(sorted(mimes)) or "streams"))
    if UPDATE:
        nbformat.write(nb, path)

shutil.rmtree(tmp, ignore_errors=True)
print("notebooks: %d passed, %d failed, %d skipped" % (len(notebooks) - len(failures) - skipped,
                                                    len(failures), skipped))
sys.exit(1 if failures else 0)
