"""What LA-OOD's co-training buys (layer 6: the cotrain_table.py command).

One network before and after co-training (cotrain.py), one column per co-training run (a
lambda, its last or --epoch checkpoint): the test accuracy, and AUROC / FPR95 per OOD set of
LA-OOD and of the other detectors (default: ODIN, Energy, KNN, Mahalanobis, and the MSP
baseline), each network evaluated exactly as compare.py evaluates a model: its own feature
pass, LA-OOD's One-Class SVMs refitted on its own features, ODIN's (T, eps) tuned on its own
held-out images; every value with its 95% bootstrap interval, every change from the base
network with a paired test (reports/uncertainty.py). Writes
results/cotrain_<model>[_n<N>...].md, .csv and _pairs.csv and
figures/cotrain_<model>[...].png.

    python cotrain_table.py --nn resnet56 --runs models/cotrained/resnet56_lambda0 \\
        models/cotrained/resnet56_lambda0.001 models/cotrained/resnet56_lambda0.01
"""
import argparse
import json
import shlex
import time
from pathlib import Path

import numpy as np

from oodbench.commands import cli, compare, table
from oodbench.core import files
from oodbench.core.paths import UserError, figures_dir, report_errors, results_dir, shown
from oodbench.datasets.image_sets import get_ood_set
from oodbench.detectors.laood import LAOOD
from oodbench.networks.registry import get_spec, weights_sha256
from oodbench.pipelines import laood_runs, runs
from oodbench.reports import cotrain_report, metric_block, uncertainty
from oodbench.reports.cotrain_report import Network
from oodbench.scoring.metrics import exact_metrics

METHODS = "energy,knn,mahalanobis"
SETS = ("iSUN", "TIN_crop", "TIN_resize", "TIN_lanczos", "MNIST", "FashionMNIST")


