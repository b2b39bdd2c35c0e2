"""Every committed table and figure from nothing, resumable (layer 6: the reproduce_all.py
command; scripts/reproduce_all.sh sets up the environment and data first).

Before any work it prints the plan: each step (a command of this repository), whether it is
done (its stamp in runs/reproduce_all/ matches its command and its outputs are as it wrote
them), skipped (its model or data is not on this machine: the reason, never a silent drop)
or to run, and its estimated time: the seconds it took on this machine when it last ran,
else the time it took when last measured anywhere (results/reproduce_all_times.csv,
committed: each finished step's wall time, the machine's speed, and which steps had run on
that machine before it, so whose caches it found), else its reference time (estimated on the
project's 2-core CPU machine, where each network family's forward ran at REFERENCE_SPEED);
both scaled by this machine's speed for the step's network family, measured first (two
seconds of DenseNet-BC-100's forward and two of ResNet-56's). Then one progress bar over the
estimated seconds of the steps to run, with an ETA that follows the measured pace: a step
running longer than its estimate holds the bar and the ETA grows. A stopped or failed step
is run again by the next invocation, and every command it runs is itself resumable (finished
runs, grids, features and fits are reused), so little is lost. Each step's output goes to
runs/reproduce_all/<step>.log.

    bash scripts/reproduce_all.sh --dry-run          # the plan only
    bash scripts/reproduce_all.sh                    # everything (about 16 h on 2 cores)
    bash scripts/reproduce_all.sh --only compare     # the steps whose name holds 'compare'
    bash scripts/reproduce_all.sh --only "ODIN table: densenet10"   # that step (whole name)
"""
import argparse
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from oodbench.commands import cli
from oodbench.core import files
from oodbench.core.paths import (ROOT, UserError, report_errors, results_dir, runs_dir,
                                 shown)
from oodbench.core.runtime import prepare_model
from oodbench.datasets.image_sets import test_set
from oodbench.networks.densenet import DenseNet3
from oodbench.networks.cifar_resnet import CifarResNet
from oodbench.networks.registry import get_spec, weights_sha256

# The forward of each network family, images/s (machine_speed(): batch 128, inference mode,
# channels last), on this project's 2-core CPU machine, the kind the reference times were
# measured on (AMD EPYC, 2 threads; bench.py --rows m, its fp32 matmul at 189 GFLOP/s). A step
# is scaled by its own family's: an Intel Xeon whose matmul ran at 218-256 GFLOP/s ran
# DenseNet-BC-100 at 82 img/s and ResNet-56 at 659 (2026-12-07): Mahalanobis's layer-wise grid
# took 137 s there against 69 s, resnet20's ODIN table 263 s against 410. The matmul's
# GFLOP/s predicted neither (3x off for the DenseNet); each family's forward did.
FAMILIES = {"densenet": ("DenseNet-BC-100", lambda: DenseNet3(100, 10)),
            "resnet": ("ResNet-56", lambda: CifarResNet(56, 10, "A"))}
REFERENCE_SPEED = {"densenet": 154.0, "resnet": 705.6}
TUNE = ("--tune-images", "200")
TIMES = "reproduce_all_times.csv"     # in results/: each step's last measured wall time
TIME_FIELDS = ("step", "seconds", "calibration", "images_s", "finished", "done_here_before")
PAPER_PROTOCOL = "ODIN table: densenet10, the paper's protocol (1,000 + 1,000 tuning images)"


@dataclass(frozen=True)
class Step:
    name: str                  # what it makes, as the plan lists it
    argv: tuple                # the command, from the repository root
    outputs: tuple             # the files it writes, from the repository root; a * matches
    #                            any text (a name holding a checkpoint's digest)
    reference_s: float         # its wall time from nothing on the reference machine
    models: tuple = ()         # registry models it needs here (weights and test set)
    reads: tuple = ()          # the steps whose results it reads, by the start of their name
    reuses: tuple = ()         # the steps whose caches it reuses (grids, runs), likewise
    alone_s: float = None      # its reference time when none of those has run here: it
    #                            makes their caches itself
    family: str = None         # the FAMILIES network its time goes with (default: a ResNet
    #                            for models named resnet*, else the DenseNet)

    @property
    def speed_family(self):
        if self.family:
            return self.family
        return "resnet" if any(m.startswith("resnet") for m in self.models) else "densenet"

    @property
    def slug(self):
        return "".join(c if c.isalnum() else "-" for c in self.name).strip("-")


