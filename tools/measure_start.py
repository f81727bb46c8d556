#!/usr/bin/env python3
# Start-up time of playbookd on an existing data dir, from exec to: the first
# HTTP answer (listening), the first answered `recommend` (a result, not the
# -32003 "starting"), then SIGTERM to exit. No dependencies beyond Python 3.
#   tools/measure_start.py build/bin/playbookd DATA_DIR PORT
# Make a data dir e.g. with build/bin/playbook-bench-index --assets 20000 --queries 10
# --recall off --rebuild off --dir DIR, or by `playbook import` into a running daemon.
import base64, json, os, socket, subprocess, sys, time
binary, data, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
def ws_call(method, params=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /v1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
    buf = b""
    while b"\r\n\r\n" not in buf: buf += s.recv(4096)
    if b" 101 " not in buf.split(b"\r\n")[0]: raise OSError("no upgrade")
    rest = buf.split(b"\r\n\r\n", 1)[1]
    payload = json.dumps(dict({"jsonrpc": "2.0", "id": 1, "method": method}, **({"params": params} if params else {}))).encode()
    mask = os.urandom(4)
    head = bytes([0x81, 0x80 | len(payload)]) if len(payload) < 126 else bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2, "big")
    s.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    data = rest
    while len(data) < 2: data += s.recv(65536)
    n = data[1] & 0x7f; off = 2
    if n == 126:
        while len(data) < 4: data += s.recv(65536)
        n = int.from_bytes(data[2:4], "big"); off = 4
    while len(data) < off + n: data += s.recv(65536)
    s.close()
    return json.loads(data[off:off + n])
def healthz():
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n")
    r = b""
    while True:
        c = s.recv(4096)
        if not c: break
        r += c
    return r.split(b"\r\n")[0]
t0 = time.monotonic()
p = subprocess.Popen([binary, "--data-dir", data, "--port", str(port), "--log-level", "warn"])
listen = answered = None
try:
    while answered is None and time.monotonic() - t0 < 120:
        try:
            h = healthz()
            if listen is None: listen = time.monotonic() - t0
            r = ws_call("recommend", {"lead": {"id": "L1", "stage": "evaluation", "context": "price objection from procurement"}, "k": 5})
            if "result" in r:
                answered = time.monotonic() - t0
                status = r["result"]
            elif r["error"]["code"] != -32003:
                raise SystemExit(str(r))
        except OSError:
            pass
        time.sleep(0.005)
    t1 = time.monotonic()
    p.terminate(); p.wait(60)
    stop = time.monotonic() - t1
finally:
    if p.poll() is None: p.kill()
print("listening %.0f ms, first answered recommend %.0f ms, SIGTERM to exit %.0f ms, exit %d" %
      (listen * 1000, answered * 1000, stop * 1000, p.returncode))
print(json.dumps(status)[:400])
