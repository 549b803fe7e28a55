#!/usr/bin/env python3
"""A rough sampling profiler for a QEMU boot, through QEMU's monitor.

Start the boot with PK_QEMU_MONITOR=SOCKET (any `cargo test ... qemu`
boot, `make test`, `make fuzz`), and this beside it:

    scripts/sample-rip.py SOCKET KERNEL_ELF [--every SECONDS] [--top N]

It asks the monitor for the registers again and again until QEMU goes
away, then prints where the kernel's RIP was most often: by function
(the outermost one the compiler did not inline), by function with the
inlined ones counted in, and by source line. KERNEL_ELF is the test
kernel's ELF with its symbols, e.g.
target/kernel/x86_64-unknown-none/release/deps/swap_bench-HASH (the one
without an extension); the kernel runs at 0xffff800000000000 above it.

What the samples mean under TCG: QEMU stops the virtual CPU for the
monitor only between translated blocks, so a sample lands on the first
instruction of a block, and the time of a block is charged to the next
block's start. Read the counts as "time spent in this function or the
straight-line code just before it", good for where time goes between
functions (the disk wait, a device notify, the reclaim loop), not for
which instruction is slow. Samples below the kernel (the firmware and
the bootloader before it starts, and ring 3) are counted apart. Python 3 and binutils' addr2line are all it needs.
"""

import argparse
import collections
import os
import re
import socket
import subprocess
import sys
import time

KERNEL_BASE = 0xFFFF800000000000


def connect(path):
    while not os.path.exists(path):
        time.sleep(0.05)
    sock = socket.socket(socket.AF_UNIX)
    for _ in range(100):
        try:
            sock.connect(path)
            return sock
        except OSError:
            time.sleep(0.05)
    sys.exit(f"cannot connect to {path}")


def until_prompt(sock):
    data = b""
    while not data.endswith(b"(qemu) "):
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise EOFError
        data += chunk
    return data.decode(errors="replace")


def sample(path, every):
    sock = connect(path)
    until_prompt(sock)
    rips = []
    try:
        while True:
            sock.sendall(b"info registers\n")
            match = re.search(r"RIP=([0-9a-f]+)", until_prompt(sock))
            if match:
                rips.append(int(match.group(1), 16))
            time.sleep(every)
    except (EOFError, OSError):
        pass
    return rips


def symbolize(elf, addresses):
    """addr2line -i for each address: its frames, innermost first, as
    (function, file:line) pairs."""
    text = "\n".join(hex(a) for a in addresses)
    out = subprocess.run(
        ["addr2line", "-a", "-f", "-C", "-i", "-e", elf], input=text, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    frames, current = [], None
    for line in out:
        if line.startswith("0x"):
            current = []
            frames.append(current)
        elif current is not None:
            current.append(line)
    return [list(zip(f[0::2], f[1::2])) for f in frames]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("socket")
    parser.add_argument("elf")
    parser.add_argument("--every", type=float, default=0.003, help="seconds between samples")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    rips = sample(args.socket, args.every)
    kernel = [r - KERNEL_BASE for r in rips if r >= KERNEL_BASE]
    below = len(rips) - len(kernel)
    print(f"{len(rips)} samples, {len(kernel)} in the kernel, {below} below it (firmware and bootloader, ring 3)")
    if not kernel:
        return
    outer, inclusive, lines = collections.Counter(), collections.Counter(), collections.Counter()
    for frames in symbolize(args.elf, kernel):
        if not frames:
            continue
        outer[frames[-1][0]] += 1
        for function in {f for f, _ in frames}:
            inclusive[function] += 1
        lines[frames[0][1].rsplit("/", 1)[-1]] += 1
    for title, counter in [
        ("by function (not inlined)", outer),
        ("by function, inlined ones counted in", inclusive),
        ("by source line", lines),
    ]:
        print(f"--- {title}")
        for name, count in counter.most_common(args.top):
            print(f"{count:6} {100 * count / len(kernel):5.1f} %  {name[:150]}")


if __name__ == "__main__":
    main()