def table_step(nn, reference_s, *flags):
    stem = f"{nn}_tune{TUNE[1]}"
    outputs = [f"results/{stem}.md", f"results/{stem}.csv"]
    if "--compare-modes" in flags:
        outputs += [f"results/{nn}_modes_tune{TUNE[1]}.md"]
    return Step(f"ODIN table: {nn}", ("code/table.py", "--nn", nn, *TUNE, *flags),
                tuple(outputs), reference_s, (nn,))


def compare_step(nn, reference_s, *flags, stem=None):
    stem = stem or f"detectors_{nn}_tune{TUNE[1]}"
    return Step(f"detector comparison: {nn}" + (" " + " ".join(flags) if flags else ""),
                ("code/compare.py", "--nn", nn, *TUNE, *flags),
                (f"results/{stem}.md", f"results/{stem}.csv", f"figures/{stem}.png"),
                reference_s, (nn,), reads=(f"ODIN table: {nn}",))


def laood_step(nn, reference_s, *flags, stem=None):
    stem = stem or f"laood_{nn}"
    return Step(f"LA-OOD: {nn}" + (" " + " ".join(flags) if flags else ""),
                ("code/laood_table.py", "--nn", nn, *flags),
                (f"results/{stem}.md", f"results/{stem}.csv"), reference_s, (nn,),
                reads=(f"detector comparison: {nn}",))


def steps():
    """The study, in the order that lets each step reuse the last's runs and caches."""
    return [
        table_step("densenet10", 6450, "--compare-modes"),
        Step(PAPER_PROTOCOL,
             ("code/table.py", "--nn", "densenet10", "--compare-modes"),
             ("results/densenet10.md", "results/densenet10.csv", "results/densenet10_modes.md"),
             14100, ("densenet10",)),
        Step("ODIN table: densenet10, (b) transfer (1,000 tuning images)",
             ("code/table.py", "--nn", "densenet10", "--settings", "transfer"),
             ("results/densenet10_transfer.md", "results/densenet10_transfer.csv"), 2500,
             ("densenet10",), reuses=(PAPER_PROTOCOL,),
             # without it, CIFAR-10's grid beyond the first 200 images too: 800 x 1.1 s
             alone_s=2500 + 880),
        table_step("densenet100", 6450, "--compare-modes"),
        table_step("wideresnet10", 3000, "--compare-modes"),
        table_step("wideresnet100", 3000, "--compare-modes"),
        *(table_step(nn, 410, "--settings", "transfer")
          for nn in ("resnet20", "resnet32", "resnet44", "resnet56")),
        table_step("dice_densenet10", 1639, "--settings", "transfer"),
        table_step("necas_densenet10", 1553, "--settings", "transfer"),
        table_step("dice_densenet100", 1639, "--settings", "transfer"),
        table_step("resnet56_cifar100", 410, "--settings", "transfer"),
        Step("index of the ODIN tables", ("code/table.py", "--index"),
             ("results/README.md",), 5, reads=("ODIN table",)),
        compare_step("densenet10", 10800, "--layerwise"),
        compare_step("necas_densenet10", 794),
        compare_step("dice_densenet10", 794),
        *(compare_step(nn, 300) for nn in ("resnet20", "resnet32", "resnet44", "resnet56")),
        compare_step("densenet10", 4773, "--layerwise", "--max-images", "2000",
                     stem=f"detectors_densenet10_tune{TUNE[1]}_n2000"),
        laood_step("densenet10", 1800),
        laood_step("densenet10", 300, "--gamma-grid", "wide",
                   stem="laood_densenet10_widegamma"),
        laood_step("resnet56", 600),
        Step("your-model example: torchvision ResNet-18 trained here, a PNG folder",
             ("scripts/own_model_example.sh",),
             ("results/detectors_resnet18-*_tune200_sets-fashion_mnist_png-*-TIN_crop-*-iSUN-"
              "Uniform_n2000.md",), 572, family="resnet"),
        Step("FSSD benchmark (LeNets on Fashion-MNIST)", ("code/fssd_table.py",),
             ("results/fssd_fmnist.md", "results/fssd_fmnist.csv"), 2627),
        Step("LA-OOD co-training study: resnet56", ("scripts/cotrain_study.sh",),
             ("results/cotrain_resnet56_tune200_n2000.md",
              "results/cotrain_resnet56_tune200_n2000.csv"), 7040, ("resnet56",)),
        *(Step(f"spread over networks: {group}",
               ("code/spread_table.py", "--group", group),
               (f"results/spread_{group}_tune{TUNE[1]}.md",
                f"figures/spread_{group}_tune{TUNE[1]}.png"), 5,
               reads=("ODIN table", "detector comparison"))
          for group in ("densenet-bc-100", "cifar-resnets")),
    ]


