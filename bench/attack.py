#!/usr/bin/env python3
"""Replays the floods of issue 15 against one `eddy serve` and reports what a good client and the
server's descriptors and memory did before, during and after.

  refuse  every `--max-connections` slot held by a served keep-alive connection, then `--rate`
          plain connects per second that never send nor read (each kept `--hold` seconds), against
          a process limited to `--nofile` descriptors. The good client GETs a 64 KiB object over
          plain HTTP every 100 ms (a 503 counts as answered: it is the refusal it should get).
  tls     `h2load` TLS connections (`--tls-conns` at once, one 64 KiB request each, HTTP/2),
          round after round for `--seconds`. The good client GETs over TLS HTTP/1.1.
  dribble `--max-connections` TLS connections that negotiate h2 and then send the HTTP/2 preface
          one byte every `--every` seconds (never reconnecting), for `--seconds`. The good client
          GETs over plain HTTP (it shares the connection cap).

Figures: the good client's answers (status or failure) and its latency (connect to last byte);
the server's open descriptors (/proc/PID/fd) and RssAnon / VmRSS (/proc/PID/status), sampled
every 50 ms, per phase: before (3 s), during, after (5 s once the flood stopped) and settled
(--settle seconds later, for memory that is or is not given back).

Extra environment for the server (MALLOC_ARENA_MAX=2, ...) goes through --env NAME=VALUE.

  python3 bench/attack.py --eddy target/release/eddy --mode refuse
  python3 bench/attack.py --eddy target/release/eddy --mode tls --env MALLOC_ARENA_MAX=2
"""

import argparse
import json
import os
import resource
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Sampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.phase, self.samples, self.stop = pid, "before", [], False

    def run(self):
        while not self.stop:
            try:
                self.samples.append(
                    (self.phase, fds(self.pid), status_kb(self.pid, "RssAnon"), status_kb(self.pid, "VmRSS"))
                )
            except (FileNotFoundError, ProcessLookupError):
                return
            time.sleep(0.05)


