"""A config's bf16-mixed trains in float32 on an x86 CPU without AVX-512 (no native bf16), and as asked on
one with it, or when the command line insists. The CPU's report is set by the test, so that both cases
run on any machine; what the CLI does with it is real."""

from __future__ import annotations

import pytest
import torch
import yaml
from test_cli import cli

from fashion_lightning.cpu_precision import emulates_bf16, precision_for_this_cpu


@pytest.fixture
def cpu(monkeypatch):
    """``cpu("AVX2")``: this machine reports an x86 CPU with that capability (PyTorch's words)."""

    def report(capability: str) -> None:
        monkeypatch.setattr("platform.machine", lambda: "x86_64")
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
        monkeypatch.setattr("torch.cuda.is_available", lambda: False)

    return report


@pytest.mark.parametrize(
    ("capability", "accelerator", "emulated"),
    [("AVX2", "auto", True), ("AVX2", "cpu", True), ("DEFAULT", "cpu", True), ("AVX512", "cpu", False)],
)
def test_which_cpus_emulate_bf16(cpu, capability, accelerator, emulated):
    cpu(capability)
    assert emulates_bf16(accelerator) is emulated


def test_a_gpu_or_an_arm_cpu_is_left_alone(cpu, monkeypatch):
    cpu("AVX2")
    assert not emulates_bf16("gpu")
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    assert not emulates_bf16("cpu")


def test_a_configs_bf16_trains_in_float32_where_bf16_is_emulated(cpu, tiny_data, tmp_path, capsys):
    cpu("AVX2")
    run = cli("fit", "fast", tiny_data, tmp_path, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2")
    assert run.trainer.precision == "32-true"
    assert "training in 32-true" in capsys.readouterr().err
    saved = yaml.safe_load((tmp_path / "version_0" / "config.yaml").read_text())
    assert saved["trainer"]["precision"] == "32-true"  # the run's record says what it trained in


def test_bf16_is_kept_where_the_cpu_has_it_or_the_command_line_insists(cpu, tiny_data, tmp_path):
    cpu("AVX512")
    assert cli("fit", "fast", tiny_data, tmp_path / "a", "--trainer.fast_dev_run=true").trainer.precision == (
        "bf16-mixed"
    )
    cpu("AVX2")
    insisted = cli(
        "fit",
        "fast",
        tiny_data,
        tmp_path / "b",
        "--trainer.fast_dev_run=true",
        "--trainer.precision=bf16-mixed",
    )
    assert insisted.trainer.precision == "bf16-mixed"


@pytest.mark.parametrize("precision", ["bf16-true", "16-mixed"])
def test_other_precisions_a_cpu_runs_in_bf16_train_in_float32_where_it_is_emulated(precision, cpu):
    cpu("AVX2")
    assert precision_for_this_cpu(precision, "auto", insisted=False)[0] == "32-true"
    assert precision_for_this_cpu(precision, "auto", insisted=True)[0] == precision
    assert precision_for_this_cpu(precision, "gpu", insisted=False)[0] == precision
    cpu("AVX512")
    assert precision_for_this_cpu(precision, "cpu", insisted=False)[0] == precision
