"""The `bmc` command line: check, ir, build, train, eval.

User errors print `file:line:col: error: ...` with the source line and a caret, and exit with status 1; bugs in
bmc print a short report asking for an issue, never a bare traceback. Warnings print the same way on stderr and do not
change the exit status, unless `-W error` makes them errors.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys


def _set_threads(argv: list[str]) -> None:
    """BLAS reads its thread count when NumPy loads, so `--threads` is applied before anything imports NumPy."""
    threads = "1"  # small models train fastest on one thread, and a busy machine punishes oversubscription
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            threads = argv[i + 1]
        elif arg.startswith("--threads="):
            threads = arg.split("=", 1)[1]
    if threads.isdigit() and int(threads) > 0:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = threads


def _parser() -> argparse.ArgumentParser:
    from bmc import targets  # after _set_threads: importing bmc loads NumPy

    p = argparse.ArgumentParser(prog="bmc", description="A declarative graph compiler for neural networks.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def model_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("file", help="the .bm file")
        sp.add_argument("--model", help="the model to use when the file defines several")
        sp.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME=VALUE",
                        help="override a model parameter, e.g. -D hidden=256")
        sp.add_argument("--threads", type=int, default=1, help="BLAS and onnxruntime threads (default 1)")
        sp.add_argument("-W", dest="warnings", default="default", choices=["default", "error", "ignore"],
                        help="warnings: report them (default), make them errors (-W error) or drop them")
        sp.add_argument("--memory-limit", metavar="SIZE",
                        help="the most memory the model's parameters, optimizer state and activations may need, "
                             "e.g. 64G or 512M (default: this machine's memory, or a smaller container or ulimit -v "
                             "limit; none: no limit)")

    sp = sub.add_parser("ops", help="every op: its shape rule, its gradient and its lowering in each target")
    sp.add_argument("--markdown", action="store_true", help="as the Markdown table of docs/ops.md")

    sp = sub.add_parser("fmt", help="rewrite .bm files in the canonical layout, keeping comments")
    sp.add_argument("files", nargs="+", metavar="FILE", help="the .bm files; - reads stdin and writes stdout")
    sp.add_argument("--check", action="store_true", help="write nothing; exit 1 listing the files that would change")
    sp.add_argument("--diff", action="store_true", help="write nothing; print the changes as a unified diff")

    sp = sub.add_parser("import", help="turn an ONNX model into a .bm model and its parameters (params.npz)")
    sp.add_argument("onnx", metavar="MODEL.onnx", help="the ONNX model")
    sp.add_argument("-o", "--out", required=True, metavar="FILE.bm", help="the .bm file to write")
    sp.add_argument("--params-out", metavar="FILE.npz",
                    help="where the parameters go (default: params.npz beside the .bm file)")
    sp.add_argument("--name", help="the model's name (default: the ONNX file's name)")
    sp.add_argument("--loss", choices=["cross_entropy", "binary_cross_entropy", "mse"],
                    help="add a target and this loss on the model's output, so that bmc train fine-tunes it")

    sp = sub.add_parser("check", help="parse and type-check; print parameters, output shapes and the cost report")
    model_args(sp)
    sp.add_argument("--json", action="store_true", help="print the summary as JSON")
    sp.add_argument("--batch", type=int, metavar="N",
                    help="the batch size of the cost report (default: the train block's batch, else 64)")

    sp = sub.add_parser("ir", help="print the IR of the inference graph (or --train: the whole train step)")
    model_args(sp)
    sp.add_argument("--train", action="store_true", help="the train step: forward, backward, optimizer update")
    sp.add_argument("--no-opt", action="store_true", help="before optimization passes")

    sp = sub.add_parser("graph", help="draw the model (or --train: the train step) as a picture with Graphviz")
    model_args(sp)
    sp.add_argument("-o", "--out", required=True, metavar="FILE",
                    help="the picture: FILE.svg, FILE.png, FILE.pdf (drawn by Graphviz's dot) or FILE.dot")
    sp.add_argument("--train", action="store_true", help="the train step: forward, backward and optimizer apart")
    sp.add_argument("--depth", type=int, metavar="D",
                    help="draw layers and repeat copies nested deeper than D levels as one box each (default: all)")
    sp.add_argument("--kernels", nargs="?", const="cuda", choices=["cuda", "numpy"],
                    help="the optimized graph's ops as the CUDA backend fuses them into kernels (default), or as the "
                         "NumPy backend's memory plan shares buffers (--kernels numpy)")

    sp = sub.add_parser("plot", help="draw the losses, metrics and learning rate of a training run")
    sp.add_argument("run", help="a trained build directory, or a log written by bmc train --log FILE.csv/.jsonl")
    sp.add_argument("-o", "--out", required=True, metavar="FILE", help="the picture: FILE.png, FILE.svg or FILE.pdf")

    sp = sub.add_parser("build", help="generate code for a target")
    model_args(sp)
    sp.add_argument("--target", default="numpy", choices=list(targets.TARGETS),
                    help="numpy (a standalone Python module, default), onnx (a standard ONNX model) or cuda "
                         "(generated CUDA kernels compiled by nvcc into a shared library)")
    sp.add_argument("--params", metavar="BUILD|FILE.npz",
                    help="take trained parameters from this build directory, or parameters by name from a .npz "
                         "archive (those it lacks are initialized)")
    sp.add_argument("--train", action="store_true",
                    help="onnx: also export the whole train step (train_step.onnx) and its two halves "
                         "(gradients.onnx, apply.onnx) with the initial state")
    sp.add_argument("--freeze", metavar="PATTERNS",
                    help="with --train: parameters the train step leaves as they are, as names or glob patterns "
                         "separated by commas (instead of the train block's freeze)")
    sp.add_argument("-o", "--out", required=True, help="output directory")
    sp.add_argument("--dtype", default="f32", choices=["f32", "f64"], help="float precision (default f32)")
    sp.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"],
                    help="cuda: the matrix products' precision: fp32 (exact, default), or tf32 / bf16 inputs on the "
                         "tensor cores with FP32 accumulation")
    sp.add_argument("--seed", type=int, help="initialization seed (default: the train block's, else 0)")

    sp = sub.add_parser("train", help="train on a data set and write the trained build")
    model_args(sp)
    sp.add_argument("--data", help="digits, fashion_mnist, breast_cancer, diabetes, an IDX directory, a folder of "
                    "images per class, a .npz, a .csv, or "
                    "text:FILE[,FILE...] for a character-level language model")
    sp.add_argument("--target-column", metavar="NAME", help="a CSV file's target column (default: the last)")
    sp.add_argument("--epochs", type=int)
    sp.add_argument("--batch", type=int)
    sp.add_argument("--lr", type=float)
    sp.add_argument("--seed", type=int)
    sp.add_argument("--optimizer", choices=["gd", "sgd", "adam", "adamw"])
    sp.add_argument("--steps", type=int, help="a step budget (instead of epochs)")
    sp.add_argument("--backend", default="numpy", choices=list(targets.RUNNERS),
                    help="run the train step in the generated NumPy module (default), as ONNX in onnxruntime, or "
                         "as generated CUDA kernels on a GPU")
    sp.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"],
                    help="--backend cuda: the matrix products' precision: fp32 (exact, default), or tf32 / bf16 "
                         "inputs on the tensor cores (FP32 accumulation; FP32 master weights, no loss scaling)")
    sp.add_argument("--params", metavar="FILE.npz",
                    help="start from these parameters, by name: a .npz archive (what bmc import writes) or a build "
                         "directory; those it lacks, or has in another shape, are initialized")
    sp.add_argument("--freeze", metavar="PATTERNS",
                    help="parameters training leaves as they are: names or glob patterns separated by commas, "
                         "e.g. 'stem,layer1.*' (instead of the train block's freeze)")
    sp.add_argument("-o", "--out", help="write the trained build here")
    sp.add_argument("--quiet", action="store_true", help="no progress line")
    sp.add_argument("--progress", action="store_true", help="the progress line even when stderr is not a terminal")
    sp.add_argument("--checkpoint-dir", metavar="DIR",
                    help="write checkpoints here (default with a checkpoint setting: OUT.checkpoints)")
    sp.add_argument("--checkpoint-every", metavar="N|Ns",
                    help="a checkpoint every N epochs, or every N steps (500s); default: the train block's, else 1")
    sp.add_argument("--keep-checkpoints", type=int, metavar="K", help="keep the last K checkpoints (default 3)")
    sp.add_argument("--resume", metavar="DIR", help="continue from the last checkpoint in DIR")
    sp.add_argument("--early-stop", type=int, metavar="PATIENCE",
                    help="stop after PATIENCE epochs without improvement, and restore the best epoch's parameters")
    sp.add_argument("--early-stop-on", metavar="NAME", help="what early stopping watches (default val_loss)")
    sp.add_argument("--test-every-epoch", action="store_true",
                    help="score the test set after every epoch (default: after the last)")
    sp.add_argument("--log", metavar="FILE", help="one row per epoch, as FILE.csv or FILE.jsonl")
    sp.add_argument("--tensorboard", metavar="DIR", help="TensorBoard event files in DIR")
    sp.add_argument("--json", action="store_true", help="print a machine-readable summary at the end")
    sp.add_argument("--check-numerics", action="store_true",
                    help="check every step's outputs, parameters and state, and stop at the first non-finite value "
                         "with the .bm statement of the op that produced it")
    sp.add_argument("--workers", type=int, metavar="K",
                    help="data-parallel training in K processes on this machine (starts mpirun -n K; each batch is "
                         "split K ways); under mpirun or srun every rank is a worker without this flag")

    sp = sub.add_parser("generate", help="continue a prompt with a language model trained on text")
    sp.add_argument("build", help="a build directory written by `bmc train ... --data text:FILE -o DIR`")
    sp.add_argument("--prompt", default="", help="the text to continue")
    sp.add_argument("--length", type=int, default=200, help="characters to generate (default 200)")
    sp.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--threads", type=int, default=1, help="BLAS and onnxruntime threads (default 1)")

    sp = sub.add_parser("predict", help="a build's predictions on .npy, .npz, CSV or image files")
    sp.add_argument("build", help="a build directory")
    sp.add_argument("files", nargs="+", help="the files: an image is one sample, an array or a CSV file many")
    sp.add_argument("-o", "--out", metavar="FILE.csv", help="write the predictions to a CSV file")
    sp.add_argument("--json", action="store_true", help="print the predictions as JSON")
    sp.add_argument("--threads", type=int, default=1, help="BLAS and onnxruntime threads (default 1)")

    sp = sub.add_parser("eval", help="evaluate a build on a data set's test split")
    sp.add_argument("build", help="a build directory")
    sp.add_argument("--data", required=True)
    sp.add_argument("--threads", type=int, default=1, help="BLAS and onnxruntime threads (default 1)")
    sp.add_argument("--json", action="store_true", help="print the scores (and the confusion matrix) as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    from bmc.api import Model, load

    if args.command == "ops":
        from bmc import op_index

        sys.stdout.write(op_index.markdown() if args.markdown else op_index.text())
        return 0
    if args.command == "fmt":
        from bmc.syntax import fmt_command

        return fmt_command.run(args.files, args.check, args.diff)
    if args.command == "import":
        from bmc.onnx_import.command import run as run_import

        return run_import(args)
    if args.command == "plot":
        from bmc import plot

        print(f"wrote {plot.plot(plot.read_run(args.run), args.out, f'{args.run}: losses, metrics and learning rate')}")
        return 0
    if args.command == "generate":
        print(load(args.build).generate(args.prompt, args.length, args.temperature, args.seed))
        return 0
    if args.command == "eval":
        build = load(args.build)
        report: dict = {}
        scores = build.evaluate(args.data, report)
        if args.json:
            print(json.dumps({**scores, **report}, indent=2))
        else:
            print("  ".join(f"{k} {v:.4f}" for k, v in scores.items()))
            if "confusion_matrix" in report:
                print(confusion_text(report["confusion_matrix"], report["classes"]))
        return 0
    if args.command == "predict":
        from bmc.predict import predict_files

        rows = predict_files(load(args.build), args.files)
        if args.out:
            from bmc import artifacts

            artifacts.write_file(args.out, csv_text_rows(rows))
        if args.json:
            print(json.dumps(rows, indent=2))
        elif not args.out:
            for r in rows:
                print(f"{r['file']}  {r['class']}  {r['probability']:.4f}" if "class" in r else
                      f"{r['file']}  {' '.join(f'{v:.6g}' for v in r['value'])}")
        return 0
    model = Model.from_file(args.file, args.model, args.defines, getattr(args, "dtype", "f32"), args.warnings,
                            args.memory_limit)
    for warning in model.warnings:
        print(warning.render(), file=sys.stderr)
    if args.command == "check":
        batch = {} if args.batch is None else {"batch": args.batch}
        print(json.dumps(model.summary_json(**batch), indent=2) if args.json else model.summary(**batch))
    elif args.command == "graph":
        _graph(args, model)
    elif args.command == "ir":
        print(model.ir(train=args.train, optimized=not args.no_opt))
    elif args.command == "build":
        trained, params = None, None
        if args.params and os.path.isdir(args.params):
            trained = load(args.params)  # its constants and preprocessing: Model.matching
        elif args.params:
            params = args.params  # parameters by name (bmc/given.py)
        with _precision(args, args.target):
            out = model.build(args.out, args.target, seed=args.seed, trained=trained, train_step=args.train,
                              params=params, freeze=args.freeze, log=lambda m: print(m, file=sys.stderr))
        print(f"wrote {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")
    elif args.command == "train":
        _train(args, model)
    return 0


def _precision(args: argparse.Namespace, target: str):
    """--precision: the CUDA target's scope for the build or the run (fp32, the default, needs none)."""
    import contextlib

    from bmc import targets
    from bmc.diagnostics import UsageError

    if args.precision == "fp32":
        return contextlib.nullcontext()
    if target != "cuda":
        flag = "--target" if args.command == "build" else "--backend"
        raise UsageError(f"--precision {args.precision} is for the cuda target's matrix products, not {flag} "
                         f"{target}", notes=(f"add {flag} cuda, or drop --precision",))
    return targets.target("cuda").precision(args.precision)


