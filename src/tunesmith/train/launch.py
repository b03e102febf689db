"""``tunesmith train`` on several processes: build the torchrun / ``accelerate launch`` command and run it.

The command re-executes ``tunesmith train`` with the same arguments under the launcher, which starts
one process per device (per node) and sets ``RANK`` / ``LOCAL_RANK`` / ``WORLD_SIZE``; inside a
launched process this module does nothing, so a command printed here can also be run by hand or from
a Slurm script. Keys win over the environment variables torchrun users already set (``NPROC_PER_NODE``,
``NNODES``, ``NODE_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), which win over the defaults: one process
per visible CUDA GPU, one node. On a machine without CUDA the default is one process, and several need
``TUNESMITH_FORCE_LAUNCHER=1`` (CPU processes on one machine share its cores and are slower than one;
the switch is for tests and for trying a multi-node setup on CPUs).
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

from tunesmith.config.schema import Config
from tunesmith.utils.errors import ConfigError, TrainingError

FORCE_ENV = "TUNESMITH_FORCE_LAUNCHER"
LAUNCHED_ENV = "TUNESMITH_LAUNCHED"  # set for the launched processes: a guard against launching again


@dataclass(frozen=True)
class LaunchPlan:
    """How many processes on how many nodes, and where they meet."""

    nproc_per_node: int
    nnodes: int
    node_rank: int
    master_addr: str
    master_port: int
    launcher: str = "torchrun"
    cuda: bool = False

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes

    def command(self, train_args: list[str]) -> list[str]:
        """The launcher command that runs ``tunesmith train TRAIN_ARGS`` in every process."""
        target = ["-m", "tunesmith.cli.main", "train", *train_args]
        if self.launcher == "accelerate":
            return [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(self.world_size),
                    "--num_machines", str(self.nnodes), "--machine_rank", str(self.node_rank),
                    "--main_process_ip", self.master_addr, "--main_process_port", str(self.master_port),
                    "--multi_gpu" if self.cuda else "--cpu", "--max_restarts", "0", *target]
        return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={self.nproc_per_node}",
                f"--nnodes={self.nnodes}", f"--node_rank={self.node_rank}", f"--master_addr={self.master_addr}",
                f"--master_port={self.master_port}", "--max_restarts=0", *target]


def under_launcher() -> bool:
    """True inside a process that torchrun / accelerate started."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pick(value: int | str | None, env: str, default: int | str) -> int | str:
    if value is not None:
        return value
    return os.environ.get(env) or default


def cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def plan_launch(cfg: Config, *, gpus: int | None = None) -> LaunchPlan | None:
    """The launch this config asks for, or None to train in this process (one process, or already launched)."""
    if under_launcher():
        return None
    if os.environ.get(LAUNCHED_ENV) == "1":  # started by our launcher, which set no ranks: never launch again
        raise TrainingError("the launcher started tunesmith without RANK / LOCAL_RANK / WORLD_SIZE",
                            hint="use launcher: torchrun, or run the printed command's launcher by hand to see why")
    d = cfg.distributed
    gpus = cuda_devices() if gpus is None else gpus
    force = os.environ.get(FORCE_ENV) == "1"
    nproc = int(_pick(d.nproc_per_node, "NPROC_PER_NODE", max(1, gpus)))
    nnodes = int(_pick(d.nnodes, "NNODES", 1))
    node_rank = int(_pick(d.node_rank, "NODE_RANK", 0))
    addr = str(_pick(d.master_addr, "MASTER_ADDR", "127.0.0.1"))
    problems = []
    if node_rank >= nnodes:
        problems.append(f"'node_rank': {node_rank} must be below nnodes ({nnodes})")
    if nnodes > 1 and addr in ("127.0.0.1", "localhost"):
        problems.append(f"'master_addr': with nnodes={nnodes} every node must reach node 0: set master_addr (or "
                        "$MASTER_ADDR) to node 0's address")
    if gpus and nproc > gpus:
        problems.append(f"'nproc_per_node': {nproc} processes but {gpus} visible CUDA GPU(s); one process per GPU")
    if not gpus and nproc * nnodes > 1 and not force:
        problems.append(f"'nproc_per_node': {nproc} x {nnodes} node(s) asks for several processes and this machine "
                        f"has no CUDA GPU; CPU processes share the same cores and train slower than one. Set "
                        f"{FORCE_ENV}=1 to run them anyway (tests, trying a multi-node setup)")
    if d.launcher == "accelerate" and not gpus:
        problems.append("'launcher': accelerate launch runs CPU processes only through MPI (mpirun), in one process "
                        "otherwise; use launcher: torchrun on a machine without CUDA GPUs")
    if problems:
        raise ConfigError(problems, source=cfg.source)
    if nproc * nnodes == 1 and not (force or d.deepspeed or d.fsdp):
        return None
    port = int(_pick(d.master_port, "MASTER_PORT", 29500 if nnodes > 1 else _free_port()))
    return LaunchPlan(nproc, nnodes, node_rank, addr, port, d.launcher, cuda=bool(gpus))


def printable(command: list[str]) -> str:
    """The command as a user would type it (``torchrun`` / ``accelerate launch`` instead of ``python -m``)."""
    words = list(command)
    if words[1:3] == ["-m", "torch.distributed.run"]:
        words = ["torchrun", *words[3:]]
    elif words[1:3] == ["-m", "accelerate.commands.launch"]:
        words = ["accelerate", "launch", *words[3:]]
    return shlex.join(words)


def run_launch(plan: LaunchPlan, train_args: list[str]) -> float:
    """Run every process of this node under the launcher; returns the seconds it took.

    A failing rank makes torchrun stop the others (it does not restart: ``--max_restarts=0``) and exit
    non-zero; that becomes a TrainingError naming the exit code, after torchrun's own report of which
    rank failed and how.
    """
    command = plan.command(train_args)
    from tunesmith.utils.console import console

    console.print(f"[bold]launch[/bold]: {plan.world_size} process(es) on {plan.nnodes} node(s) "
                  f"(this is node {plan.node_rank}); the command, to run by hand or from a Slurm script:\n"
                  f"  {printable(command)}")
    env = {**os.environ, LAUNCHED_ENV: "1"}
    if not plan.cuda and "OMP_NUM_THREADS" not in env:  # the processes share this node's cores (torchrun: 1 each)
        from tunesmith.utils.hardware import physical_cores

        env["OMP_NUM_THREADS"] = str(max(1, physical_cores() // plan.nproc_per_node))
    started = time.time()
    rc = subprocess.run(command, env=env).returncode
    seconds = time.time() - started
    if rc != 0:
        raise TrainingError(
            f"the {plan.world_size}-process run failed after {seconds:.0f}s (launcher exit code {rc}); the other "
            "processes were stopped. The launcher's report above names the failed rank and its error.",
            hint="fix the error of the first failed rank; rerun with resume_from_checkpoint=last to continue from "
                 "the last complete checkpoint",
        )
    return seconds