def unavailable(step):
    """Why ``step`` cannot run on this machine, or '' when it can."""
    for nn in step.models:
        try:
            weights_sha256(nn)
            spec = get_spec(nn)
            test_set(spec.in_dataset, spec.image_size)
        except UserError as e:
            return str(e)
    return ""


def stamp_path(step):
    return runs_dir() / "reproduce_all" / f"{step.slug}.json"


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def written(step):
    """{output pattern: [the files matching it, from the repository root]}."""
    return {p: sorted(str(f.relative_to(ROOT)) for f in ROOT.glob(p)) if "*" in p
            else ([p] if (ROOT / p).is_file() else []) for p in step.outputs}


def read_stamp(step):
    try:
        return json.loads(stamp_path(step).read_text())
    except (OSError, ValueError):
        return None


def done(step):
    """The stamp of a finished ``step`` whose every output is still as it wrote it, or None."""
    stamp = read_stamp(step)
    if not stamp or stamp.get("argv") != list(step.argv):
        return None
    recorded = stamp.get("outputs", {})
    for paths in written(step).values():
        if not paths or any(p not in recorded or digest(ROOT / p) != recorded[p]
                            for p in paths):
            return None
    return stamp


def read_times():
    """{step name: its row} of the measured times (results/reproduce_all_times.csv)."""
    try:
        with open(results_dir() / TIMES, newline="") as f:
            return {row["step"]: row for row in csv.DictReader(f)}
    except FileNotFoundError:
        return {}


def record_time(step, seconds, speeds, before):
    """Write ``step``'s measured wall time into the times file (replacing its last one), with
    this machine's speed (its family's forward: calibration, images/s) and the steps that had
    run here before it (whose caches it found)."""
    rows = read_times()
    family = step.speed_family
    rows[step.name] = {"step": step.name, "seconds": f"{seconds:.0f}", "calibration": family,
                       "images_s": f"{speeds[family]:.1f}",
                       "finished": time.strftime("%Y-%m-%d"),
                       "done_here_before": "; ".join(before)}
    order = {s.name: i for i, s in enumerate(steps())}
    text = io.StringIO()
    writer = csv.DictWriter(text, TIME_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(rows.values(), key=lambda r: order.get(r["step"], len(order))))
    files.write_text(results_dir() / TIMES, text.getvalue())


def machine_speed():
    """{family: its network's forward, images/s} (FAMILIES) on this machine."""
    return {family: forward_speed(build) for family, (_, build) in FAMILIES.items()}


