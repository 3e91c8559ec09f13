#!/usr/bin/python3
"""The Jupyter kernel (`lunet --kernel`) under jupyter_client.

- jupyter_kernel_test.KernelTests: the protocol conformance suite, with Lunet samples;
- rich output (PNG, SVG, HTML, progress redrawn through update_display_data), io.read
  through input_request, history, comm_info, inspect, complete;
- hostile input straight on the sockets (wrong signature, malformed JSON, unknown
  message types, a message over the size limit, no delimiter): dropped, logged, and the
  kernel keeps serving;
- interrupts in signal and in message mode stop a running cell and the kernel lives.

Usage: test_kernel.py BUILD_DIR [TEST...]  (BUILD_DIR/lunet is the program under test;
LUNET_KERNEL_WRAPPER="valgrind ..." runs each kernel under that command).
Each test is bounded by timeouts; no timing is asserted.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import zmq
from jupyter_client.manager import KernelManager, start_new_kernel
from jupyter_client.session import Session
import jupyter_kernel_test

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
LUNET = os.path.join(BUILD, "lunet")
TMP = tempfile.mkdtemp(prefix="lunet-kernel-test-")
TIMEOUT = int(os.environ.get("LUNET_KERNEL_TIMEOUT", "20"))

# Kernel specs in a private JUPYTER_PATH: "lunet" as --install-kernel writes it, and
# "lunet-msg" (interrupt_mode message, a small message limit, stderr kept in a file).
subprocess.run([LUNET, "--install-kernel", "--prefix", TMP], check=True, stdout=subprocess.DEVNULL)
SPECS = os.path.join(TMP, "share", "jupyter", "kernels")
with open(os.path.join(SPECS, "lunet", "kernel.json")) as f:
    spec = json.load(f)
assert spec["argv"][1:] == ["--kernel", "{connection_file}"], spec
# LUNET_KERNEL_WRAPPER="valgrind -q ..." runs every kernel under that command (by hand)
if os.environ.get("LUNET_KERNEL_WRAPPER"):
    spec["argv"] = os.environ["LUNET_KERNEL_WRAPPER"].split() + spec["argv"]
    with open(os.path.join(SPECS, "lunet", "kernel.json"), "w") as f:
        json.dump(spec, f)
msg_spec = dict(spec, interrupt_mode="message", display_name="Lunet (message interrupts)",
                env={"LUNET_KERNEL_MAX_MESSAGE": "1048576"})
os.makedirs(os.path.join(SPECS, "lunet-msg"), exist_ok=True)
with open(os.path.join(SPECS, "lunet-msg", "kernel.json"), "w") as f:
    json.dump(msg_spec, f)
os.environ["JUPYTER_PATH"] = os.path.join(TMP, "share", "jupyter")
os.environ["JUPYTER_DATA_DIR"] = os.path.join(TMP, "data")
os.environ["JUPYTER_RUNTIME_DIR"] = os.path.join(TMP, "runtime")


class LunetKernelTests(jupyter_kernel_test.KernelTests):
    kernel_name = "lunet"
    language_name = "lua"
    file_extension = ".lua"

    code_hello_world = 'print("hello, world")'
    code_stderr = 'io.stderr:write("oops\\n")'
    completion_samples = [
        {"text": "lunet.arang", "matches": {"lunet.arange("}},
        {"text": "x = string.up", "matches": {"string.upper("}},
        {"text": "print(math.fl", "matches": {"math.floor("}},
        {"text": 'f = io.open("notebooks/softmax_r', "matches": {"notebooks/softmax_regression.ipynb"}},
        {"text": 'dofile("tests/ker', "matches": {"tests/kernel/"}},
    ]
    complete_code_samples = ["1 + 1", "x = 1", "for i = 1, 2 do end", "print('a');"]
    incomplete_code_samples = ["for i = 1, 2 do", "function f(x)", "t = {1, 2,"]
    invalid_code_samples = ["1 +* 2", "end end"]
    code_generate_error = 'error("boom")'
    code_execute_result = [
        {"code": "1 + 1", "result": "2"},
        {"code": "6 * 7", "result": "42"},
        {"code": "lunet.tensor({1.5, 2})", "result": "tensor([1.5000, 2.0000])"},
        {"code": "lunet.ones(2, 2)", "mime": "text/html"},
    ]
    code_display_data = [
        {"code": "lunet.display(lunet.plot.figure{})", "mime": "image/svg+xml"},
        {"code": "lunet.display(lunet.display.image(lunet.rand(3, 8, 8)))", "mime": "image/png"},
        {"code": "lunet.display(lunet.zeros(3))", "mime": "text/html"},
    ]
    code_history_pattern = "6 *"
    supported_history_operations = ("tail", "range", "search")
    code_inspect_sample = "lunet.arange"
    code_clear_output = "lunet.display.clear()"


class Client:
    """A started kernel with a blocking client; collects a cell's iopub messages."""

    def __init__(self, name="lunet", stderr=None):
        self.km = KernelManager(kernel_name=name)
        self.km.start_kernel(stderr=stderr)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=TIMEOUT)

    def run(self, code, allow_stdin=False, stdin_reply=None, timeout=TIMEOUT):
        msg_id = self.kc.execute(code, allow_stdin=allow_stdin)
        if stdin_reply is not None:
            req = self.kc.get_stdin_msg(timeout=timeout)
            assert req["msg_type"] == "input_request", req["msg_type"]
            self.kc.input(stdin_reply)
        reply = self.shell_reply(msg_id, timeout)
        out = []
        while True:
            m = self.kc.get_iopub_msg(timeout=timeout)
            if m["parent_header"].get("msg_id") != msg_id:
                continue
            if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                break
            out.append(m)
        return reply["content"], out

    def shell_reply(self, msg_id, timeout=TIMEOUT):
        while True:
            r = self.kc.get_shell_msg(timeout=timeout)
            if r["parent_header"].get("msg_id") == msg_id:
                return r

    def close(self):
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)


