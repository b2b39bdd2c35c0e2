"""Why compare.py --layerwise chose what it chose: from the held-out layer scores (cached by
the --layerwise run in runs/.cache; computed here if missing, the same cost):

1. for each validation set, the TNR at 95% TPR on the selection half of the regression
   fitted at each magnitude of the detector's grid (the numbers Lee et al.'s rule picks the
   magnitude from: the first best in grid order);
2. with --magnitude, the median layer score of each set and the TIN val regression's
   weights and median P(in) per set (what the "TIN val" row applies to every set).

    python scripts/layerwise_diagnostics.py --nn densenet10 --method mahalanobis_full
    python scripts/layerwise_diagnostics.py --nn densenet10 --method fssd --magnitude 0.0008 \
        --sets iSUN,Uniform,Gaussian
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "code"))

import numpy as np  # noqa: E402

from oodbench.commands import cli  # noqa: E402
from oodbench.core.paths import UserError, report_errors  # noqa: E402
from oodbench.datasets.image_sets import cifar, ood_dataset  # noqa: E402
from oodbench.detectors import layer_ensemble  # noqa: E402
from oodbench.pipelines import layerwise_runs as lw  # noqa: E402


def held_out_scores(scorer, method, sets, seed, magnitudes):
    """{set: {magnitude: [1000, layers] scores}} of the in-distribution set, TIN_val and
    ``sets``: the held-out images the validation uses."""
    in_set = cifar(scorer.spec.in_dataset)
    tested, why_not = lw.tested_sets(in_set, sets, seed, lw.VALIDATION, None)
    if why_not:
        raise UserError("; ".join(f"{name}: {reason}" for name, reason in why_not.items()))
    ranges = {scorer.spec.in_dataset: lw.ImageRange(scorer.spec.in_dataset, in_set,
                                                    range(lw.VALIDATION)),
              lw.VALIDATION_SET: lw.ImageRange(lw.VALIDATION_SET, ood_dataset(lw.VALIDATION_SET),
                                               range(lw.VALIDATION)),
              **{name: t.held_out for name, t in tested.items()}}
    return {name: scorer.layer_scores(method, images, magnitudes)
            for name, images in ranges.items()}


def selection_tnrs(scores, in_name, grid):
    """Per validation set, the selection-half TNR (%) of each magnitude's regression."""
    fit = lw.FIT
    print(f"TNR at 95% TPR (%) on the selection half, regression fitted per magnitude "
          f"(grid order): {', '.join(map(str, grid))}")
    held_in = scores[in_name]
    for name, held_out in scores.items():
        if name == in_name:
            continue
        tnrs = [100 * layer_ensemble.tnr_at_95(
            layer_ensemble.fit(held_in[m][:fit], held_out[m][:fit]),
            held_in[m][fit:], held_out[m][fit:]) for m in grid]
        print(f"  {name:12s} " + "  ".join(f"{m}: {t:.1f}" for m, t in zip(grid, tnrs)))


def at_magnitude(scores, in_name, magnitude, layers):
    """Median layer scores per set; the TIN val regression's weights and median P(in)."""
    fit = lw.FIT
    in_scores, tin_scores = scores[in_name][magnitude], scores[lw.VALIDATION_SET][magnitude]
    regression = layer_ensemble.fit(in_scores[:fit], tin_scores[:fit])
    print(f"\nAt magnitude {magnitude}: median layer score per set ({', '.join(layers)}); "
          f"TIN val regression weights {np.round(regression.coef_[0], 3).tolist()}, "
          f"intercept {regression.intercept_[0]:.3f}")
    for name, by_magnitude in scores.items():
        values = by_magnitude[magnitude]
        p_in = np.median(layer_ensemble.score(regression, values[fit:]))
        print(f"  {name:12s} " + "  ".join(f"{v:9.3f}" for v in np.median(values, axis=0))
              + f"   median P(in) {p_in:.3f} (selection half)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_model_flag(parser)
    parser.add_argument("--method", choices=sorted(lw.DETECTORS), default="mahalanobis_full")
    parser.add_argument("--sets", default="iSUN,TIN_crop,TIN_resize", metavar="A,B",
                        help="tested OOD sets whose held-out images to use (default %(default)s)")
    parser.add_argument("--magnitude", type=float,
                        help="also the layer scores and the TIN val regression at this value "
                             "of the grid")
    cli.add_seed_flag(parser)
    cli.add_device_flags(parser)
    args = parser.parse_args(argv)

    def run():
        cli.resolve_model(args)
        grid = lw.DETECTORS[args.method][1]
        if args.magnitude is not None and args.magnitude not in grid:
            raise UserError(f"--magnitude {args.magnitude} is not in {args.method}'s grid: "
                            f"{', '.join(map(str, grid))}")
        scorer = lw.LayerwiseScorer(args.nn, cli.scoring_options(args))
        sets = [name.strip() for name in args.sets.split(",") if name.strip()]
        scores = held_out_scores(scorer, args.method, sets, args.seed, grid)
        selection_tnrs(scores, scorer.spec.in_dataset, grid)
        if args.magnitude is not None:
            at_magnitude(scores, scorer.spec.in_dataset, args.magnitude,
                         [f.name for f in scorer.spec.feature_layers])
    return report_errors(run)


if __name__ == "__main__":
    sys.exit(main())
