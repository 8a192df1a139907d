#!/usr/bin/env python3
"""Replays the December 2026 security review's findings against a Latchkey binary and prints what it saw.

    python3 scripts/abuse_check.py target/release/latchkey [check ...]

Each check starts its own server (fresh SQLite database in a temporary folder, production settings unless
the check says otherwise) on a free port and stops it afterwards. Standard library only.
Checks: wedge, lockout, metrics, idle, page_rows, hash_flood (default: all).
"""

import http.client
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter

PASSWORD = "correct horse battery staple plume zebra"
FLOOD = int(os.environ.get("FLOOD", "64"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, **env):
        self.dir = tempfile.TemporaryDirectory()
        self.port = free_port()
        environment = dict(os.environ)
        environment.update({
            "LATCHKEY_BIND": f"127.0.0.1:{self.port}",
            "LATCHKEY_DATABASE_URL": f"sqlite://{self.dir.name}/lk.db",
            "LATCHKEY_KEY_FILE": f"{self.dir.name}/lk.key",
            "RUST_LOG": "error",
        })
        environment.update({k: str(v) for k, v in env.items()})
        self.proc = subprocess.Popen([binary, "serve"], env=environment, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                if self.request("GET", "/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def request(self, method, path, body=None, headers=None, timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"content-type": "application/json"} if data else {}
        hdrs.update(headers or {})
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        out = (r.status, r.read())
        conn.close()
        return out

    def register(self, email):
        return self.request("POST", "/api/v1/auth/register", {"email": email, "password": PASSWORD})[0]

    def login(self, user, password=PASSWORD):
        return self.request("POST", "/api/v1/auth/login", {"username": user, "password": password})[0]

    def db_bytes(self):
        return sum(os.path.getsize(os.path.join(self.dir.name, f)) for f in os.listdir(self.dir.name)
                   if f.startswith("lk.db"))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.dir.cleanup()


def parallel(n, fn, items):
    results = [None] * len(items)

    def work(i):
        results[i] = fn(items[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(items))]
    for i in range(0, len(threads), n):
        batch = threads[i:i + n]
        for t in batch:
            t.start()
        for t in batch:
            t.join()
    return results


def reset_after_send(port, raw, pause):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(raw)
    time.sleep(pause)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def check_wedge(binary):
    srv = Server(binary, LATCHKEY_ARGON2_MEMORY_KIB=1024, LATCHKEY_ARGON2_ITERATIONS=1, LATCHKEY_RATE_LIMIT_PER_MINUTE=0)
    try:
        srv.register("w@example.com")
        before = srv.login("w@example.com")
        login = json.dumps({"username": "x@example.com", "password": PASSWORD}).encode()
        raws = [b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n",
                b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: "
                + str(len(login)).encode() + b"\r\n\r\n" + login]

        def burst(k):
            for i in range(100):
                reset_after_send(srv.port, raws[(i + k) % 2], 0.0005 * (i % 7))

        started = time.time()
        parallel(8, burst, list(range(8)))
        took = time.time() - started
        time.sleep(1)
        after = [srv.login("w@example.com") for _ in range(5)]
        ready = srv.request("GET", "/readyz")[0]
        print(f"wedge: login before {before}; 800 aborted requests in {took:.1f}s; login after {after}; "
              f"readyz {ready}")
    finally:
        srv.stop()


def check_lockout(binary):
    srv = Server(binary)
    try:
        srv.register("victim@example.com")
        guesses = [f"wrong-guess-{i:02d}-xyzzy" for i in range(40)]
        statuses = parallel(40, lambda p: srv.login("victim@example.com", p), guesses)
        right = srv.login("victim@example.com")
        print(f"lockout: 40 parallel wrong passwords -> {dict(Counter(statuses))}; then the right one -> {right}")
    finally:
        srv.stop()


def check_metrics(binary):
    srv = Server(binary)
    try:
        before = len(srv.request("GET", "/metrics")[1])
        conn = http.client.HTTPConnection("127.0.0.1", srv.port)
        for i in range(3000):
            conn.request(f"M{i}XYZ", "/healthz")
            conn.getresponse().read()
        conn.close()
        after = len(srv.request("GET", "/metrics")[1])
        print(f"metrics: /metrics {before} bytes before, {after} bytes after 3,000 invented methods")
    finally:
        srv.stop()


def check_idle(binary):
    srv = Server(binary)
    try:
        silent = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(3)]
        partial = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(3)]
        for s in partial:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        started = time.time()
        closed = {}
        for s in silent + partial:
            s.settimeout(max(0.01, 70 - (time.time() - started)))
            try:
                s.recv(4096)
            except socket.timeout:
                pass
            closed[s] = time.time() - started
        for s in silent + partial:
            s.close()
        shut = sorted(round(t, 1) for t in closed.values() if t < 69.9)
        print(f"idle: of 3 silent and 3 half-sent connections, {len(shut)} closed by the server (after {shut} s), "
              f"{6 - len(shut)} still open after 70 s")
    finally:
        srv.stop()


def check_page_rows(binary):
    srv = Server(binary)
    try:
        srv.request("GET", "/login")
        time.sleep(0.5)
        before = srv.db_bytes()
        started = time.time()
        conn = http.client.HTTPConnection("127.0.0.1", srv.port)
        for _ in range(2000):
            conn.request("GET", "/login")
            conn.getresponse().read()
        conn.close()
        took = time.time() - started
        time.sleep(0.5)
        print(f"page_rows: 2,000 anonymous GET /login in {took:.1f}s grew the database files by "
              f"{(srv.db_bytes() - before) / 1e6:.2f} MB")
    finally:
        srv.stop()


def check_hash_flood(binary):
    srv = Server(binary, LATCHKEY_RATE_LIMIT_PER_MINUTE=0)
    try:
        srv.register("real@example.com")
        stop = time.time() + 12
        flood_statuses = Counter()

        def flood(k):
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
            n = 0
            while time.time() < stop:
                # A new identifier each time: every request costs a hash, none reaches a lockout.
                n += 1
                body = json.dumps({"username": f"flood{k}-{n}@example.com", "password": PASSWORD})
                conn.request("POST", "/api/v1/auth/login", body=body, headers={"content-type": "application/json"})
                r = conn.getresponse()
                r.read()
                flood_statuses[r.status] += 1
                if r.status == 503:
                    time.sleep(0.05)

        threads = [threading.Thread(target=flood, args=(k,)) for k in range(FLOOD)]
        for t in threads:
            t.start()
        time.sleep(2)
        latencies, statuses = [], Counter()
        for _ in range(20):
            t0 = time.time()
            statuses[srv.login("real@example.com")] += 1
            latencies.append((time.time() - t0) * 1000)
            time.sleep(0.3)
        for t in threads:
            t.join()
        latencies.sort()
        print(f"hash_flood: {FLOOD} flooding connections ({dict(flood_statuses)}); a real login meanwhile "
              f"{dict(statuses)}, median {latencies[len(latencies) // 2]:.0f} ms, max {latencies[-1]:.0f} ms")
    finally:
        srv.stop()


CHECKS = {"wedge": check_wedge, "lockout": check_lockout, "metrics": check_metrics, "idle": check_idle,
          "page_rows": check_page_rows, "hash_flood": check_hash_flood}

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for name in sys.argv[2:] or CHECKS:
        CHECKS[name](sys.argv[1])
