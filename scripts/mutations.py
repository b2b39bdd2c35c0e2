"""Does the test suite catch real bugs? Apply each deliberate mutation to code/ alone, run
the whole suite, print which tests fail, restore the file. Every mutation must fail a test.

    python scripts/mutations.py          # all (a few minutes each on a 2-core CPU)
    python scripts/mutations.py 0 5      # just these, by index
    TESTS="tests/test_detectors.py tests/test_features.py" python scripts/mutations.py 12 13
                                         # against part of the suite only (quicker)

Run it from a clean checkout: it edits code/ in place (and restores it, even on Ctrl-C).
"""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTATIONS = [
    ("reverse the perturbation", "code/oodbench/scoring/odin_scoring.py",
     "perturbed = inputs.detach() - epsilon * (sign / std)",
     "perturbed = inputs.detach() + epsilon * (sign / std)"),
    ("reverse the perturbation in the tuning grid", "code/oodbench/pipelines/tuning.py",
     "model(inputs.detach() - epsilon * step)", "model(inputs.detach() + epsilon * step)"),
    ("drop the division by std", "code/oodbench/scoring/odin_scoring.py",
     "perturbed = inputs.detach() - epsilon * (sign / std)",
     "perturbed = inputs.detach() - epsilon * sign"),
    ("drop T from the loss", "code/oodbench/scoring/odin_scoring.py",
     "F.cross_entropy(logits / temperature, predictions", "F.cross_entropy(logits, predictions"),
    ("swap the In and Out files", "code/oodbench/scoring/odin_scoring.py",
     '("Base", "In"): in_scores.baseline, ("Base", "Out"): out_scores.baseline,\n'
     '        ("Our", "In"): in_scores.odin, ("Our", "Out"): out_scores.odin',
     '("Base", "In"): out_scores.baseline, ("Base", "Out"): in_scores.baseline,\n'
     '        ("Our", "In"): out_scores.odin, ("Our", "Out"): in_scores.odin'),
    ("FPR at 95% TPR -> 90%", "code/oodbench/scoring/metrics.py",
     "TPR_LEVEL = 0.95", "TPR_LEVEL = 0.90"),
    ("shift the held-out split by one (plan)", "code/oodbench/pipelines/runs.py",
     "range(skip, stop)", "range(skip + 1, stop)"),
    ("shift the held-out split by one (images scored)", "code/oodbench/pipelines/runs.py",
     "score_images(model, plan.ood, plan.indices,",
     "score_images(model, plan.ood, range(plan.indices.start + 1, plan.indices.stop + 1),"),
    ("shift the held-out split by one (tuning)", "code/oodbench/pipelines/tuning.py",
     "held_out = range(self.count)", "held_out = range(1, self.count + 1)"),
    ("grid key without the images", "code/oodbench/pipelines/tuning.py",
     "images=content_digest(dataset, held_out)", "images=name"),
    ("score key without the images", "code/oodbench/pipelines/runs.py",
     "images=content_digest(plan.ind)", "images=plan.spec.in_dataset"),
    ("a layer reaching up", "code/oodbench/pipelines/runs.py",
     "from oodbench.scoring import cache, odin_scoring\n",
     "from oodbench.scoring import cache, odin_scoring\n"
     "from oodbench.reports import figures  # noqa: F401\n"),
    # the detectors and the feature pass (issue 12)
    ("KNN: distance as the score", "code/oodbench/detectors/knn.py",
     "return -kth_nearest_distance(", "return kth_nearest_distance("),
    ("KNN: features not normalised", "code/oodbench/detectors/knn.py",
     "self.bank = normalised(train.penultimate.astype(np.float32))",
     "self.bank = train.penultimate.astype(np.float32)"),
    ("Mahalanobis: farthest class", "code/oodbench/detectors/mahalanobis.py",
     "return -np.min(self.class_distances(features), axis=1)",
     "return -np.max(self.class_distances(features), axis=1)"),
    ("RMD: no background", "code/oodbench/detectors/relative_mahalanobis.py",
     "return -np.min(self.class_distances(features) - background, axis=1)",
     "return -np.min(self.class_distances(features), axis=1)"),
    ("ReAct: clip from below", "code/oodbench/detectors/react.py",
     "np.minimum(features.penultimate, self.threshold)",
     "np.maximum(features.penultimate, self.threshold)"),
    ("ViM: principal space instead of its complement", "code/oodbench/detectors/vim.py",
     "np.argsort(-eigenvalues)[dim:]", "np.argsort(eigenvalues)[dim:]"),
    ("ASH: scale inverted", "code/oodbench/detectors/ash.py",
     "s1, s2 = a.sum(axis=1), pruned.sum(axis=1)", "s1, s2 = pruned.sum(axis=1), a.sum(axis=1)"),
    ("GEN: smallest M probabilities", "code/oodbench/detectors/gen.py", "[:, -top:]", "[:, :top]"),
    ("Energy: T dropped", "code/oodbench/detectors/energy.py",
     "temperature * logsumexp(logits.astype(float) / temperature, axis=1)",
     "logsumexp(logits.astype(float), axis=1)"),
    ("ResNet stem feature without its ReLU", "code/oodbench/networks/registry.py",
     'FeatureLayer("stem", "bn1", relu=True)', 'FeatureLayer("stem", "bn1")'),
    ("feature key without the layers", "code/oodbench/scoring/features.py",
     "layers=[(f.name, f.module, f.relu) for f in spec.feature_layers],", "layers=[],"),
    ("a smaller range replaces a larger entry", "code/oodbench/scoring/cache.py",
     "if entry is None or _rows(arrays) >= _rows(entry[1]):", "if True:"),
    # the FSSD suite (issue 9)
    ("Mahalanobis in full: step away from the class", "code/oodbench/detectors/mahalanobis_full.py",
     "return -torch.where(gradient >= 0, 1.0, -1.0) / std",
     "return torch.where(gradient >= 0, 1.0, -1.0) / std"),
    ("Mahalanobis in full: sign(0) = 0", "code/oodbench/detectors/mahalanobis_full.py",
     "return -torch.where(gradient >= 0, 1.0, -1.0) / std", "return -torch.sign(gradient) / std"),
    ("FSSD: gradient not centred", "code/oodbench/detectors/fssd.py",
     "return (gradient - gradient.mean()) / gradient.std() / std",
     "return gradient / gradient.std() / std"),
    ("FSSD: step away from the singularity", "code/oodbench/detectors/fssd.py",
     "return -self.layer_score(layer, output).sum()",
     "return self.layer_score(layer, output).sum()"),
    ("Deep Ensemble: MSP of the mean softmax", "code/oodbench/detectors/deep_ensemble.py",
     "return torch.stack([max_softmax(model, inputs) for model in models]).mean(dim=0)",
     "return torch.stack([F.softmax(m(inputs), 1) for m in models]).mean(0).max(1).values"),
    ("FSSD split: another seed", "code/oodbench/pipelines/fssd_protocol.py",
     "RandomState(SPLIT_SEED).permutation(count)",
     "RandomState(SPLIT_SEED + 1).permutation(count)"),
    ("no-OOD variant tuned on the OOD set", "code/oodbench/pipelines/fssd_protocol.py",
     "part == \"test\" else", "part != \"none\" else"),
    ("FPR at 80% TPR -> 95%", "code/oodbench/scoring/metrics.py",
     '"FPR at TPR 80%": fpr_at_tpr(in_scores, out_scores, 0.8)}',
     '"FPR at TPR 80%": fpr_at_tpr(in_scores, out_scores, 0.95)}'),
    ("OE loss: lambda dropped", "code/oodbench/commands/train.py",
     "return F.cross_entropy(in_logits, labels) + oe_lambda * to_uniform",
     "return F.cross_entropy(in_logits, labels) + to_uniform"),
    ("train: optimiser state not resumed", "code/oodbench/commands/train.py",
     '    optimiser.load_state_dict(saved["optimiser"])\n', ""),
    ("outliers: test-set duplicates kept", "code/oodbench/datasets/greysets.py",
     "return outliers[kept]", "return outliers"),
    # Mahalanobis in full and FSSD on CIFAR networks (compare.py --layerwise)
    ("layerwise: TIN val rows validated on the tested set",
     "code/oodbench/pipelines/layerwise_runs.py",
     'held_out = own if row.validation == "ood" else tin', "held_out = own"),
    ("FSSD: the loss a mean per chunk", "code/oodbench/detectors/fssd.py",
     "return -self.layer_score(layer, output).sum()",
     "return -self.layer_score(layer, output).mean()"),
    ("LayerMaps: the whole network always runs", "code/oodbench/scoring/features.py",
     "                    raise _Reached\n", "                    pass\n"),
    ("torchrun: the ranks' shards joined in reverse order", "code/oodbench/core/shards.py",
     "return join_parts([value for _, (_, value) in gathered if value is not None])",
     "return join_parts([value for _, (_, value) in gathered if value is not None][::-1])"),
    ("torchrun: a rank scores every image, not its shard", "code/oodbench/core/shards.py",
     "    mine = shard(indices, align=align)\n", "    mine = indices\n"),
    ("torchrun: every rank writes cache entries", "code/oodbench/scoring/cache.py",
     "@by_leader\ndef _save_arrays(", "def _save_arrays("),
    ("a comparison on fewer images replaces the whole table", "code/oodbench/commands/compare.py",
     'f"detectors_{args.nn}{runs.range_suffix(args.skip, args.max_images)}"',
     'f"detectors_{args.nn}"'),
    ("a model from files: the channels of the default mean reversed",
     "code/oodbench/networks/from_files.py",
     'mean = IMAGENET_MEAN if mean is None', 'mean = IMAGENET_MEAN[::-1] if mean is None'),
    ("a model from files: the akamaster classifier not renamed", "code/oodbench/networks/from_files.py",
     '(("linear.", "fc."),), RESNET_LAYERS)', '(), RESNET_LAYERS)'),
    ("sets from files: resized without the centre crop", "code/oodbench/datasets/from_files.py",
     "return CenterCrop(size)(Resize(size)(image))", "return Resize((size, size))(image)"),
    ("sets from files: the digest leaves out the files' bytes",
     "code/oodbench/datasets/from_files.py",
     "h.update(hashlib.sha256(self.files[i].read_bytes()).digest())", "pass"),
    ("the penultimate feature: the first nn.Linear, not the last",
     "code/oodbench/networks/from_files.py", "            found = name\n",
     "            found = found or name\n"),
    ("co-training: the OCSVM kernel's exponent sign flipped", "code/oodbench/losses/ocsvm.py",
     "torch.exp(-self.gamma", "torch.exp(self.gamma"),
    ("co-training: the OCSVM term raised for the training images' opposite",
     "code/oodbench/pipelines/cotraining.py", "loss = ce - (lam * term)",
     "loss = ce + (lam * term)"),
    ("co-training: the feature statistics' batches combined without their means' spread",
     "code/oodbench/pipelines/cotraining.py", "delta ** 2 * self.count * n / total", "0"),
    ("co-training: no horizontal flip", "code/oodbench/pipelines/cotraining.py",
     "images.flip(-1), images)", "images, images)"),
    ("co-training: a resumed run's momentum lost", "code/oodbench/pipelines/cotraining.py",
     '        optimiser.load_state_dict(saved["optimiser"])\n', ""),
]


def main(only):
    uncaught = []
    for i, (name, relative, old, new) in enumerate(MUTATIONS):
        if only and str(i) not in only:
            continue
        path = ROOT / relative
        text = path.read_text()
        assert text.count(old) == 1, f"{name}: the code to mutate is not in {relative} once"
        path.write_text(text.replace(old, new))
        try:
            done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rf", "-p",
                                   "no:cacheprovider", *os.environ.get("TESTS", "tests").split()],
                                  cwd=ROOT,
                                  capture_output=True, text=True)
        finally:
            path.write_text(text)
        failed = [line.split(" - ")[0].replace("FAILED ", "")
                  for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
        print(f"{i:2}  {name}: {done.stdout.strip().splitlines()[-1]}", flush=True)
        for test in failed:
            print(f"      {test}")
        if not failed:
            uncaught.append(name)
    print("every mutation was caught" if not uncaught else f"NOT CAUGHT: {uncaught}")
    return 1 if uncaught else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