def build_parser():
    parser = argparse.ArgumentParser(description=cli.description(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_model_flag(parser)
    parser.add_argument("--runs", nargs="+", type=Path, required=True, metavar="DIR",
                        help="co-training folders of this model (cotrain.py --out)")
    parser.add_argument("--epoch", type=cli.integer(1),
                        help="the checkpoint of each run (default: its last epoch's); a run "
                             "still going serves the epochs it has finished")
    parser.add_argument("--methods", default=METHODS,
                        help=f"detectors beside the baseline, ODIN and LA-OOD (default "
                             f"{METHODS}); LA-OOD is fitted as the co-training's runs were "
                             "(their --subsample and --gamma-grid)")
    parser.add_argument("--sets", nargs="+", metavar="SET", default=list(SETS),
                        help="the OOD sets (default " + " ".join(SETS) + ": the noise sets "
                             "are at 100%% AUROC for nearly every detector here)")
    parser.add_argument("--skip", type=cli.integer(0), default=runs.HELD_OUT,
                        help=f"images held out at the start of each set (default "
                             f"{runs.HELD_OUT})")
    parser.add_argument("--max-images", type=cli.integer(1),
                        help="at most this many images a side")
    cli.add_tuning_flags(parser)
    cli.add_device_flags(parser)
    cli.add_seed_flag(parser)
    cli.add_interval_flags(parser)
    return parser


def read_run(folder, epoch):
    """(the run's log lines, the checkpoint's record) of a co-training folder."""
    log = folder / "log.jsonl"
    if not log.is_file():
        raise UserError(f"{folder}: not a co-training folder (no log.jsonl)")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    record = folder / f"epoch{epoch or lines[0]['recipe']['epochs']}.json"
    if not record.is_file():
        unfinished = (f": its co-training has not finished; rerun its command: "
                      f"{lines[0]['command']}" if (folder / "partial.pt").exists() else "")
        raise UserError(f"{folder}: no checkpoint {record.stem}{unfinished}")
    return lines, json.loads(record.read_text())


def weights_here(record, folder):
    """The checkpoint's model flags with --weights at ``folder``'s copy of its file, so a
    co-training folder moved or cloned elsewhere (its record holds the path it was written
    to) still names its own checkpoint."""
    flags = list(record["model_flags"])
    flags[flags.index("--weights") + 1] = str(Path(folder).resolve() / record["file"])
    return flags


def passed_flags(args):
    """The flags every network's comparison takes."""
    flags = ["--methods", args.methods, "--sets", *args.sets, "--skip", str(args.skip),
             "--tune-images", str(args.tune_images), "--seed", str(args.seed),
             "--gpu", str(args.gpu)]
    flags += ["--batch-size", str(args.batch_size)]
    if args.device:
        flags += ["--device", args.device]
    if args.max_images:
        flags += ["--max-images", str(args.max_images)]
    return flags


def networks_of(args):
    """([(Network, model flags)]: the base, then each run's checkpoint; the runs' recipe);
    every run checked to start from the base's weights, before any work."""
    base_name = cli.resolve_model(args)
    base_sha = weights_sha256(base_name)
    runs, base_accuracy, recipes = [], None, []
    for folder in args.runs:
        lines, record = read_run(folder, args.epoch)
        recipe = record["recipe"]
        if recipe["base_sha256"] != base_sha:
            raise UserError(f"{folder} was co-trained from {recipe['base']} (weights "
                            f"{recipe['base_sha256'][:12]}), not from {base_name} "
                            f"({base_sha[:12]})")
        base_accuracy = lines[0]["test_accuracy"]
        recipes.append(recipe)
        trained = [line for line in lines[1:] if line["epoch"] <= record["epoch"]]
        seconds = [line["seconds"] for line in trained]
        runs.append((Network(shown(folder.resolve()), f"lambda {recipe['lam']:g}", recipe["lam"],
                             record["epoch"], record["sha256"], record["test_accuracy"],
                             float(np.mean(seconds)) if seconds else None,
                             tuple(line["svm"] for line in trained)),
                     weights_here(record, folder)))
    lams = [n.lam for n, _ in runs]
    if len(set(lams)) < len(lams):
        raise UserError("--runs: two runs of the same lambda; give one of each")
    fitted = {(r["subsample"], r["gamma_grid"]) for r in recipes}
    if len(fitted) > 1:
        raise UserError("--runs: the runs fitted LA-OOD differently (--subsample, "
                        f"--gamma-grid: {sorted(fitted)}); compare runs of one fit")
    base = Network(base_name, "before", None, 0, base_sha, base_accuracy, None)
    return [(base, shlex.split(cli.model_flags(base_name)))] + sorted(
        runs, key=lambda r: r[0].lam), recipes[0]


def laood_metrics(args, recipe):
    """({(set, 'LA-OOD'): metrics}, {(set, 'LA-OOD'): (in scores, OOD scores)}) of the
    network ``args`` gives, LA-OOD's One-Class SVMs fitted on its own features with the
    co-training's subsample and gamma grid."""
    options = cli.scoring_options(args)
    _, results, _, _ = laood_runs.evaluate(args.nn, options, args.sets, recipe["subsample"],
                                           args.seed, skip=args.skip,
                                           max_images=args.max_images,
                                           gamma_grid=recipe["gamma_grid"])
    found, scores = {}, {}
    for name, result in results.items():
        ins, outs, _, _ = result.laood()
        found[name, LAOOD.label] = exact_metrics(ins, outs)
        scores[name, LAOOD.label] = (ins, outs)
    return found, scores


def evaluate(networks, flags, recipe):
    """{(network name, set, detector label): metrics}, the detector rows, the sets that ran,
    the notes, and {(network name, set, detector label): (in scores, OOD scores)}: each
    network through compare.py's comparison (and LA-OOD's own run)."""
    metrics, rows, ran, notes, scores = {}, None, {}, [], {}
    for network, model_flags in networks:
        args = compare.build_parser().parse_args(model_flags + flags)
        found = compare.comparison(args)
        laood_found, laood_scores = laood_metrics(args, recipe)
        cell_scores = metric_block.cell_scores(found.sources) | laood_scores
        rows = found.rows + [LAOOD.label]
        for (name, row), m in (found.metrics | laood_found).items():
            metrics[network.name, name, row] = m
            scores[network.name, name, row] = cell_scores[name, row]
            ran[name] = get_ood_set(name).label
        notes.append(f"- {network.column} ({args.nn}): ODIN's (T, eps): " + "; ".join(
            f"{get_ood_set(s).label} {by}" for s, by in found.odin_settings.items() if by)
            + ".")
        notes += [f"- {network.column}: {get_ood_set(s).label} not run: {r}"
                  for s, r in found.why_not.items()]
    return metrics, rows, list(ran.items()), notes, scores


def assess(nets, rows, sets, scores, args):
    """{detector label: uncertainty.Assessment} of each detector: its sets as columns, the
    networks as rows (the same images under every network, so the pairs are paired)."""
    return {row: uncertainty.assess({(s, n.name): scores[n.name, s, row] for n in nets
                                     for s, _ in sets if (n.name, s, row) in scores},
                                    [s for s, _ in sets], [n.name for n in nets],
                                    args.resamples, args.bootstrap_seed)
            for row in rows}


def study_name(args):
    suffix = table.tuning_suffix(args) + (
        "" if args.sets == list(SETS) else "_sets-" + "-".join(args.sets)) + (
        runs.range_suffix(args.skip, args.max_images)) + (
        f"_epoch{args.epoch}" if args.epoch else "")
    return f"cotrain_{args.nn}{suffix}"


def report(args):
    started = time.time()
    networks, recipe = networks_of(args)
    compare.parse_methods(args.methods)
    for name in args.sets:
        get_ood_set(name)
    spec = get_spec(args.nn)
    args.metrics = "exact"
    metrics, rows, sets, notes, scores = evaluate(networks, passed_flags(args), recipe)
    if not sets:
        raise UserError("no OOD set could be scored")
    nets = [n for n, _ in networks]
    assessments = assess(nets, rows, sets, scores, args)
    name = study_name(args)
    images = (f"at most {args.max_images} images a side" if args.max_images else
              "every image")
    title = (f"LA-OOD's co-training on {args.nn} ({spec.label}, {spec.in_dataset}): each "
             f"network evaluated as compare.py does (its own feature pass, LA-OOD refitted on "
             f"its features, ODIN tuned on its first {args.tune_images} held-out images a "
             f"side); images from index {args.skip} of each set, {images}.")
    text = cotrain_report.markdown(title, nets, rows, sets, assessments,
                                   ["Notes:"] + notes + [
                                       "- Checkpoints: " + "; ".join(
                                           f"{n.column}: {n.name}, epoch {n.epoch}"
                                           for n in nets[1:]) + "."])
    results_dir().mkdir(parents=True, exist_ok=True)
    files.write_text(results_dir() / f"{name}.md", text)
    cotrain_report.write_csv(results_dir() / f"{name}.csv", nets, rows, sets, metrics,
                             assessments)
    cotrain_report.write_pairs_csv(results_dir() / f"{name}_pairs.csv", assessments)
    picture = cotrain_report.figure(figures_dir() / f"{name}.png",
                                    f"{args.nn}: AUROC before and after co-training",
                                    nets, rows, sets, metrics)
    print(text)
    print(f"wall {time.time() - started:.0f} s. Written: {shown(results_dir() / name)}.md "
          f"(and .csv, _pairs.csv), {shown(picture)}")


def main(argv=None):
    args = build_parser().parse_args(argv)
    return report_errors(lambda: report(args))
