"""ward serve under resource pressure: slowloris (header timeout), idle
keep-alive timeout, 1024+ concurrent idle connections with bounded memory,
and graceful shutdown on SIGTERM (exit 0, idle connections closed)."""
import os
import resource
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import wardlib  # noqa: E402

N_CONNS = 1100  # "1024+" concurrent idle connections
c = wardlib.Check("test_http_limits")

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if hard != resource.RLIM_INFINITY and hard < N_CONNS + 100:
    print("SKIP: the hard descriptor limit (%d) is below %d" % (hard, N_CONNS + 100))
    sys.exit(wardlib.SKIP)
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, N_CONNS + 100) if hard == resource.RLIM_INFINITY
                                            else min(hard, max(soft, N_CONNS + 100)), hard))


def closed_within(s, seconds):
    """True if the server closes s within seconds; returns (closed, data)."""
    s.settimeout(0.1)
    deadline = time.monotonic() + seconds
    data = b""
    while time.monotonic() < deadline:
        try:
            b = s.recv(4096)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return True, data
        if not b:
            return True, data
        data += b
    return False, data


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


args = ["--auth", "off", "--header-timeout-ms", "400", "--idle-timeout-ms", "600"]
with wardlib.start_ward(args) as w:
    # ---- slowloris: a head trickling in is cut at the header timeout ----
    s = socket.create_connection(("127.0.0.1", w.port), timeout=5)
    t0 = time.monotonic()
    s.sendall(b"GET /health HTTP/1.1\r\n")
    closed = False
    data = b""
    for i in range(40):
        try:
            s.sendall(b"X-%d: y\r\n" % i)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        time.sleep(0.05)
        s.settimeout(0.001)
        try:
            b = s.recv(4096)
            data += b
            if not b:
                closed = True
                break
        except socket.timeout:
            pass
        except ConnectionResetError:
            closed = True
            break
    if not closed:
        closed, more = closed_within(s, 2)
        data += more
    took = time.monotonic() - t0
    c.ok(closed, "slowloris connection closed")
    c.ok(took < 1.5, "closed near the 400 ms header timeout (%.2fs)" % took)
    c.eq(wardlib.parse_status(data), 408, "slowloris gets 408")
    s.close()

    # ---- a connection that sends nothing is dropped too ----
    s = socket.create_connection(("127.0.0.1", w.port), timeout=5)
    closed, data = closed_within(s, 2)
    c.ok(closed and data == b"", "silent connection closed without a response")
    s.close()

    # ---- idle keep-alive timeout ----
    s = socket.create_connection(("127.0.0.1", w.port), timeout=5)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.1)
    first = s.recv(4096)
    c.eq(wardlib.parse_status(first), 200, "keep-alive request answered")
    t0 = time.monotonic()
    closed, _ = closed_within(s, 3)
    c.ok(closed, "idle keep-alive connection closed")
    c.ok(0.3 < time.monotonic() - t0 < 2.0, "closed at the idle timeout")
    s.close()
    c.eq(w.stop(), 0, "exit 0")

# ---- 1024+ concurrent idle connections ----
with wardlib.start_ward(["--auth", "off", "--max-connections", "2000"]) as w:
    base = rss_kb(w.proc.pid)
    socks = []
    try:
        for i in range(N_CONNS):
            socks.append(socket.create_connection(("127.0.0.1", w.port), timeout=5))
        # half of them start a request head, to make the server allocate buffers
        for s in socks[::2]:
            s.sendall(b"GET /health HTTP/1.1\r\n")
        time.sleep(0.5)
        st, _, body = wardlib.request("GET", w.url + "/health", timeout=5)
        c.eq(st, 200, "serving with %d idle connections open" % N_CONNS)
        # and the open ones are still usable
        socks[0].sendall(b"Host: x\r\nConnection: close\r\n\r\n")
        socks[0].settimeout(5)
        c.eq(wardlib.parse_status(socks[0].recv(4096)), 200, "an old connection completes its request")
        grown = rss_kb(w.proc.pid) - base
        limit_kb = 64 * 1024 if not wardlib.under_asan() else 512 * 1024
        c.ok(grown < limit_kb, "memory for %d connections: %d KiB (< %d)" % (N_CONNS, grown, limit_kb))
        c.ok(w.alive(), "alive with %d connections" % N_CONNS)
    finally:
        for s in socks:
            s.close()
    time.sleep(0.2)
    st, _, _ = wardlib.request("GET", w.url + "/health", timeout=5)
    c.eq(st, 200, "serving after they all closed")

    # ---- graceful shutdown with idle and half-sent connections ----
    idle = socket.create_connection(("127.0.0.1", w.port), timeout=5)
    idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.1)
    idle.recv(4096)
    half = socket.create_connection(("127.0.0.1", w.port), timeout=5)
    half.sendall(b"GET /health HTTP/1.1\r\n")
    time.sleep(0.1)
    t0 = time.monotonic()
    code = w.stop(signal.SIGTERM, timeout=15)
    c.eq(code, 0, "SIGTERM -> exit 0")
    c.ok(time.monotonic() - t0 < 5, "idle connections do not hold up the shutdown")
    closed, _ = closed_within(idle, 2)
    c.ok(closed, "idle keep-alive connection closed on shutdown")
    c.ok(any(l.get("msg") == "stopped" for l in w.logs()), "stopped line logged")
    idle.close()
    half.close()

# ---- SIGINT works the same ----
with wardlib.start_ward(["--auth", "off"]) as w:
    c.eq(w.stop(signal.SIGINT), 0, "SIGINT -> exit 0")

c.done()