def forward_speed(build, seconds=2.0, batch=128):
    """Images/s of ``build()``'s forward (random weights: no file needed), batch ``batch``,
    inference mode, channels last as a CPU run prepares it, after a warm-up batch; batches for
    about ``seconds``. The study's time is these networks' passes, whose speed does not follow
    the matrix multiply's from one CPU to another."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = prepare_model(build().eval(), device)
    x = torch.rand(batch, 3, 32, 32, device=device)
    if device == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        model(x)
        if device == "cuda":
            torch.cuda.synchronize()
        started, count = time.perf_counter(), 0
        while count < 2 or time.perf_counter() - started < seconds:
            model(x)
            if device == "cuda":
                torch.cuda.synchronize()
            count += 1
    return count * batch / (time.perf_counter() - started)


@dataclass
class Plan:
    speeds: dict               # machine_speed() here
    rows: list = field(default_factory=list)    # (step, state, seconds, why)

    @property
    def todo(self):
        return [(s, seconds) for s, state, seconds, _ in self.rows if state == "to run"]


def make_plan(chosen, speeds):
    """Each step: done, skipped (and why) or to run; a done step that reads a step which
    runs now, or which ran after it, runs again."""
    plan, runs_now, finished, measured = Plan(speeds), [], {}, read_times()
    for step in chosen:
        stamp, why = done(step), unavailable(step)
        read = [s for s in runs_now + list(finished) if s.name.startswith(step.reads)] \
            if step.reads else []
        stale = stamp and any(s in runs_now or finished[s] > stamp.get("finished_at", 0)
                              for s in read)
        if stamp and not stale:
            plan.rows.append((step, "done", stamp["seconds"], "measured here"))
            finished[step] = stamp["finished_at"]
        elif why:
            plan.rows.append((step, "skipped", 0.0, why))
        else:
            runs_now.append(step)
            last = read_stamp(step)
            if last and "seconds" in last:
                plan.rows.append((step, "to run", float(last["seconds"]),
                                  "its last run here" + (", and a step it reads runs again"
                                                         if stale else "")))
            elif step.name in measured:
                plan.rows.append((step, "to run", *measured_estimate(measured[step.name],
                                                                     speeds)))
            else:
                plan.rows.append((step, "to run", *reference_estimate(step, runs_now, speeds)))
    return plan


def measured_estimate(row, speeds):
    """(seconds, why): its measured time, scaled from that machine's speed (its family's
    forward) to this one's."""
    family, then = row["calibration"], float(row["images_s"])
    seconds = float(row["seconds"]) * then / speeds[family]
    return seconds, (f"measured {row['finished']} at {FAMILIES[family][0]} {then:.0f} img/s, "
                     "scaled" + ("" if row["done_here_before"] else ", from nothing"))


def reference_estimate(step, runs_now, speeds):
    """(seconds, why): its reference time scaled to this machine's speed; the longer one
    when the steps whose caches it reuses neither run before it nor have run here."""
    seconds, why = step.reference_s, "reference time, scaled"
    if step.alone_s is not None:
        reused = [s for s in steps() if s.name.startswith(step.reuses)]
        if not any(s in runs_now or done(s) for s in reused):
            seconds = step.alone_s
            why += f"; it makes the caches of '{reused[0].name}' too" if reused else ""
    family = step.speed_family
    return seconds * REFERENCE_SPEED[family] / speeds[family], why


def clock(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def print_plan(plan):
    print(f"This machine, forward on {torch.get_num_threads()} thread(s): "
          + ", ".join(f"{FAMILIES[f][0]} {plan.speeds[f]:.0f} img/s (reference "
                      f"{REFERENCE_SPEED[f]:.0f})" for f in FAMILIES) + "; "
          f"{len(plan.rows)} steps:")
    for step, state, seconds, why in plan.rows:
        time_text = clock(seconds) if state != "skipped" else "-"
        print(f"  {state:8} {time_text:>8}  {step.name}"
              + (f"  ({why})" if state != "skipped" else f"\n{'':20}skipped: {why}"))
    total = sum(seconds for _, seconds in plan.todo)
    measured = sum(why.startswith("measured") for _, state, _, why in plan.rows
                   if state == "to run")
    print(f"To run: {len(plan.todo)} steps, about {clock(total)} (h:mm:ss) on this machine "
          f"({measured} of them measured before, the rest by reference estimate).")


def run_step(step, estimate, bar):
    """Run one step as a child process, the bar advancing with its elapsed time up to its
    estimate; returns (seconds, return code)."""
    log = runs_dir() / "reproduce_all" / f"{step.slug}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = ([sys.executable, *step.argv] if step.argv[0].endswith(".py")
               else ["bash", *step.argv])
    started, credited = time.time(), 0.0
    stop = threading.Event()

    def advance():
        nonlocal credited
        while not stop.wait(2.0):
            due = min(time.time() - started, 0.99 * estimate)
            if due > credited:
                bar.update(due - credited)
                credited = due
    ticker = threading.Thread(target=advance, daemon=True)
    with open(log, "w") as out:
        child = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        ticker.start()
        try:
            code = child.wait()
        except KeyboardInterrupt:
            child.terminate()
            child.wait()
            raise
        finally:
            stop.set()
            ticker.join()
    bar.update(estimate - credited)
    return time.time() - started, code


