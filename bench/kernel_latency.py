#!/usr/bin/python3
"""Latency of the Jupyter kernel (a benchmark, not a test): `make bench-kernel`.

1. start: from spawning `lunet --kernel FILE` to the kernel_info_reply of a request sent
   at once (the client connects before the kernel binds; ZeroMQ delivers on bind);
2. execute: `1+1` sent on shell, to its execute_reply (and to the idle status on iopub,
   i.e. every output delivered), over a warm kernel.
Each is the median (and min / p90) over N runs; the client is pyzmq + jupyter_client's
Session (signing), as any frontend.  Usage: kernel_latency.py BUILD_DIR [N]
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import zmq
from jupyter_client.session import Session

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
N = int(sys.argv[2]) if len(sys.argv) > 2 else 200


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def connection():
    names = ["shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"]
    info = dict(zip(names, free_ports(5)), ip="127.0.0.1", transport="tcp",
                signature_scheme="hmac-sha256", key=str(uuid.uuid4()))
    f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump(info, f)
    f.close()
    return info, f.name


class Client:
    def __init__(self, info):
        self.ctx = zmq.Context()
        # retry the connection every millisecond until the kernel binds (ZeroMQ's default
        # is 100 ms, which would measure the client's back-off, not the kernel)
        self.ctx.setsockopt(zmq.RECONNECT_IVL, 1)
        self.session = Session(key=info["key"].encode())
        ep = lambda p: "tcp://127.0.0.1:%d" % info[p]
        self.shell = self.ctx.socket(zmq.DEALER)
        self.shell.linger = 0
        self.shell.connect(ep("shell_port"))
        self.iopub = self.ctx.socket(zmq.SUB)
        self.iopub.linger = 0
        self.iopub.setsockopt(zmq.SUBSCRIBE, b"")
        self.iopub.connect(ep("iopub_port"))
        self.control = self.ctx.socket(zmq.DEALER)
        self.control.linger = 0
        self.control.connect(ep("control_port"))

    def send(self, sock, msg_type, content):
        msg = self.session.msg(msg_type, content)
        self.session.send(sock, msg)
        return msg["header"]["msg_id"]

    def recv(self, sock, timeout=10):
        if not sock.poll(timeout * 1000):
            raise TimeoutError("no message")
        _, frames = self.session.feed_identities(sock.recv_multipart())
        return self.session.deserialize(frames)

    def close(self):
        for s in (self.shell, self.iopub, self.control):
            s.close()
        self.ctx.term()


def start_once():
    info, path = connection()
    c = Client(info)
    t0 = time.perf_counter()
    p = subprocess.Popen([os.path.join(BUILD, "lunet"), "--kernel", path], stderr=subprocess.DEVNULL)
    c.send(c.shell, "kernel_info_request", {})
    reply = c.recv(c.shell)
    dt = time.perf_counter() - t0
    assert reply["msg_type"] == "kernel_info_reply"
    c.send(c.control, "shutdown_request", {"restart": False})
    c.recv(c.control)
    p.wait(10)
    c.close()
    os.unlink(path)
    return dt


def execute_times(n):
    info, path = connection()
    c = Client(info)
    p = subprocess.Popen([os.path.join(BUILD, "lunet"), "--kernel", path], stderr=subprocess.DEVNULL)
    c.send(c.shell, "kernel_info_request", {})
    c.recv(c.shell)
    time.sleep(0.3)  # iopub subscription settled
    reply_t, idle_t = [], []
    for i in range(n + 10):
        t0 = time.perf_counter()
        mid = c.send(c.shell, "execute_request", {"code": "1+1", "silent": False, "store_history": True,
                                                  "user_expressions": {}, "allow_stdin": False})
        r = c.recv(c.shell)
        t1 = time.perf_counter()
        assert r["content"]["status"] == "ok"
        while True:
            m = c.recv(c.iopub)
            if (m["parent_header"].get("msg_id") == mid and m["msg_type"] == "status"
                    and m["content"]["execution_state"] == "idle"):
                break
        t2 = time.perf_counter()
        if i >= 10:  # warm-up
            reply_t.append(t1 - t0)
            idle_t.append(t2 - t0)
    c.send(c.control, "shutdown_request", {"restart": False})
    c.recv(c.control)
    p.wait(10)
    c.close()
    os.unlink(path)
    return reply_t, idle_t


def summary(name, xs, target):
    xs = sorted(xs)
    p90 = xs[int(0.9 * (len(xs) - 1))]
    print("%-36s median %7.2f ms  min %7.2f  p90 %7.2f  (n=%d, target < %g ms)" % (
        name, 1e3 * statistics.median(xs), 1e3 * xs[0], 1e3 * p90, len(xs), target))


print("load: %s" % open("/proc/loadavg").read().strip())
summary("start -> kernel_info_reply", [start_once() for _ in range(max(10, N // 10))], 50)
reply_t, idle_t = execute_times(N)
summary("execute 1+1 -> execute_reply", reply_t, 2)
summary("execute 1+1 -> idle (all output)", idle_t, 2)
