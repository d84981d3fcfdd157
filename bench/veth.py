#!/usr/bin/env python3
"""(a), (b), (c) and (h) of eddy-bench with the client in another network namespace.

Over loopback the kernel charges the receiver's TCP work to whichever process
sent the packet, so a server that sends more per call is charged for more of
wrk's receiving. Here wrk runs in a network namespace of its own, joined to the
servers' by a veth pair (MTU 1500, so segments are a real NIC's size, not
loopback's 64 KiB), and the same load goes to nginx and eddy in alternating
order, round after round. The figures are req/s and each side's CPU from
/proc (server and wrk), as ratios eddy/nginx.

It reuses a run directory kept by `eddy-bench --keep-run-dir` (its nginx.conf,
eddy.toml and wrk scripts, and the content they name). Needs root (ip netns).

    python3 bench/veth.py --run-dir /tmp/eddy-bench-... --eddy target/release/eddy \
        --scenarios a,b,c,h --rounds 3 --duration 8
"""

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

NS = "eddy-bench-client"
HOST_IF, NS_IF = "ebv0", "ebv1"
HOST_IP, NS_IP = "10.77.0.1", "10.77.0.2"
NGINX_PORT, EDDY_PORT = 18091, 18092
TICK = os.sysconf("SC_CLK_TCK")
BIG = 4 * 1024**3

# scenario: (wrk script, args after --, URL path)
SCENARIOS = {
    "a": ("range.lua", [str(BIG), str(2 * 1024 * 1024)], "/big.bin"),
    "b": ("objects.lua", ["200", "3"], "/seg/seg"),
    "c": ("range.lua", [str(BIG), "65536"], "/big.bin"),
    "h": ("objects.lua", ["10000", "5"], "/obj/obj"),
}


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def netns_up():
    netns_down()
    sh("ip", "netns", "add", NS)
    sh("ip", "link", "add", HOST_IF, "type", "veth", "peer", "name", NS_IF)
    sh("ip", "link", "set", NS_IF, "netns", NS)
    sh("ip", "addr", "add", f"{HOST_IP}/24", "dev", HOST_IF)
    sh("ip", "link", "set", HOST_IF, "up")
    sh("ip", "netns", "exec", NS, "ip", "addr", "add", f"{NS_IP}/24", "dev", NS_IF)
    sh("ip", "netns", "exec", NS, "ip", "link", "set", NS_IF, "up")
    sh("ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up")


def netns_down():
    sh("ip", "link", "del", HOST_IF, check=False)
    sh("ip", "netns", "del", NS, check=False)


def ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def tree(pid):
    kids = sh("pgrep", "-P", str(pid), check=False).stdout.split()
    return [pid] + [int(k) for k in kids]