def write_stamp(step, seconds):
    """Stamp a finished step with its outputs' sha256; a UserError, and no stamp, when an
    output it should have written is not there."""
    outputs = written(step)
    missing = [p for p, paths in outputs.items() if not paths]
    if missing:
        raise UserError(f"step '{step.name}' ended without writing {', '.join(missing)}")
    stamp = {"argv": list(step.argv), "seconds": round(seconds, 1), "finished_at": time.time(),
             "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
             "outputs": {p: digest(ROOT / p) for paths in outputs.values() for p in paths}}
    files.write_text(stamp_path(step), json.dumps(stamp, indent=1))


def steps_here_before(step):
    """The steps whose caches ``step`` finds on this machine: those done here, and itself
    when it ran here before (stopped, failed, or its outputs changed since)."""
    earlier = [s.name for s in steps() if s.name != step.name and done(s)]
    log = runs_dir() / "reproduce_all" / f"{step.slug}.log"
    return earlier + ([f"{step.name} (an earlier run of it)"] if log.exists() else [])


def run_plan(plan):
    """Run the steps to run, in order; a failed step is reported at the end and the others
    go on (a step reading its results then uses what is there)."""
    todo = plan.todo
    total = sum(seconds for _, seconds in todo)
    started, failed = time.time(), []
    with tqdm(total=total, unit="s", desc="reproduce_all", dynamic_ncols=True,
              bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} estimated s "
                         "[{elapsed}<{remaining}]") as bar:
        for step, estimate in todo:
            bar.set_postfix_str(step.name)
            before = steps_here_before(step)
            seconds, code = run_step(step, estimate, bar)
            log = runs_dir() / "reproduce_all" / f"{step.slug}.log"
            try:
                if code != 0:
                    tail = log.read_text().strip().splitlines()[-5:]
                    raise UserError(f"step '{step.name}' failed (exit {code}; its output: "
                                    f"{shown(log)}):\n" + "\n".join(tail))
                write_stamp(step, seconds)
                record_time(step, seconds, plan.speeds, before)
            except UserError as e:
                failed.append(str(e))
                bar.write(f"error: {e}")
    print(f"reproduce_all: {len(todo) - len(failed)} of {len(todo)} steps in "
          f"{clock(time.time() - started)}")
    if failed:
        raise UserError(f"{len(failed)} step(s) failed:\n" + "\n".join(failed)
                        + "\nRun the command again: finished steps are kept.")


def build_parser():
    parser = argparse.ArgumentParser(description=cli.description(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="print the plan only")
    parser.add_argument("--only", metavar="TEXT",
                        help="only the steps whose name holds TEXT (case-insensitive); the "
                             "one step whose whole name it is, where there is one")
    return parser


def chosen_steps(only):
    """The steps ``--only`` names: the one whose whole name it is, else every one holding it
    ('ODIN table: densenet10' is one step, not also the two longer densenet10 tables)."""
    every = steps()
    if not only:
        return every
    exact = [s for s in every if s.name.lower() == only.lower()]
    return exact or [s for s in every if only.lower() in s.name.lower()]


def busy():
    """The 1-minute load average where other work shares the CPU (more than half a core
    beyond nothing), else 0.0; the calibration measures whatever share of it is left."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return load if load > 0.5 else 0.0


def report(args):
    chosen = chosen_steps(args.only)
    if not chosen:
        raise UserError(f"--only {args.only!r}: no step's name holds it; the steps: "
                        + "; ".join(s.name for s in steps()))
    load = busy()
    plan = make_plan(chosen, machine_speed())
    print_plan(plan)
    if load:
        print(f"Note: this machine was busy while it measured its speed (load average {load:.1f} "
              f"on {os.cpu_count()} cores): the estimates are too long by as much.")
    if not args.dry_run:
        run_plan(plan)


def main(argv=None):
    args = build_parser().parse_args(argv)
    return report_errors(lambda: report(args))
