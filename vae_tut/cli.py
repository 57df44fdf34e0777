"""The command line: ``python -m vae_tut {data,train,reproduce}`` (see the book's introduction).

Bad arguments and bad files end with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import VaeTutError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line, not usage plus a message."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser for all three sub-commands."""
    from .data import DATASETS
    from .experiments import GRIDS
    from .models import ARCHS, KINDS

    parser = _Parser(
        prog="python -m vae_tut", description="Data, training and the report's experiments for the VAE book."
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    data = sub.add_parser("data", help="fill the data root with verified MNIST and Fashion-MNIST")
    data.add_argument("--dataset", choices=[*DATASETS, "all"], default="all")
    data.add_argument("--root", help="data root (default: $VAE_TUT_DATA or ~/.cache/vae_tut/data)")
    data.add_argument("--no-download", action="store_true", help="use local files only, never torchvision's download")

    tr = sub.add_parser("train", help="train one VAE (or autoencoder), or load it from the cache")
    tr.add_argument("--arch", choices=ARCHS, default="mlp")
    tr.add_argument("--dataset", choices=list(DATASETS), default="mnist")
    tr.add_argument("--kind", choices=KINDS, default="vae")
    # the values are checked by RunConfig, the one place that knows their ranges
    tr.add_argument("--z", type=int, default=2, help="latent size (default 2)")
    tr.add_argument("--c", type=float, default=0.05, help="decoder variance (default 0.05)")
    tr.add_argument("--epochs", type=int, default=15)
    tr.add_argument("--lr", type=float, default=None, help="learning rate (default: 0.0025 for mlp, 0.0015 for cnn)")
    tr.add_argument("--batch-size", type=int, default=256)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument(
        "--precision",
        choices=["fp32", "bf16", "auto"],
        default=None,
        help="arithmetic of the forward pass (default: auto for cnn, i.e. bf16 where "
        "the hardware has bf16 units and fp32 elsewhere; fp32 for mlp)",
    )
    tr.add_argument(
        "--json", action="store_true", help="end with one JSON line of final train/test recon, kl, total and seconds"
    )
    _add_run_options(tr)

    rep = sub.add_parser("reproduce", help="run the report's grid and write a results table")
    rep.add_argument("--only", choices=list(GRIDS), help="run one part of the grid")
    rep.add_argument("--out", default="reproduce.md", help="markdown table to write")
    rep.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="worker processes training at once (default: one single-thread worker per core)",
    )
    _add_run_options(rep)
    return parser


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="quick mode: 1 epoch on 2,048 images (same as VAE_TUT_QUICK=1)")
    p.add_argument("--retrain", action="store_true", help="ignore and replace cached runs")
    p.add_argument(
        "--device", choices=["cpu", "cuda", "mps"], help="where to train (default: CUDA, then MPS, then the CPU)"
    )


def _cmd_data(args: argparse.Namespace) -> int:
    from .data import DATASETS, download_allowed, prepare

    names = list(DATASETS) if args.dataset == "all" else [args.dataset]
    prepare(names, root=args.root, download=not args.no_download and download_allowed())
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .experiments import RunConfig, run

    config = RunConfig(
        arch=args.arch,
        dataset=args.dataset,
        z=args.z,
        c=args.c,
        lr=args.lr,
        batch_size=args.batch_size,
        epochs=args.epochs,
        seed=args.seed,
        kind=args.kind,
        precision=args.precision,
    )
    result = run(config, retrain=args.retrain, device=args.device)
    s = result.summary()
    print(f"{s['run']}{' (from cache)' if s['cached'] else ''}")
    for split in ("train", "test"):
        m = s[split]
        print(f"  {split:5s}  recon {m['recon']:8.2f}  kl {m['kl']:7.2f}  total {m['total']:8.2f}")
    print(f"  trained in {s['seconds']:.1f} s")
    if args.json:
        print(
            json.dumps(
                {
                    "train": s["train"],
                    "test": s["test"],
                    "seconds": s["seconds"],
                    "quick": s["quick"],
                    "cached": s["cached"],
                }
            )
        )
    return 0


def _check_writable(path: Path) -> None:
    """Fail before any training if the results table could not be written to ``path``: open it
    for appending (which writes nothing), and remove it again if it was not there before."""
    from .errors import ConfigError
    from .store import reason

    try:
        if path.is_dir():
            raise ConfigError(f"--out {path} is a folder; name a file")
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            raise ConfigError(f"--out {path}: the folder {folder} does not exist")
        existed = path.exists()
        with open(path, "a"):
            pass
        if not existed:
            path.unlink()
    except OSError as err:
        raise ConfigError(f"--out {path} cannot be written ({reason(err)})") from None


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .experiments import grid, run
    from .parallel import available_cores, check_jobs, missing_tasks, run_tasks
    from .report import results_table

    out = Path(args.out)
    _check_writable(out)
    jobs = available_cores() if args.jobs is None else check_jobs(args.jobs)
    # the grid's missing runs and (whole grid) chapters 5 and 10's estimates, so the book only reads them
    run_tasks(
        missing_tasks(args.only, device=args.device, retrain=args.retrain),
        jobs,
        say=lambda line: print(line, flush=True),
    )
    runs = {name: run(config, device=args.device) for name, config in grid(args.only).items()}
    table = results_table(runs)
    out.write_text(table)
    print(table)
    print(f"wrote {out}")
    return 0


def _read_flags(quick: bool) -> None:
    """Check the on/off variables once (:func:`~vae_tut.validation.env_flag`) and write them back
    as ``1``/``0``, the form every reader of them understands; ``--quick`` turns quick mode on."""
    from .validation import env_flag

    flags = {
        "VAE_TUT_QUICK": env_flag("VAE_TUT_QUICK", False) or quick,
        "VAE_TUT_NO_DOWNLOAD": env_flag("VAE_TUT_NO_DOWNLOAD", False),
        "VAE_TUT_PROGRESS": env_flag("VAE_TUT_PROGRESS", True),
    }
    for name, on in flags.items():
        os.environ[name] = "1" if on else "0"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {"data": _cmd_data, "train": _cmd_train, "reproduce": _cmd_reproduce}
    try:
        _read_flags(quick=getattr(args, "quick", False))
        return commands[args.command](args)
    except VaeTutError as err:
        print(f"{parser.prog} {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:  # a file-system fault no check above foresaw: still one line
        from .store import reason

        where = f"{err.filename}: " if err.filename else ""
        print(f"{parser.prog} {args.command}: error: {where}{reason(err)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(
            f"{parser.prog} {args.command}: interrupted; finished epochs are kept "
            "and the same command resumes from them",
            file=sys.stderr,
        )
        return 130