def wait_http(url, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            req = urllib.request.Request(url, headers={"Range": "bytes=0-0"})
            urllib.request.urlopen(req, timeout=1).read()
            return
        except Exception:
            time.sleep(0.2)
    sys.exit(f"no answer from {url}")


def start_nginx(run_dir):
    conf = open(os.path.join(run_dir, "nginx", "nginx.conf")).read()
    conf = re.sub(r"listen 127\.0\.0\.1:\d+;", f"listen {HOST_IP}:{NGINX_PORT};", conf, count=1)
    conf = conf.replace(os.path.join(run_dir, "nginx", "nginx.pid"), "/tmp/veth-nginx.pid")
    path = "/tmp/veth-nginx.conf"
    open(path, "w").write(conf)
    p = subprocess.Popen(["nginx", "-c", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(f"http://{HOST_IP}:{NGINX_PORT}/big.bin")
    return p


def start_eddy(run_dir, eddy):
    conf = open(os.path.join(run_dir, "eddy.toml")).read()
    conf = conf.replace('"127.0.0.1:0"', f'"{HOST_IP}:{EDDY_PORT}"', 1)
    path = "/tmp/veth-eddy.toml"
    open(path, "w").write(conf)
    p = subprocess.Popen([eddy, "serve", "--config", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(f"http://{HOST_IP}:{EDDY_PORT}/big.bin")
    return p


def run_wrk(run_dir, scenario, port, duration, seed):
    script, args, path = SCENARIOS[scenario]
    if script == "objects.lua":
        # objects.lua: COUNT DIGITS SEED PREFIX
        count, digits = args
        url = f"http://{HOST_IP}:{port}/"
        extra = [count, digits, str(seed), path.lstrip("/")]
    else:
        url = f"http://{HOST_IP}:{port}{path}"
        extra = args + [str(seed)]
    cmd = ["ip", "netns", "exec", NS, "wrk", "-t2", "-c64", f"-d{duration}",
           "-s", os.path.join(run_dir, script), url, "--"] + extra
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def measure(run_dir, scenario, port, server_pids, duration, seed):
    wrk = run_wrk(run_dir, scenario, port, duration, seed)
    time.sleep(1)
    wrk_pid = int(sh("pgrep", "-x", "wrk").stdout.split()[0])
    t0, s0, c0 = time.time(), ticks(server_pids), ticks([wrk_pid])
    time.sleep(duration - 2)
    t1, s1, c1 = time.time(), ticks(server_pids), ticks([wrk_pid])
    out, _ = wrk.communicate()
    m = re.search(r"EDDY_BENCH_RESULT requests=(\d+) bytes=(\d+) duration_us=(\d+).*status=(\d+)", out)
    if not m:
        sys.exit(f"wrk said:\n{out}")
    requests, nbytes, us, bad = (int(x) for x in m.groups())
    secs = us / 1e6
    wall = t1 - t0
    return {
        "rps": requests / secs,
        "gbps": nbytes * 8 / secs / 1e9,
        "server": (s1 - s0) / TICK / wall,
        "client": (c1 - c0) / TICK / wall,
        "bad": bad,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--eddy", default="target/release/eddy")
    ap.add_argument("--scenarios", default="a,b,c,h")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=8)
    a = ap.parse_args()
    netns_up()
    nginx = eddy = None
    try:
        nginx = start_nginx(a.run_dir)
        eddy = start_eddy(a.run_dir, a.eddy)
        servers = {"nginx": (NGINX_PORT, tree(nginx.pid)), "eddy": (EDDY_PORT, [eddy.pid])}
        results = {s: {"nginx": [], "eddy": []} for s in a.scenarios.split(",")}
        for r in range(a.rounds):
            for s in results:
                order = ["nginx", "eddy"] if r % 2 == 0 else ["eddy", "nginx"]
                for name in order:
                    port, pids = servers[name]
                    x = measure(a.run_dir, s, port, pids, a.duration, 1000 + r)
                    results[s][name].append(x)
                    print(f"round {r + 1} ({s}) {name:5}: {x['rps']:9.1f} req/s {x['gbps']:6.2f} Gbit/s "
                          f"server {x['server']:.3f} cores client {x['client']:.3f} cores non-2xx {x['bad']}",
                          flush=True)
        print()
        print(f"{'':4} {'req/s ratio':>12} {'server cores/10G':>18} {'ratio':>7} {'pair cores/10G':>16} {'ratio':>7}")
        for s, by in results.items():
            def med(name, f):
                return statistics.median(f(x) for x in by[name])
            rps = med("eddy", lambda x: x["rps"]) / med("nginx", lambda x: x["rps"])
            per = {n: med(n, lambda x: x["server"] / x["gbps"] * 10) for n in by}
            pair = {n: med(n, lambda x: (x["server"] + x["client"]) / x["gbps"] * 10) for n in by}
            print(f"({s}) {rps:12.3f} {per['nginx']:8.3f} {per['eddy']:8.3f} {per['eddy'] / per['nginx']:7.3f} "
                  f"{pair['nginx']:7.3f} {pair['eddy']:7.3f} {pair['eddy'] / pair['nginx']:7.3f}")
    finally:
        for p in (nginx, eddy):
            if p:
                p.send_signal(signal.SIGTERM if p is eddy else signal.SIGQUIT)
                try:
                    p.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    p.kill()
        netns_down()


if __name__ == "__main__":
    main()