def of_type(msgs, t):
    return [m for m in msgs if m["msg_type"] == t]


class RichOutput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Client()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()

    def test_png_of_an_image_tensor(self):
        reply, out = self.c.run("lunet.full({1, 8, 8}, 0.5)")
        self.assertEqual(reply["status"], "ok")
        res = of_type(out, "execute_result")[0]["content"]
        self.assertTrue(res["data"]["image/png"].startswith("iVBORw0KGgo"), res["data"])
        self.assertIn("tensor(", res["data"]["text/plain"])

    def test_grid(self):
        reply, out = self.c.run("lunet.display(lunet.display.grid(lunet.rand(6, 1, 5, 5), {nrow = 3}))")
        self.assertEqual(reply["status"], "ok")
        self.assertIn("image/png", of_type(out, "display_data")[0]["content"]["data"])

    def test_html_table_of_a_matrix(self):
        reply, out = self.c.run("lunet.arange(6):view(2, 3)")
        data = of_type(out, "execute_result")[0]["content"]["data"]
        self.assertIn("<table", data["text/html"])
        self.assertIn("<td>5</td>", data["text/html"])
        self.assertEqual(data["text/plain"], "tensor([[0, 1, 2],\n        [3, 4, 5]])")

    def test_figure_save_shows_and_redraws(self):
        path = os.path.join(TMP, "fig.svg")
        code = ('local fig = lunet.plot.figure{}\nlocal ax = fig:panel{}\nax:line({1, 2, 3})\n'
                f'fig:save("{path}")\nax:line({{3, 2, 1}})\nfig:save("{path}")')
        reply, out = self.c.run(code)
        self.assertEqual(reply["status"], "ok", reply)
        first, update = of_type(out, "display_data"), of_type(out, "update_display_data")
        self.assertEqual(len(first), 1, [m["msg_type"] for m in out])
        self.assertEqual(len(update), 1)
        self.assertEqual(first[0]["content"]["transient"]["display_id"],
                         update[0]["content"]["transient"]["display_id"])
        self.assertIn("<svg", update[0]["content"]["data"]["image/svg+xml"])
        self.assertTrue(os.path.exists(path))

    def test_progress_redraws_in_place(self):
        code = ("local p = lunet.progress.new{total = 3, redraw = 0}\n"
                "for i = 1, 3 do p:update(1, {loss = 1 / i}) end\np:close()")
        reply, out = self.c.run(code)
        self.assertEqual(reply["status"], "ok", reply)
        first, updates = of_type(out, "display_data"), of_type(out, "update_display_data")
        self.assertEqual(len(first), 1, [m["msg_type"] for m in out])
        self.assertGreaterEqual(len(updates), 2)
        ids = {m["content"]["transient"]["display_id"] for m in first + updates}
        self.assertEqual(len(ids), 1, ids)
        self.assertIn("3/3", updates[-1]["content"]["data"]["text/plain"])
        self.assertEqual(of_type(out, "stream"), [])

    def test_display_handle_update(self):
        reply, out = self.c.run('local h = lunet.display(1, {display_id = true})\nh:update(2)')
        self.assertEqual(reply["status"], "ok", reply)
        self.assertEqual(of_type(out, "update_display_data")[0]["content"]["data"]["text/plain"], "2")

    def test_io_read_asks_the_frontend(self):
        reply, out = self.c.run("local s = io.read()\nreturn s .. '!'", allow_stdin=True,
                                stdin_reply="abc")
        self.assertEqual(reply["status"], "ok", reply)
        self.assertEqual(of_type(out, "execute_result")[0]["content"]["data"]["text/plain"], "abc!")

    def test_io_read_without_stdin_is_an_error(self):
        reply, _ = self.c.run("io.read()", allow_stdin=False)
        self.assertEqual(reply["status"], "error")
        self.assertIn("allow_stdin", reply["evalue"])

    def test_io_write_and_print_are_streams(self):
        reply, out = self.c.run('io.write("a", 1, "\\n"); print("b", 2); io.stdout:write("c\\n")')
        text = "".join(m["content"]["text"] for m in of_type(out, "stream")
                       if m["content"]["name"] == "stdout")
        self.assertEqual(text, "a1\nb\t2\nc\n")

    def test_stdout_and_stderr_keep_their_order(self):
        reply, out = self.c.run('io.write("1"); io.stderr:write("2"); io.write("3")')
        self.assertEqual([(m["content"]["name"], m["content"]["text"]) for m in of_type(out, "stream")],
                         [("stdout", "1"), ("stderr", "2"), ("stdout", "3")])

    def test_child_process_output(self):
        reply, out = self.c.run('print("a")\nos.execute("echo from-shell; echo to-err >&2")\nprint("b")')
        self.assertEqual(reply["status"], "ok", reply)
        streams = [(m["content"]["name"], m["content"]["text"]) for m in of_type(out, "stream")]
        stdout = "".join(t for n, t in streams if n == "stdout")
        self.assertEqual(stdout, "a\nfrom-shell\nb\n", streams)
        self.assertEqual("".join(t for n, t in streams if n == "stderr"), "to-err\n", streams)

    def test_bytes_that_are_not_utf8(self):
        reply, out = self.c.run('io.write("a\\255b\\0c", "\\n")')
        self.assertEqual(reply["status"], "ok")
        self.assertEqual(of_type(out, "stream")[0]["content"]["text"], "a\ufffdb")

    def test_error_has_a_lua_traceback(self):
        reply, out = self.c.run("local function f() error('deep') end\nf()")
        self.assertEqual(reply["status"], "error")
        err = of_type(out, "error")[0]["content"]
        self.assertIn("deep", err["evalue"])
        self.assertIn("stack traceback:", err["traceback"])
        self.assertTrue(any("in local 'f'" in l or "in function" in l for l in err["traceback"]),
                        err["traceback"])

    def test_silent_and_counts(self):
        r1, _ = self.c.run("1")
        msg_id = self.c.kc.execute("2", silent=True)
        r2 = self.c.shell_reply(msg_id)["content"]
        r3, _ = self.c.run("3")
        self.assertEqual(r2["execution_count"], r1["execution_count"])
        self.assertEqual(r3["execution_count"], r1["execution_count"] + 1)

    def test_semicolon_silences(self):
        reply, out = self.c.run("1 + 1;")
        self.assertEqual(of_type(out, "execute_result"), [])

    def test_stop_on_error_aborts_the_queue(self):
        # The first cell waits for input while the second request is sent, so the second is
        # normally queued when the first fails and is answered "aborted".  Which socket the
        # kernel reads first cannot be forced from here, so "ok" (the second arrived after
        # the failure) is accepted too; the abort path itself is covered either way.
        first = self.c.kc.execute("io.read()\nerror('first fails')", allow_stdin=True)
        self.c.kc.get_stdin_msg(timeout=TIMEOUT)
        second = self.c.kc.execute("'second'")
        time.sleep(0.5)
        self.c.kc.input("x")
        replies = {}
        while len(replies) < 2:  # an aborted one is answered first
            r = self.c.kc.get_shell_msg(timeout=TIMEOUT)
            replies[r["parent_header"].get("msg_id")] = r["content"]["status"]
        self.assertEqual(replies[first], "error")
        self.assertIn(replies[second], ("aborted", "ok"))
        if replies[second] == "ok":
            print("note: the second request arrived after the failure (not aborted)")
        self.assertEqual(self.c.run("'runs again'")[0]["status"], "ok")

    def test_comm_info(self):
        msg_id = self.c.kc.comm_info()
        r = self.c.shell_reply(msg_id)
        self.assertEqual(r["content"], {"status": "ok", "comms": {}})

    def test_inspect_signature(self):
        self.c.run("function greet(name, punct) return 'hi ' .. name .. punct end")
        msg_id = self.c.kc.inspect("greet", 5)
        r = self.c.shell_reply(msg_id)["content"]
        self.assertTrue(r["found"])
        self.assertIn("greet(name, punct)", r["data"]["text/plain"])

    def test_inspect_one_line_doc(self):
        msg_id = self.c.kc.inspect("lunet.arange(", 13)
        r = self.c.shell_reply(msg_id)["content"]
        text = r["data"]["text/plain"]
        self.assertTrue(text.startswith("lunet.arange(end [, opts])"), text)
        self.assertIn("PyTorch: torch.arange", text)

    def test_user_expressions(self):
        msg_id = self.c.kc.execute("y = 21", user_expressions={"double": "y * 2", "bad": "nil + 1"})
        r = self.c.shell_reply(msg_id)["content"]
        self.assertEqual(r["user_expressions"]["double"]["data"]["text/plain"], "42")
        self.assertEqual(r["user_expressions"]["bad"]["status"], "error")