class Good(threading.Thread):
    """One GET every 100 ms, each on a new connection; records (phase, outcome, seconds)."""

    def __init__(self, addr, tls, sampler):
        super().__init__(daemon=True)
        self.addr, self.tls, self.sampler, self.results, self.stop = addr, tls, sampler, [], False
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        self.ctx.set_alpn_protocols(["http/1.1"])

    def one(self):
        t = time.monotonic()
        try:
            s = socket.create_connection(self.addr, timeout=30)
            if self.tls:
                s = self.ctx.wrap_socket(s, server_hostname="localhost")
            s.sendall(b"GET /seg.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            s.close()
            outcome = data[9:12].decode() if data.startswith(b"HTTP/1.1 ") else "closed"
        except (OSError, ssl.SSLError) as e:
            outcome = type(e).__name__
        return outcome, time.monotonic() - t

    def run(self):
        while not self.stop:
            phase = self.sampler.phase
            outcome, secs = self.one()
            self.results.append((phase, outcome, secs))
            time.sleep(0.1)


def refuse_flood(addr, rate, seconds, hold):
    """Non-blocking connects at `rate` per second, none of them read; each closed after `hold` s."""
    held, made, failed = [], 0, 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        due = int((time.monotonic() - start) * rate)
        while made + failed < due:
            s = socket.socket()
            s.setblocking(False)
            err = s.connect_ex(addr)
            if err in (0, 115):  # EINPROGRESS
                held.append((time.monotonic(), s))
                made += 1
            else:
                s.close()
                failed += 1
        now = time.monotonic()
        while held and now - held[0][0] > hold:
            held.pop(0)[1].close()
        time.sleep(0.001)
    for _, s in held:
        s.close()
    return {"connects": made, "connect_failures": failed}


def tls_flood(addr, conns, seconds):
    rounds, done = 0, 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        out = subprocess.run(
            ["h2load", "-c", str(conns), "-n", str(conns), "-t", "2",
             f"https://127.0.0.1:{addr[1]}/seg.bin"],
            capture_output=True, text=True,
        ).stdout
        rounds += 1
        for line in out.splitlines():
            if line.startswith("requests:"):
                done += int(line.split()[3])
    return {"h2load_rounds": rounds, "requests_done": done}


def dribble_flood(addr, conns, every, seconds):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    socks = []
    for _ in range(conns):
        s = ctx.wrap_socket(socket.create_connection(addr, timeout=10), server_hostname="localhost")
        s.setblocking(False)
        socks.append(s)
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
    start, sent, cut, cut_at = time.monotonic(), 0, set(), []
    while time.monotonic() - start < seconds and len(cut) < conns:
        for i, s in enumerate(socks):
            if i in cut:
                continue
            try:
                if sent < len(preface):
                    s.send(preface[sent:sent + 1])
                while True:
                    if not s.recv(65536):
                        raise ConnectionResetError
            except (ssl.SSLWantReadError, BlockingIOError):
                pass
            except (OSError, ssl.SSLError):
                cut.add(i)
                cut_at.append(round(time.monotonic() - start, 1))
        sent += 1
        time.sleep(every)
    for s in socks:
        s.close()
    return {"dribblers": conns, "cut_by_server": len(cut),
            "first_cut_s": min(cut_at) if cut_at else None, "last_cut_s": max(cut_at) if cut_at else None}


def summary(sampler, good):
    phases = ["before", "during", "after", "settled"]
    out = {}
    for p in phases:
        s = [x for x in sampler.samples if x[0] == p]
        g = [x for x in good.results if x[0] == p]
        if not s:
            continue
        lat = sorted(x[2] for x in g)
        outcomes = {}
        for x in g:
            outcomes[x[1]] = outcomes.get(x[1], 0) + 1
        out[p] = {
            "fds_max": max(x[1] for x in s),
            "fds_last": s[-1][1],
            "rss_anon_kb_max": max(x[2] for x in s),
            "rss_anon_kb_last": s[-1][2],
            "vm_rss_kb_max": max(x[3] for x in s),
            "vm_rss_kb_last": s[-1][3],
            "good_requests": len(g),
            "good_outcomes": outcomes,
            "good_worst_ms": round(lat[-1] * 1000, 1) if lat else None,
            "good_p50_ms": round(lat[len(lat) // 2] * 1000, 1) if lat else None,
        }
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--eddy", required=True)
    ap.add_argument("--mode", choices=["refuse", "tls", "dribble"], required=True)
    ap.add_argument("--nofile", type=int, default=1024)
    ap.add_argument("--max-connections", type=int, default=200)
    ap.add_argument("--rate", type=int, default=4800)
    ap.add_argument("--hold", type=float, default=3.0)
    ap.add_argument("--tls-conns", type=int, default=1000)
    ap.add_argument("--every", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--settle", type=float, default=20.0)
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--extra-toml", default="")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    tmp = tempfile.mkdtemp(prefix="eddy-attack-")
    os.makedirs(f"{tmp}/src")
    os.makedirs(f"{tmp}/d0")
    with open(f"{tmp}/src/seg.bin", "wb") as f:
        f.write(os.urandom(64 * 1024))
    sh(a.eddy, "store", "import", "--disk", f"{tmp}/d0", f"{tmp}/src")
    toml = f"[limits]\nmax_connections = {a.max_connections}\n{a.extra_toml}\n"
    if a.mode in ("tls", "dribble"):
        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
           "-nodes", "-keyout", f"{tmp}/key.pem", "-out", f"{tmp}/cert.pem", "-days", "2",
           "-subj", "/CN=localhost")
        toml += (f"[tls]\nlisten = [\"127.0.0.1:0\"]\ncert = \"{tmp}/cert.pem\"\n"
                 f"key = \"{tmp}/key.pem\"\nrequire_tokens = false\n")
    with open(f"{tmp}/eddy.toml", "w") as f:
        f.write(toml)
    env = dict(os.environ)
    for kv in a.env:
        k, v = kv.split("=", 1)
        env[k] = v
    log = open(f"{tmp}/stderr.log", "w")
    proc = subprocess.Popen(
        ["prlimit", f"--nofile={a.nofile}:{a.nofile}", a.eddy, "serve", "--config", f"{tmp}/eddy.toml",
         "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--disk", f"{tmp}/d0"],
        stdout=subprocess.PIPE, stderr=log, text=True, env=env,
    )
    plain = tls = None
    while plain is None or (a.mode != "refuse" and tls is None):
        line = proc.stdout.readline()
        if not line:
            sys.exit(f"eddy exited: see {tmp}/stderr.log")
        if line.startswith("eddy: listening on http://"):
            h, p = line.strip().rsplit("/", 1)[1].rsplit(":", 1)
            plain = (h, int(p))
        if line.startswith("eddy: listening on https://"):
            h, p = line.strip().rsplit("/", 1)[1].rsplit(":", 1)
            tls = (h, int(p))
    threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()

    sampler = Sampler(proc.pid)
    sampler.start()
    good = Good(tls if a.mode == "tls" else plain, a.mode == "tls", sampler)
    held = []
    if a.mode == "refuse":
        for _ in range(a.max_connections):
            s = socket.create_connection(plain)
            s.sendall(b"GET /seg.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            got = 0
            while got < 64 * 1024:
                got += len(s.recv(1 << 20))
            held.append(s)
    good.start()
    time.sleep(3)
    sampler.phase = "during"
    if a.mode == "refuse":
        flood = refuse_flood(plain, a.rate, a.seconds, a.hold)
    elif a.mode == "tls":
        flood = tls_flood(tls, a.tls_conns, a.seconds)
    else:
        flood = dribble_flood(tls, a.max_connections, a.every, a.seconds)
    for s in held:
        s.close()
    sampler.phase = "after"
    time.sleep(5)
    sampler.phase = "settled"
    time.sleep(a.settle)
    good.stop = sampler.stop = True
    good.join()
    proc.terminate()
    proc.wait()
    err = open(f"{tmp}/stderr.log").read()
    print(json.dumps({
        "mode": a.mode, "eddy": a.eddy, "env": a.env, "nofile": a.nofile,
        "max_connections": a.max_connections, "flood": flood,
        "accept_failed_lines": err.count("accept failed"),
        "budget_warning": "descriptor budget over" in err,
        "phases": summary(sampler, good),
    }, indent=1))


if __name__ == "__main__":
    main()
