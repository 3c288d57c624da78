"""Hardware detection on this machine, and the hub probe against real local HTTP servers: one that
answers, one port that refuses, one that accepts and never replies (the probe must not hang)."""
from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest

from wizard import hardware
from wizard.hardware import GpuInfo, Hardware, describe, detect, free_disk_gb, hubs_reachable


def test_detect_reports_this_machine(tmp_path):
    hw = detect(tmp_path)
    assert hw.cpu_count >= 1
    assert hw.ram_total_gb >= hw.ram_available_gb > 0
    assert hw.disk_free_gb and hw.disk_free_gb > 0
    import torch

    assert hw.cuda_available == torch.cuda.is_available()
    assert len(hw.usable_gpus) == (torch.cuda.device_count() if hw.cuda_available else 0)
    for g in hw.gpus:
        assert g.total_gb >= g.free_gb >= 0 and g.name
        assert g.bf16 == (g.compute_capability[0] >= 8)
    lines = describe(hw)
    assert any(line.startswith("CPU") for line in lines)
    assert any("RAM" in line for line in lines)
    if not hw.gpus:
        assert "CPU only" in lines[0]


def test_describe_a_gpu_machine():
    hw = Hardware(gpus=[GpuInfo(0, "NVIDIA A10", 22.1, 21.5, True, (8, 6)),
                        GpuInfo(1, "Tesla T4", 14.6, 14.6, False, (7, 5))],
                  cpu_count=16, ram_total_gb=125.7, ram_available_gb=120.0, cpu_bf16=False, cuda_available=True,
                  torch_cuda="12.8", driver="570.86", disk_free_gb=12.0)
    lines = describe(hw)
    assert lines[0] == "GPU 0: NVIDIA A10, 22.1 GiB (21.5 free), bf16, compute 8.6"
    assert "no bf16 (fp16)" in lines[1]
    assert not any("CPU only" in line for line in lines)
    assert any("16 cores" in line for line in lines)
    assert any("12.0 GiB free" in line and "7B" in line for line in lines)
    assert any("driver 570.86" in line for line in lines)
    hw.gpus[0].usable = hw.gpus[1].usable = False
    assert "no GPU torch can use" in "\n".join(describe(hw))


def test_free_disk_of_a_path_not_created_yet(tmp_path):
    assert free_disk_gb(tmp_path / "runs" / "not-yet") == free_disk_gb(tmp_path)


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def answering_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_hubs_reachable_follows_hf_endpoint(monkeypatch, answering_server):
    monkeypatch.setenv("HF_ENDPOINT", answering_server)
    monkeypatch.setenv("MODELSCOPE_DOMAIN", f"http://127.0.0.1:{_closed_port()}")
    assert hardware.hub_urls()["huggingface"] == answering_server
    assert hubs_reachable(timeout=2.0) == {"huggingface": True, "modelscope": False}


def test_hubs_reachable_never_hangs_on_a_silent_server(monkeypatch, answering_server):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshake; nobody ever reads or answers
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setenv("MODELSCOPE_DOMAIN", answering_server)
        t0 = time.monotonic()
        got = hubs_reachable(timeout=0.5)
        assert time.monotonic() - t0 < 1.5
        assert got == {"huggingface": False, "modelscope": True}
    finally:
        silent.close()


class _NotFound(_Ok):
    def do_HEAD(self):  # noqa: N802
        self.send_response(404)
        self.end_headers()


def test_a_gateway_that_answers_404_is_not_a_hub(monkeypatch):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{srv.server_address[1]}")
        assert hubs_reachable(timeout=1.0)["huggingface"] is False
    finally:
        srv.shutdown()