def raw_socket(km, channel):
    """A DEALER socket on a kernel's channel, and a Session signing with its key."""
    info = km.get_connection_info()
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.connect("%s://%s:%d" % (info["transport"], info["ip"], info[channel + "_port"]))
    key = info["key"] if isinstance(info["key"], bytes) else info["key"].encode()
    return s, Session(key=key)


class HostileInput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.log = open(os.path.join(TMP, "hostile.log"), "w+")
        cls.c = Client("lunet-msg", stderr=cls.log)
        cls.sock, cls.session = raw_socket(cls.c.km, "shell")

    @classmethod
    def tearDownClass(cls):
        cls.sock.close()
        cls.c.close()
        cls.log.close()

    def frames(self, msg_type, content, sign=True):
        msg = self.session.msg(msg_type, content)
        parts = [json.dumps(msg[k], default=str).encode() for k in ("header", "parent_header", "metadata", "content")]
        sig = self.session.sign(parts) if sign else b"0" * 64
        return [b"<IDS|MSG>", sig] + parts

    def expect_nothing_then_alive(self, log_text):
        self.assertEqual(self.sock.poll(500), 0, "the kernel answered a message it should drop")
        # still serving: a good request on the same socket
        self.sock.send_multipart(self.frames("kernel_info_request", {}))
        self.assertTrue(self.sock.poll(TIMEOUT * 1000), "no kernel_info_reply after bad input")
        reply = self.session.deserialize(self.session.feed_identities(self.sock.recv_multipart())[1])
        self.assertEqual(reply["msg_type"], "kernel_info_reply")
        deadline = time.time() + 5
        while time.time() < deadline:
            self.log.seek(0)
            text = self.log.read()
            if log_text in text:
                return
            time.sleep(0.05)
        self.fail("%r not in the kernel's stderr:\n%s" % (log_text, text))

    def test_wrong_signature(self):
        self.sock.send_multipart(self.frames("kernel_info_request", {}, sign=False))
        self.expect_nothing_then_alive("invalid signature")

    def test_malformed_json(self):
        parts = [b"{not json", b"{}", b"{}", b"{}"]
        self.sock.send_multipart([b"<IDS|MSG>", self.session.sign(parts)] + parts)
        self.expect_nothing_then_alive("malformed JSON in the header")

    def test_unknown_message_type(self):
        self.sock.send_multipart(self.frames("frobnicate_request", {"x": 1}))
        self.expect_nothing_then_alive('unknown message type on shell: "frobnicate_request"')

    def test_huge_message(self):
        # 1.2 MiB over frames of 0.6 MiB each (the limit is 1 MiB): dropped and logged
        msg = self.session.msg("execute_request", {"code": "x = '" + "a" * 600000 + "'"})
        msg["metadata"] = {"pad": "b" * 600000}
        parts = [json.dumps(msg[k], default=str).encode() for k in ("header", "parent_header", "metadata", "content")]
        self.sock.send_multipart([b"<IDS|MSG>", self.session.sign(parts)] + parts)
        self.expect_nothing_then_alive("larger than the limit")

    def test_huge_frame(self):
        # one 2 MiB frame: ZeroMQ drops the connection; the client reconnects and is served
        self.sock.send_multipart(self.frames("execute_request", {"code": "x = '" + "a" * (2 << 20) + "'"}))
        self.assertEqual(self.sock.poll(500), 0)
        self.sock.send_multipart(self.frames("kernel_info_request", {}))
        self.assertTrue(self.sock.poll(TIMEOUT * 1000), "no kernel_info_reply after a huge frame")
        reply = self.session.deserialize(self.session.feed_identities(self.sock.recv_multipart())[1])
        self.assertEqual(reply["msg_type"], "kernel_info_reply")

    def test_short_signature(self):
        parts = [json.dumps(x).encode() for x in ({}, {}, {}, {})]
        self.sock.send_multipart([b"<IDS|MSG>", b"abc"] + parts)
        self.expect_nothing_then_alive("invalid signature (3 bytes, expected 64)")

    def test_no_delimiter(self):
        self.sock.send_multipart([b"just", b"some", b"frames"])
        self.expect_nothing_then_alive("no <IDS|MSG> delimiter")

    def test_bad_field_types_get_an_error_reply(self):
        self.sock.send_multipart(self.frames("execute_request", {"code": 42}))
        self.assertTrue(self.sock.poll(TIMEOUT * 1000))
        reply = self.session.deserialize(self.session.feed_identities(self.sock.recv_multipart())[1])
        self.assertEqual(reply["content"]["status"], "error")
        self.assertIn("code", reply["content"]["evalue"])

    def test_control_channel_too(self):
        sock, session = raw_socket(self.c.km, "control")
        try:
            sock.send_multipart([b"<IDS|MSG>", b"bad", b"{}", b"{}", b"{}", b"{}"])
            msg = session.msg("kernel_info_request", {})
            parts = [json.dumps(msg[k], default=str).encode() for k in ("header", "parent_header", "metadata", "content")]
            sock.send_multipart([b"<IDS|MSG>", session.sign(parts)] + parts)
            self.assertTrue(sock.poll(TIMEOUT * 1000))
            reply = session.deserialize(session.feed_identities(sock.recv_multipart())[1])
            self.assertEqual(reply["msg_type"], "kernel_info_reply")
        finally:
            sock.close()