def _graph(args: argparse.Namespace, model) -> None:
    from bmc.diagnostics import UsageError
    from bmc.draw import kernels, picture, statements

    if args.depth is not None and args.depth < 0:
        raise UsageError(f"--depth {args.depth}: a depth is 0 (model statements only) or more")
    compiled = model.compiled
    if args.kernels:
        pic = kernels.picture(compiled, args.kernels, args.train)
    else:
        pic = statements.picture(compiled, args.train, args.depth)
    print(f"wrote {picture.save(pic, args.out)}")


def csv_text_rows(rows: list[dict]) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if rows and "class" in rows[0]:
        writer.writerow(["file", "class", "probability"])
        writer.writerows([r["file"], r["class"], r["probability"]] for r in rows)
    else:
        width = max((len(r["value"]) for r in rows), default=0)
        writer.writerow(["file", *(f"value{i}" for i in range(width))])
        writer.writerows([r["file"], *r["value"]] for r in rows)
    return out.getvalue()


def confusion_text(matrix: list[list[int]], classes: list) -> str:
    """Rows: the true class; columns: the predicted one."""
    names = [str(c) for c in classes]
    width = max(6, *(len(n) for n in names), *(len(str(v)) for row in matrix for v in row))
    lines = ["confusion matrix (rows: true class, columns: predicted)",
             " " * width + " " + " ".join(f"{n:>{width}}" for n in names)]
    lines += [f"{names[i]:>{width}} " + " ".join(f"{v:>{width}}" for v in row) for i, row in enumerate(matrix)]
    return "\n".join(lines)


