"""One run of ODIN or another detector, and its metric block (layer 6: the main.py command).

ODIN: out-of-distribution detection by temperature scaling and input perturbation.

Scores the in-distribution test set (CIFAR-10 or CIFAR-100, by the model) and
an OOD set with the baseline (max softmax) and ODIN, writes the release's four
score files into a per-run folder, and prints the release's metric block.
As in the release, the first --skip (1,000) images of each set are held out
(for tuning) and both sides use the same number of images.

--method scores the same images with another detector instead (energy, knn, vim, ...;
see --help): its score files are confidence_<Method>_{In,Out}.txt, read by calMetric.py
like ODIN's. Detectors fitted on training statistics read the training set's features,
computed once per model and cached.

    python main.py --nn densenet10 --out_dataset iSUN --magnitude 0.0014 --temperature 1000 --gpu 0
    python main.py --nn densenet10 --out_dataset iSUN --method knn --k 50
"""
import argparse
from pathlib import Path

from oodbench.commands import cli
from oodbench.core import runtime, scorefiles
from oodbench.core.paths import report_errors, shown
from oodbench.networks.registry import get_spec
from oodbench.pipelines import feature_runs, runs
from oodbench.reports import metric_block


def build_parser():
    parser = argparse.ArgumentParser(
        description=cli.description(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_model_flag(parser)
    cli.add_set_flag(parser, "Imagenet")
    cli.add_method_flags(parser)
    cli.add_device_flags(parser)
    cli.add_seed_flag(parser)
    cli.add_evaluation_flags(parser)
    parser.add_argument("--out-dir", type=Path,
                        help="run folder for the score files (default: runs/<settings>); one "
                             "run per folder")
    parser.add_argument("--force", action="store_true",
                        help="replace the run a folder holds when it is another run (different "
                             "settings); without it such a folder is refused")
    parser.add_argument("--accuracy-only", action="store_true",
                        help="only report the classifier's accuracy on the whole "
                             "in-distribution test set, then stop")
    return parser


def run(args):
    cli.resolve_model(args)
    settings = cli.run_settings(args)
    options = cli.scoring_options(args)
    runtime.configure_allocator()
    if args.accuracy_only:
        correct, total = runs.test_set_accuracy(settings.nn, options)
        in_dataset = get_spec(settings.nn).in_dataset
        print(f"{settings.nn} accuracy on all {total} {in_dataset} test images: "
              f"{100 * correct / total:.2f}%")
        return
    plan = runs.plan(settings, args.out_dir, args.force)
    if settings.method == "odin":
        model, compiled = runs.load_scorer(settings.nn, options, 2 * len(plan.indices))
        info = runs.score(model, compiled, plan, options)
    else:
        info = feature_runs.FeatureScorer(settings.nn, options).score(plan)
    scorefiles.settled(plan.folder, settings.folder_name())   # (an identical run at once)
    result = metric_block.run_metrics(plan.folder, args.metrics, plan.spec.num_classes)
    print(metric_block.metric_block(result, plan.spec.label, plan.spec.in_dataset,
                                    plan.ood_set.label))
    accuracy = (f"{100 * info['accuracy']:.2f}%" if info["accuracy"] is not None else
                "not known (the images have no labels)")
    print(f"\nClassifier accuracy on the {len(plan.indices)} {plan.spec.in_dataset} images scored: "
          f"{accuracy}")
    print(f"Metrics: {args.metrics}. Scores in {shown(plan.folder / scorefiles.SCORE_DIR)} "
          f"({info['seconds']:.0f} s of scoring).")
    note = metric_block.few_images_note(plan.folder)
    if note:
        print(note)


def main(argv=None):
    args = build_parser().parse_args(argv)
    return report_errors(lambda: run(args))