class Interrupts(unittest.TestCase):
    def check(self, name, code):
        c = Client(name)
        try:
            msg_id = c.kc.execute(code)
            # the cell is running once its busy status is out
            while True:
                m = c.kc.get_iopub_msg(timeout=TIMEOUT)
                if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "execute_input":
                    break
            c.km.interrupt_kernel()  # even before the cell's first instruction: not lost
            reply = c.shell_reply(msg_id)["content"]
            self.assertEqual(reply["status"], "error")
            self.assertEqual(reply["ename"], "KeyboardInterrupt", reply)
            r2, out = c.run("1 + 1")
            self.assertEqual(r2["status"], "ok")
            self.assertEqual(of_type(out, "execute_result")[0]["content"]["data"]["text/plain"], "2")
        finally:
            c.close()

    def test_signal_mode(self):
        self.check("lunet", "while true do end")

    def test_message_mode(self):
        self.check("lunet-msg", "local n = 0\nwhile true do n = n + 1 end")

    def test_pcall_does_not_swallow_it(self):
        self.check("lunet-msg", "while true do pcall(function() while true do end end) end")

    def test_waiting_for_input(self):
        c = Client("lunet-msg")
        try:
            msg_id = c.kc.execute("io.read()", allow_stdin=True)
            c.kc.get_stdin_msg(timeout=TIMEOUT)
            c.km.interrupt_kernel()
            reply = c.shell_reply(msg_id)["content"]
            self.assertEqual(reply["ename"], "KeyboardInterrupt", reply)
            self.assertEqual(c.run("'alive'")[0]["status"], "ok")
        finally:
            c.close()