def _train(args: argparse.Namespace, model) -> None:
    from bmc import artifacts
    from bmc.runtime import keep_freed_memory
    from bmc.train import checkpoint, logs, run_setup

    keep_freed_memory()  # this process trains: its steps reuse freed memory instead of faulting it in again
    replicas = _replicas(args)
    leader = replicas is None or replicas.leader  # rank 0 of a data-parallel job writes and speaks for it
    if args.out and leader:
        artifacts.check_target(args.out)  # now, not after the whole run
    wants = args.checkpoint_dir or args.checkpoint_every or args.keep_checkpoints or model.config.checkpoint
    directory = args.checkpoint_dir or args.resume or (run_setup.default_dir(model, args.out) if wants else None)
    resume_step = checkpoint.read_state(checkpoint.latest(args.resume)).step if args.resume else 0
    loggers = []
    if args.log and leader:
        loggers.append(logs.FileLog(args.log, resuming=bool(args.resume)))
    if args.tensorboard and leader:
        loggers.append(logs.TensorBoardLog(args.tensorboard, resume_step))
    say = (lambda m: print(m, file=sys.stderr)) if args.json else print
    with _precision(args, args.backend):
        trained = model.train(args.data, epochs=args.epochs, batch=args.batch, lr=args.lr, seed=args.seed,
                              optimizer=args.optimizer, steps=args.steps, backend=args.backend, log=say,
                              progress=None if args.progress else not args.quiet, check_numerics=args.check_numerics,
                              checkpoint_dir=directory, checkpoint_every=args.checkpoint_every,
                              keep=args.keep_checkpoints, resume=args.resume, early_stop=args.early_stop,
                              early_stop_on=args.early_stop_on, test_every_epoch=args.test_every_epoch,
                              on_epoch=loggers, target=args.target_column, params=args.params, freeze=args.freeze,
                              replicas=replicas)
    for logger in loggers:
        getattr(logger, "close", lambda: None)()
    if not leader:
        return
    out = trained.save(args.out) if args.out else None
    if out:
        say(f"wrote the trained build to {out}")
    else:
        print("note: the trained build was not saved; pass -o DIR to write it", file=sys.stderr)
    if args.json:
        history = trained.history
        print(json.dumps({"model": model.name, "data": trained.data, "build": str(out) if out else None,
                          "epochs": [logs.row(e) for e in history.epochs],
                          "final": history.final.columns() if history.epochs else {},
                          "stopped_early": history.stopped_early or None}, indent=2))


