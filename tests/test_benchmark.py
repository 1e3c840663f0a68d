"""scripts/benchmark.py end to end on tiny data: every loop and fit it times, a config, the tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tiny_idx import write_tiny_fashion_mnist

REPO = Path(__file__).resolve().parents[1]


def test_benchmark_runs_the_loops_and_a_config(tmp_path, no_system_copies):
    data_dir = write_tiny_fashion_mnist(tmp_path / "data")
    command = [
        sys.executable,
        str(REPO / "scripts/benchmark.py"),
        f"--data-dir={data_dir}",
        "--epochs=1",
        "--repeats=2",
        "--val-size=40",
        "--configs",
        f"{REPO / 'configs/fast.yaml'},{REPO / 'configs/dropout_tuned.yaml'}",
        "--set=trainer.max_epochs=1",
        "--set=trainer.accelerator=cpu",
    ]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=True)
    out = done.stdout
    assert "Machine: " in out and "Command: python scripts/benchmark.py" in out
    assert "args parameter is intended" not in done.stderr, "the in-process CLI gets only its own args"
    for row in (
        "(a) notes' loop, batch 20",
        "(b) plain PyTorch loop, batch 128",
        "(c0) bare Lightning Trainer, batch 128",
        "(c) fashion-lightning fit",
    ):
        line = next(line for line in out.splitlines() if line.startswith(f"| {row}"))
        cells = [cell.strip() for cell in line.split("|")[2:-1]]
        assert all(float(cell.replace(",", "")) > 0 for cell in cells[:4])
        assert 0 <= float(cells[4].rstrip("%")) <= 100
    for measure in ("fastest", "median"):
        assert f"{measure} epochs: (b)/(a) images/s" in out and "Lightning overhead (c) vs (b)" in out
    for overhead in ("Lightning overhead (c) vs (b)", "Lightning's own loop (c0) vs (b)"):
        assert f"{overhead}, median over 1 pairs of epochs run side by side" in out
    adds = next(line for line in out.splitlines() if line.startswith("What the project adds"))
    assert "(c) vs (c0), median over 1 epochs each against its paired (b)" in adds
    assert "in the first of 2 repeats; median of the repeats' medians:" in adds
    assert len(adds.split("(each: ")[1].split(", ")) == 2
    config_line = next(
        line for line in out.splitlines() if "dropout_tuned.yaml" in line and line.startswith("|")
    )
    assert "≥89.0% in ≤15 s" in config_line
    assert not (tmp_path / "runs").exists(), "benchmark runs live in a temporary folder"