class Heartbeat(unittest.TestCase):
    def test_echo(self):
        c = Client()
        try:
            info = c.km.get_connection_info()
            s = zmq.Context.instance().socket(zmq.REQ)
            s.linger = 0
            s.connect("%s://%s:%d" % (info["transport"], info["ip"], info["hb_port"]))
            s.send(b"ping")
            self.assertTrue(s.poll(TIMEOUT * 1000), "no heartbeat echo")
            self.assertEqual(s.recv(), b"ping")
            s.close()
        finally:
            c.close()


class Shutdown(unittest.TestCase):
    def test_shutdown_request_on_shell_ends_the_process(self):
        c = Client()
        sock, session = raw_socket(c.km, "shell")
        try:
            msg = session.msg("shutdown_request", {"restart": False})
            session.send(sock, msg)
            self.assertTrue(sock.poll(TIMEOUT * 1000), "no shutdown_reply on shell")
            reply = session.deserialize(session.feed_identities(sock.recv_multipart())[1])
            self.assertEqual(reply["msg_type"], "shutdown_reply")
            proc = c.km.provisioner.process
            proc.wait(TIMEOUT)  # raises TimeoutExpired if the kernel hangs
            self.assertEqual(proc.returncode, 0)
        finally:
            sock.close()
            c.kc.stop_channels()
            c.km.cleanup_resources()


class Restart(unittest.TestCase):
    def test_restart_gives_a_fresh_state(self):
        c = Client()
        try:
            c.run("x = 5")
            c.km.restart_kernel(now=False)
            c.kc.wait_for_ready(timeout=TIMEOUT)
            reply, out = c.run("x == nil")
            self.assertEqual(of_type(out, "execute_result")[0]["content"]["data"]["text/plain"], "true")
        finally:
            c.close()


if __name__ == "__main__":
    try:
        unittest.main(argv=sys.argv[:1] + sys.argv[2:], verbosity=2)  # test names may follow
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
