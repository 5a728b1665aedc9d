"""`bmc train --workers K`: start K ranks of the same command under Open MPI's mpirun on this machine, and say
plainly what happened when one of them fails; and, in a rank, ending the whole job after an error
(bmc/train/replicas.py is what each rank runs)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

from bmc.diagnostics import UsageError

# environment variables the MPI launchers set in every rank they start (Open MPI, MPICH's Hydra, Slurm's PMI)
LAUNCHED = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")


def launched() -> bool:
    """Whether this process was started by an MPI launcher (mpirun, mpiexec, srun)."""
    return any(k in os.environ for k in LAUNCHED)


def without_workers(argv: list[str]) -> list[str]:
    """The command line the ranks run: this one without --workers (each rank is one worker)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            out.append(arg)
    return out


def mpirun_command(workers: int, argv: list[str]) -> list[str]:
    """mpirun's command line for `workers` ranks of `bmc argv...` with this Python."""
    mpirun = shutil.which("mpirun") or shutil.which("mpiexec")
    if mpirun is None:
        raise UsageError("--workers needs MPI's launcher (mpirun), which is not installed",
                         notes=("install Open MPI: apt-get install openmpi-bin libopenmpi-dev; then pip install "
                                "mpi4py", "or train in one process: drop --workers"))
    command = [mpirun, "-n", str(workers)]
    if workers > (os.cpu_count() or 1):
        command.append("--oversubscribe")  # more ranks than cores: they share the cores (slower, still correct)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-run-as-root")  # containers run as root; Open MPI refuses that unless told
    return [*command, sys.executable, "-m", "bmc", *without_workers(argv)]


def run_workers(workers: int, argv: list[str]) -> int:
    """Run the ranks and return the job's exit status: 0, or the failing rank's, with a line saying so."""
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    command = mpirun_command(workers, argv)
    print(f"starting {workers} workers: {' '.join(command[:3])} ...", file=sys.stderr)
    try:
        done = subprocess.run(command, check=False)
    except KeyboardInterrupt:
        print("interrupted: the workers were stopped", file=sys.stderr)
        return 130
    code = done.returncode
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        print(f"error: the workers' launcher ended on signal {name}; the job stopped", file=sys.stderr)
        return 1
    if code != 0:
        print(f"error: a worker failed (exit status {code}); the other workers were stopped (mpirun's message "
              "above says which rank)", file=sys.stderr)
    return code


def job_rank() -> tuple[int, int]:
    """(rank, size) of this process in an MPI job, from MPI once it has started, else from what the launcher set in
    the environment (an error can come before MPI starts: a .bm file every rank refuses); (0, 1) alone."""
    world = _world()
    if world is not None:
        return world.Get_rank(), world.Get_size()
    for rank, size in (("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"), ("PMI_RANK", "PMI_SIZE"),
                       ("SLURM_PROCID", "SLURM_NTASKS")):
        if os.environ.get(rank, "").isdigit() and os.environ.get(size, "").isdigit():
            return int(os.environ[rank]), int(os.environ[size])
    return 0, 1


def _world():
    """MPI's world communicator while MPI runs in this process (mpi4py imported and initialized), else None."""
    mpi = sys.modules.get("mpi4py.MPI")
    return mpi.COMM_WORLD if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized() else None


def end_job(code: int) -> None:
    """After an error on this rank: end every rank of the job (they would wait for this one in the next
    all-reduce). Nothing in a single process, or before MPI started (each rank then fails on its own)."""
    world = _world()
    if code and world is not None and world.Get_size() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        world.Abort(code)


def error_text(message: str) -> str:
    """An error as this rank prints it: whole on rank 0 (or alone); on another rank its first line, marked with the
    rank, so a job's output says which ranks failed without repeating one error K times."""
    rank, size = job_rank()
    return f"[rank {rank} of {size}] {message.splitlines()[0]}" if rank else message
