"""Fleet sweep wall time: the same sweep on each of N SSH devices alone, then on all N at once.

Starts N throwaway ``sshd`` on loopback ports (as the tests do), writes a
device profile for each, and times ``edgenas sweep`` on every device alone and
on ``--devices`` all of them. A fleet of real boards has a CPU per device; the
loopback "devices" share this machine's cores, so with more devices than cores
their measurements compete (the ratio then measures the machine, not the
orchestration). Prints the wall times and the ratio of the fleet to the slowest
device alone.

    python benchmarks/fleet_sweep.py --devices 2          # 2 cores here: one device per core
    python benchmarks/fleet_sweep.py --devices 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=int, default=3)
    p.add_argument("--models", default="mobilenet_v3_small,mobilenet_v2_035")
    p.add_argument("--runs", default="300")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.conftest import _start_sshd, _stop

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        servers, procs = [], []
        try:
            for i in range(args.devices):
                (tmp / f"s{i}").mkdir()
                proc, server = _start_sshd(tmp / f"s{i}")
                procs.append(proc)
                servers.append(server)
            key = servers[0].key
            profiles = tmp / "profiles"
            profiles.mkdir()
            for i, s in enumerate(servers):
                (Path(s.key).parent / "authorized_keys").write_text(Path(key + ".pub").read_text())
                (profiles / f"dev-{i}.toml").write_text("\n".join([
                    "schema_version = 1", f'name = "dev-{i}"', 'description = "loopback SSH device"',
                    'transport = "ssh"', 'runtime = "ort"', "threads = 1", f'python = "{sys.executable}"', "",
                    "[ssh]", 'host = "127.0.0.1"', f'user = "{s.user}"', f"port = {s.port}", ""]))
            known = tmp / "known_hosts"
            known.write_text("".join(Path(s.known_hosts).read_text() for s in servers))
            env = {**os.environ, "EDGENAS_DEVICES_DIR": str(profiles), "CI": "true"}
            edgenas = [sys.executable, "-m", "edgenas", "sweep", *args.models.split(","), "--formats", "onnx,openvino",
                       "--precisions", "fp32", "--thread-counts", "1", "--runs", args.runs, "--key", key,
                       "--known-hosts", str(known)]
            # export once up front, so the timings below measure only the measurements
            subprocess.run(edgenas + ["--device", "dev-0", "--out", str(tmp / "warm")], env=env, check=True,
                           capture_output=True, timeout=3600, cwd=ROOT)
            alone = []
            for i in range(args.devices):
                out = tmp / f"alone-{i}"
                (out / "exports").parent.mkdir(parents=True, exist_ok=True)
                subprocess.run(["cp", "-r", str(tmp / "warm" / "exports"), str(out / "exports")], check=True)
                t0 = time.perf_counter()
                subprocess.run(edgenas + ["--device", f"dev-{i}", "--out", str(out)], env=env, check=True,
                               capture_output=True, timeout=3600, cwd=ROOT)
                alone.append(time.perf_counter() - t0)
            out = tmp / "fleet"
            out.mkdir()
            subprocess.run(["cp", "-r", str(tmp / "warm" / "exports"), str(out / "exports")], check=True)
            t0 = time.perf_counter()
            names = ",".join(f"dev-{i}" for i in range(args.devices))
            subprocess.run(edgenas + ["--devices", names, "--out", str(out)], env=env, check=True,
                           capture_output=True, timeout=3600, cwd=ROOT)
            fleet = time.perf_counter() - t0
        finally:
            for proc in procs:
                _stop(proc)
    print(f"cores: {os.cpu_count()}; each device alone: {', '.join(f'{a:.1f} s' for a in alone)}")
    print(f"all {args.devices} at once: {fleet:.1f} s = {fleet / max(alone):.2f}x the slowest alone")


if __name__ == "__main__":
    main()