def _replicas(args: argparse.Namespace):
    """This rank's part in a data-parallel job when mpirun (or srun) started this process with more than one
    rank; None in a single process."""
    from bmc.diagnostics import UsageError
    from bmc.train import launch, replicas

    if not launch.launched():
        return None
    comm = replicas.communicator()
    if args.workers is not None and args.workers != comm.Get_size():
        raise UsageError(f"--workers {args.workers}, but mpirun started {comm.Get_size()} ranks",
                         notes=("under mpirun, leave out --workers: every rank is a worker",))
    return replicas.Replicas(comm) if comm.Get_size() > 1 else None


def main(argv: list[str] | None = None) -> int:
    as_program = argv is None
    argv = sys.argv[1:] if argv is None else argv
    _set_threads(argv)
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        from bmc.version import __version__

        print(f"bmc {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    from bmc.diagnostics import BmcError

    if args.command == "train" and args.workers is not None:
        from bmc.train import launch

        if not launch.launched():  # start the workers, each running this command without --workers
            try:
                return launch.run_workers(args.workers, argv)
            except BmcError as e:
                print(e.render(), file=sys.stderr)
                return 1
    if as_program:
        import bmc.api  # noqa: F401 - what every command imports, before the freeze

        # The imported modules' objects live until the process ends: out of the garbage collector's sight, neither
        # its passes during a build nor its pass at exit walk them (the exit took 70 ms of a 0.4 s `bmc build`).
        gc.freeze()
    code = _run(args)
    if code:  # one rank of a data-parallel job failed: end the others, which would wait for it
        from bmc.train.launch import end_job

        end_job(code)
    return code


def _run(args: argparse.Namespace) -> int:
    from bmc.diagnostics import BmcError
    from bmc.train.launch import error_text

    try:
        return run(args)
    except BmcError as e:
        print(error_text(e.render()), file=sys.stderr)
        return 1
    except BrokenPipeError:  # `bmc ... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        import traceback

        where = traceback.extract_tb(e.__traceback__)[-1]
        print(f"internal error: {type(e).__name__}: {e}\n  at {where.filename}:{where.lineno}\n"
              "This is a bug in bmc, not in your model. Please file an issue with the .bm file and this message "
              "(set BMC_TRACEBACK=1 for the full traceback).", file=sys.stderr)
        if os.environ.get("BMC_TRACEBACK"):
            traceback.print_exc()
        return 70


if __name__ == "__main__":
    sys.exit(main())
