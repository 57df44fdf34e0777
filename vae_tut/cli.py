"""The command line ``python -m vae_tut {data,train,reproduce,publish}``: bad input ends in one stderr line, exit 2."""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import ConfigError, VaeTutError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line, without the usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser for all four sub-commands."""
    from .data import DATASETS
    from .experiments import GRIDS
    from .models import ARCHS, KINDS

    parser = _Parser(prog="python -m vae_tut", description="Data, training and the report's grid for the VAE book.")
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
    tr.add_argument("--lr", type=float, help="learning rate (default: 0.0025 for mlp, 0.0015 for cnn)")
    tr.add_argument("--batch-size", type=int, default=256)
    tr.add_argument("--seed", type=int, default=0)
    arithmetic = "forward-pass arithmetic (default: auto, i.e. bf16 where the hardware has it, for cnn; fp32 for mlp)"
    tr.add_argument("--precision", choices=["fp32", "bf16", "auto"], help=arithmetic)
    tr.add_argument("--json", action="store_true", help="end with one JSON line: train/test recon, kl, total, seconds")

    rep = sub.add_parser("reproduce", help="run the report's grid and write a results table")
    rep.add_argument("--only", choices=list(GRIDS), help="run one part of the grid")
    rep.add_argument("--out", default="reproduce.md", help="markdown table to write")
    rep.add_argument("--jobs", type=int, help="worker processes at once (default: one per core, one thread each)")
    for p in (tr, rep):  # the commands that train
        p.add_argument("--quick", action="store_true", help="quick mode: 1 epoch on 2,048 images (as VAE_TUT_QUICK=1)")
        p.add_argument("--retrain", action="store_true", help="ignore and replace cached runs")
        p.add_argument("--device", choices=["cpu", "cuda", "mps"], help="where to train (default: CUDA, MPS, then CPU)")

    pub = sub.add_parser("publish", help="write the cached runs and their index.json to DIR for readers to fetch")
    pub.add_argument("dir", metavar="DIR", help="folder to write (the book's workflow: _build/html/runs)")
    return parser


def _cmd_data(args: argparse.Namespace) -> None:
    from .data import DATASETS, download_allowed, prepare

    names = list(DATASETS) if args.dataset == "all" else [args.dataset]
    prepare(names, root=args.root, download=not args.no_download and download_allowed())


def _cmd_train(args: argparse.Namespace) -> None:
    from .experiments import RunConfig, run

    names = ("arch", "dataset", "z", "c", "lr", "batch_size", "epochs", "seed", "kind", "precision")
    result = run(RunConfig(**{name: getattr(args, name) for name in names}), retrain=args.retrain, device=args.device)
    s = result.summary()
    print(f"{s['run']}{' (fetched)' if result.origin == 'fetched' else ' (from cache)' if s['cached'] else ''}")
    for split, m in (("train", s["train"]), ("test", s["test"])):
        print(f"  {split:5s}  recon {m['recon']:8.2f}  kl {m['kl']:7.2f}  total {m['total']:8.2f}")
    print(f"  trained in {s['seconds']:.1f} s")
    if args.json:
        print(json.dumps({key: s[key] for key in ("train", "test", "seconds", "quick", "cached")}))


def _unwritable(path: Path, err: OSError) -> ConfigError:
    from .store import reason

    return ConfigError(f"--out {path} cannot be written ({reason(err)})")


def _check_writable(path: Path) -> None:
    """Fail in one line naming ``path``, before any training, if the results table could not be written there."""
    try:
        if path.is_dir():
            raise ConfigError(f"--out {path} is a folder; name a file")
        if not path.parent.is_dir():
            raise ConfigError(f"--out {path}: the folder {path.parent} does not exist")
        existed = path.exists()
        # append a probe byte (a full disk refuses it), then undo it; a FIFO without a reader is refused at once
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o666)
        try:
            info = os.fstat(fd)
            os.write(fd, b"\n")
            if stat.S_ISREG(info.st_mode):
                os.ftruncate(fd, info.st_size)
        finally:
            os.close(fd)
        if not existed:
            path.unlink()
    except OSError as err:
        raise _unwritable(path, err) from None


def _write_out(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as err:
        raise _unwritable(path, err) from None


def _cmd_reproduce(args: argparse.Namespace) -> None:
    from .experiments import cache_dir, grid, run
    from .parallel import available_cores, missing_tasks, run_tasks
    from .pool import sigterm_as_interrupt
    from .remote import count_origins
    from .report import results_table
    from .train import resolve_device
    from .validation import whole

    out = Path(args.out)
    _check_writable(out)
    jobs = available_cores() if args.jobs is None else whole(args.jobs, "jobs", 1)
    dev = resolve_device(args.device)
    configs = grid(args.only)
    folders = {cache_dir() / config.resolved(dev).key(dev) for config in configs.values()}
    before = set() if args.retrain else {folder for folder in folders if folder.is_dir()}
    with sigterm_as_interrupt():  # `kill PID` stops the workers as Ctrl-C does
        # the grid's missing runs and (whole grid) chapters 5 and 10's estimates, so the book only reads them
        tasks = missing_tasks(args.only, device=args.device, retrain=args.retrain)
        run_tasks(tasks, jobs, say=lambda line: print(line, flush=True))
        runs = {name: run(config, device=args.device) for name, config in configs.items()}
    table = results_table(runs)
    _write_out(out, table)
    print(table)
    counts = count_origins(folders, before)
    print(f"runs: {counts['trained']} trained here, {counts['fetched']} fetched, {counts['cached']} from the cache")
    print(f"wrote {out}")


def _cmd_publish(args: argparse.Namespace) -> None:
    from .remote import publish, published_bytes

    count = publish(args.dir)
    print(f"published {count} entries ({published_bytes(args.dir) / 1e6:.1f} MB) to {args.dir}")


def _read_flags(quick: bool) -> None:
    """Check the on/off variables once and write them back as ``1``/``0``; ``--quick`` turns quick mode on."""
    from .validation import env_flag

    for name, default in {"VAE_TUT_QUICK": False, "VAE_TUT_NO_DOWNLOAD": False, "VAE_TUT_PROGRESS": True}.items():
        os.environ[name] = "1" if env_flag(name, default) else "0"
    if quick:
        os.environ["VAE_TUT_QUICK"] = "1"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {"data": _cmd_data, "train": _cmd_train, "reproduce": _cmd_reproduce, "publish": _cmd_publish}
    try:
        _read_flags(quick=getattr(args, "quick", False))
        commands[args.command](args)
        return 0
    except VaeTutError as err:
        print(f"{parser.prog} {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:  # a file-system fault no check above foresaw: still one line
        from .store import reason

        where = f"{err.filename}: " if err.filename else ""
        print(f"{parser.prog} {args.command}: error: {where}{reason(err)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        resume = "finished epochs are kept and the same command resumes from them"
        print(f"{parser.prog} {args.command}: interrupted; {resume}", file=sys.stderr)
        return 130
