"""Your model, your data: a model from files (--arch/--weights, --model .pt2) and image sets
from files (folder:, npz:) on every command's path, the Python entry, and the errors of
misuse. The byte-identity tests read the real weights and sets (../shared); the rest build
their model and images in the test."""
import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from oodbench import api
from oodbench.commands import compare, main
from oodbench.core import scorefiles
from oodbench.core.paths import UserError, results_dir, runs_dir
from oodbench.datasets import from_files as file_sets
from oodbench.datasets.image_sets import cifar
from oodbench.networks import from_files, registry
from oodbench.networks.registry import ODIN_MEAN, ODIN_STD

FEATURE_METHODS = ["msp", "energy", "maxlogit", "gen", "mahalanobis", "rmd", "knn", "react",
                   "vim", "ash", "laood"]
CPU = ["--gpu", "-1", "--compile", "off"]


def floats(values):
    return ",".join(repr(float(v)) for v in values)


def score_files(folder):
    return {p.name: p.read_bytes() for p in (folder / "softmax_scores").iterdir()}


def only_run(root):
    (folder,) = [p for p in root.iterdir() if not p.name.startswith(".")]
    return folder


@pytest.fixture(scope="module")
def cifar_train_npz(tmp_path_factory):
    """The first 600 CIFAR-10 training images and labels, as a user's npz."""
    path = tmp_path_factory.mktemp("train") / "cifar_train600.npz"
    train = cifar("CIFAR-10", train=True)
    images = (train.images[:600].permute(0, 2, 3, 1).numpy() if hasattr(train, "images")
              else train.data[:600])
    np.savez(path, images=images, labels=np.asarray(train.labels[:600]))
    return path


def run_in(tmp_path, name, argv, monkeypatch):
    """main.py with ``argv`` into a runs/ (and cache) of its own: {file: bytes} of the run."""
    monkeypatch.setenv("ODIN_RUNS_DIR", str(tmp_path / name))
    assert main.main(argv) == 0
    return score_files(only_run(tmp_path / name))


@pytest.mark.parametrize("method", ["odin", *FEATURE_METHODS])
def test_arch_and_weights_give_the_registry_run_byte_for_byte(
        installed, method, cifar_train_npz, tmp_path, monkeypatch):
    """Item 5: --arch resnet20 --weights <the akamaster file> is --nn resnet20, every score
    file byte for byte, each computed in a cache of its own."""
    weights = registry.get_spec("resnet20").path
    common = ["--out_dataset", "iSUN", "--max-images", "40", *CPU, "--method", method,
              "--train-dataset", f"npz:{cifar_train_npz}"]
    if method == "laood":
        common += ["--subsample", "300"]
    registry_run = run_in(tmp_path, "registry", ["--nn", "resnet20", *common], monkeypatch)
    own_run = run_in(tmp_path, "own", ["--arch", "resnet20", "--weights", str(weights),
                                       *common], monkeypatch)
    assert registry_run == own_run and len(registry_run) >= 2


def test_a_densenet_checkpoint_under_arch_and_exported_give_the_registry_scores(
        installed, tmp_path, monkeypatch):
    """Item 5 for DenseNet-BC: the release's densenet10 under --arch densenet-bc-100-12
    byte for byte; the same network saved by torch.export within 1e-5."""
    common = ["--out_dataset", "iSUN", "--max-images", "20", *CPU, "--mean", floats(ODIN_MEAN),
              "--std", floats(ODIN_STD)]
    registry_run = run_in(tmp_path, "registry", ["--nn", "densenet10", *common[:-4]],
                          monkeypatch)
    weights = registry.get_spec("densenet10").path
    assert run_in(tmp_path, "arch", ["--arch", "densenet-bc-100-12", "--weights", str(weights),
                                     *common], monkeypatch) == registry_run
    network, _ = registry.load_model("densenet10")
    program = torch.export.export(network, (torch.zeros(2, 3, 32, 32),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, tmp_path / "densenet10.pt2")
    exported = run_in(tmp_path, "exported", ["--model", str(tmp_path / "densenet10.pt2"),
                                             *common], monkeypatch)
    assert exported.keys() == registry_run.keys()
    for name, text in registry_run.items():
        ours = np.loadtxt(exported[name].decode().splitlines(), delimiter=",")
        theirs = np.loadtxt(text.decode().splitlines(), delimiter=",")
        assert np.abs(ours - theirs).max() <= 1e-5, name


# A torchvision model with random weights, end to end on sets made here

@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """A torchvision ResNet-18 of 3 classes (random weights, saved as a DataParallel
    state_dict under 'model'), a labelled ImageFolder train and test tree, OOD images as a
    flat folder of PNGs of two sizes and as an npz."""
    root = tmp_path_factory.mktemp("own")
    rng = np.random.default_rng(0)
    for split, count in (("train", 40), ("test", 40)):
        for c, name in enumerate(("cat", "dog", "frog")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                image = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
                image[..., c] = 255                    # a class the network can tell apart
                Image.fromarray(image).save(folder / f"{i}.png")
    (root / "ood").mkdir()
    for i in range(120):
        size = 48 if i % 2 else 32
        Image.fromarray(rng.integers(0, 90, (size, size), dtype=np.uint8)).save(
            root / "ood" / f"{i:03d}.png")
    np.savez(root / "ood.npz", images=rng.integers(0, 255, (120, 32, 32, 3), dtype=np.uint8))
    torch.manual_seed(0)
    network = torchvision.models.resnet18(num_classes=3)
    torch.save({"model": {f"module.{k}": v for k, v in network.state_dict().items()}},
               root / "r18.pt")
    return root


def own_flags(own):
    return ["--arch", "resnet18", "--weights", str(own / "r18.pt"), "--num-classes", "3",
            "--image-size", "32", "--in-dataset", f"folder:{own / 'test'}",
            "--train-dataset", f"folder:{own / 'train'}", "--skip", "20"]


def test_a_torchvision_model_on_folders_and_npz_through_every_detector(own, capsys):
    """Item 8: compare.py scores ODIN and every gradient-free detector on a flat folder of
    PNGs (two sizes: resized, said once) and an npz, ODIN tuned by the transfer mode on the
    user's validation set."""
    file_sets.file_set.cache_clear()            # the note is said when a set is first read
    sets = [f"folder:{own / 'ood'}", f"npz:{own / 'ood.npz'}"]
    argv = [*own_flags(own), "--sets", *sets, "--validation-set", sets[1], "--tune-images",
            "10", "--methods", ",".join(m for m in FEATURE_METHODS if m not in ("msp", "laood")),
            *CPU[:2]]
    assert compare.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("images of 2 size(s) (32x32, 48x48) are resized to 32x32") == 1
    (table,) = [p for p in results_dir().glob("detectors_resnet18-*.csv")
                if not p.stem.endswith("_pairs")]                 # beside it: every pair's test
    rows = [line.split(",") for line in table.read_text().splitlines()[1:]]
    for name in ("ood", "ood.npz"):
        assert [r for r in rows if r[0].startswith(("folder:", "npz:")) and
                r[0].endswith(name)], name
    detectors_run = {r[1] for r in rows}
    assert {"MSP (baseline)", "ODIN", "Energy", "MaxLogit", "Mahalanobis",
            "RelativeMahalanobis", "KNN", "ReAct", "ViM", "ASH-S"} == detectors_run - {""}
    assert "--top-m must be" in table.with_suffix(".md").read_text()   # GEN: 10 > 3 classes
    assert all(0 <= float(r[4]) <= 100 for r in rows if r[1])   # AUROC column filled
    assert main.main([*own_flags(own), "--out_dataset", sets[0], "--method", "laood",
                      "--subsample", "100", *CPU]) == 0          # LA-OOD: every convolution


def test_the_python_entry_gives_the_score_files_of_the_commands(own, capsys):
    """Item 4 and 8: api.score writes no file and gives, line for line, main.py's scores."""
    flags = own_flags(own)
    ood = f"npz:{own / 'ood.npz'}"
    for method, params in (("odin", {"temperature": 1000, "magnitude": 0.0014}),
                           ("knn", {"k": 5}), ("vim", {})):
        argv = [*flags, "--out_dataset", ood, "--method", method, *CPU,
                *(f"--{k}={v}" for k, v in params.items() if method != "odin")]
        assert main.main(argv) == 0
    before = sorted(runs_dir().rglob("*"))
    model = api.load_model(arch="resnet18", weights=own / "r18.pt", num_classes=3,
                           image_size=32, in_dataset=f"folder:{own / 'test'}",
                           train_dataset=f"folder:{own / 'train'}")
    train = api.images(f"folder:{own / 'test'} train", model)
    test = api.subset(api.images(f"folder:{own / 'test'}", model), 20, 120)
    outs = api.subset(api.images(ood, model), 20, 120)
    for method, params, tag in (("odin", {"temperature": 1000, "magnitude": 0.0014}, "Our"),
                                ("knn", {"k": 5}, "KNN"), ("vim", {}, "ViM")):
        (folder,) = [p for p in runs_dir().iterdir() if f"_{method}" in p.name
                     or (method == "odin" and "_T1000_" in p.name)]
        temperature = 1000 if method == "odin" else 1
        for side, images in (("In", test), ("Out", outs)):
            scores = api.score(model, method, images, train=train, batch_size=32, **params)
            lines = scorefiles.score_lines(temperature, 0.0014 if method == "odin" else 0.0,
                                           scores)
            written = (folder / "softmax_scores" / f"confidence_{tag}_{side}.txt").read_text()
            assert "".join(line if line.endswith("\n") else line + "\n" for line in lines) \
                == written, (method, side)
    assert sorted(runs_dir().rglob("*")) == before          # the entry wrote nothing
    result = api.metrics([0.9, 0.8], [0.1, 0.2])
    assert result["AUROC"] == 1.0


@pytest.mark.parametrize("arch,expected", [("resnet18", "fc"), ("densenet121", "classifier"),
                                           ("vit_b_16", "heads.head"),
                                           ("mobilenet_v3_small", "classifier.3")])
def test_the_penultimate_layer_is_the_input_of_the_last_linear(arch, expected):
    network = torchvision.models.get_model(arch, num_classes=4)
    assert from_files.last_linear(network) == expected


def test_the_penultimate_finder_on_an_exported_program(tmp_path):
    network = torchvision.models.resnet18(num_classes=3).eval()
    program = torch.export.export(network, (torch.zeros(2, 3, 32, 32),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, tmp_path / "r18.pt2")
    module, size = from_files.load_exported(tmp_path / "r18.pt2")
    assert size == (32, 32) and from_files.last_linear(module) == "fc"
    assert [layer.module for layer in registry.conv_layers(module)][:2] == ["conv1",
                                                                            "layer1.0.conv1"]


# Item 7: each misuse a clear one-line error before any work

def error_of(argv, capsys):
    assert main.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("error: ")
    return err


def test_weights_of_another_architecture_name_the_keys(own, capsys):
    err = error_of(["--arch", "resnet20", "--weights", str(own / "r18.pt"), *CPU], capsys)
    assert "does not fit" in err and "missing" in err and "unexpected" in err
    assert "wrongly shaped" in err and "conv1.weight (64, 3, 7, 7)" in err


def test_a_wrong_number_of_classes_names_the_shape(own, capsys):
    err = error_of([*own_flags(own)[:4], "--num-classes", "10", "--image-size", "32", *CPU],
                   capsys)
    assert "wrongly shaped" in err and "fc.weight (3, 512)" in err


def test_a_model_whose_output_is_not_logits(tmp_path, capsys):
    network = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(),
                                  torch.nn.Linear(4 * 30 * 30, 10), torch.nn.Softmax(1),
                                  torch.nn.Unflatten(1, (2, 5))).eval()
    program = torch.export.export(network, (torch.zeros(2, 3, 32, 32),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, tmp_path / "m.pt2")
    err = error_of(["--model", str(tmp_path / "m.pt2"), *CPU], capsys)
    assert "output is (2, 2, 5)" in err and "--num-classes" in err


def test_an_exported_program_without_input_gradient_refused_for_odin(tmp_path, capsys,
                                                                     installed):
    class Inference(torch.nn.Module):
        """A deployment wrapper: its forward runs without autograd."""
        def __init__(self):
            super().__init__()
            self.net = torchvision.models.resnet18(num_classes=10).eval()

        def forward(self, x):
            with torch.no_grad():
                return self.net(x)
    program = torch.export.export(Inference(), (torch.zeros(2, 3, 32, 32),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, tmp_path / "nograd.pt2")
    argv = ["--model", str(tmp_path / "nograd.pt2"), "--out_dataset", "iSUN", "--max-images",
            "10", *CPU]
    err = error_of(argv, capsys)
    assert "gives no input gradient" in err and "gradient-free detector" in err
    assert not list(runs_dir().glob("*iSUN*"))
    assert main.main([*argv, "--method", "energy"]) == 0     # a gradient-free one works
    # the no_grad region hides the network's modules: its penultimate feature is not known
    assert "the penultimate feature is not known" in capsys.readouterr().out
    err = error_of([*argv, "--method", "knn"], capsys)
    assert "knn reads the penultimate feature" in err and "--penultimate" in err


def test_a_folder_with_no_images_and_an_unreadable_file(own, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    err = error_of([*own_flags(own), "--out_dataset", f"folder:{tmp_path / 'empty'}", *CPU],
                   capsys)
    assert "no images in" in err
    bad = tmp_path / "bad"
    bad.mkdir()
    Image.new("RGB", (32, 32)).save(bad / "a.png")
    (bad / "b.png").write_bytes(b"not a png")
    err = error_of([*own_flags(own), "--out_dataset", f"folder:{bad}", *CPU], capsys)
    assert f"{bad / 'b.png'}: unreadable image" in err


def test_a_training_set_without_labels_for_a_class_conditional_detector(own, tmp_path, capsys):
    np.savez(tmp_path / "unlabelled.npz",
             images=np.zeros((40, 32, 32, 3), dtype=np.uint8))
    flags = own_flags(own)
    flags[flags.index("--train-dataset") + 1] = f"npz:{tmp_path / 'unlabelled.npz'}"
    err = error_of([*flags, "--out_dataset", f"npz:{own / 'ood.npz'}", "--method",
                    "mahalanobis", *CPU], capsys)
    assert "images without a label" in err and "--train-dataset" in err
    assert main.main([*flags, "--out_dataset", f"npz:{own / 'ood.npz'}", "--method", "knn",
                      "--k", "5", *CPU]) == 0                   # KNN needs no labels


def test_a_fitted_detector_without_a_training_set_names_the_flag(own, capsys):
    flags = own_flags(own)[:-4] + ["--skip", "20"]             # no --train-dataset
    err = error_of([*flags, "--out_dataset", f"npz:{own / 'ood.npz'}", "--method", "knn",
                    *CPU], capsys)
    assert "--train-dataset" in err


def test_a_set_smaller_than_the_held_out_split(own, capsys):
    err = error_of([*own_flags(own)[:-2], "--out_dataset", f"npz:{own / 'ood.npz'}", *CPU],
                   capsys)
    assert "nothing to score" in err and "--skip is 1000" in err


def test_registry_models_refuse_the_flags_of_a_model_from_files(capsys):
    err = error_of(["--nn", "resnet20", "--num-classes", "3", *CPU], capsys)
    assert "--num-classes: only for your own model" in err
    err = error_of(["--arch", "not_a_model", "--weights", __file__, *CPU], capsys)
    assert "unknown --arch 'not_a_model'" in err


def test_a_set_from_files_keys_its_content(own, tmp_path):
    """Another image in the folder is another set: another tag, so another run folder and
    cache key."""
    folder = tmp_path / "ood"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (32, 32), (i, 0, 0)).save(folder / f"{i}.png")
    before = file_sets.tag(f"folder:{folder}", 32)
    file_sets.file_set.cache_clear()
    file_sets.tag.cache_clear()
    Image.new("RGB", (32, 32), (9, 9, 9)).save(folder / "0.png")       # other pixels
    assert file_sets.tag(f"folder:{folder}", 32) != before
    file_sets.file_set.cache_clear()
    file_sets.tag.cache_clear()
    Image.new("RGB", (32, 32), (0, 0, 0)).save(folder / "0.png")       # as it was
    assert file_sets.tag(f"folder:{folder}", 32) == before
    file_sets.file_set.cache_clear()
    file_sets.tag.cache_clear()
    Image.new("RGB", (32, 32), (9, 9, 9)).save(folder / "3.png")       # one more image
    assert file_sets.tag(f"folder:{folder}", 32) != before
    with pytest.raises(UserError, match="'images' is float64"):
        np.savez(tmp_path / "f.npz", images=np.zeros((2, 32, 32, 3)))
        file_sets.file_set(f"npz:{tmp_path / 'f.npz'}", 32)


def test_torchrun_shards_a_model_and_sets_from_files(own, tmp_path):
    """Two ranks write what one process writes, for ODIN and a fitted detector on a model and
    sets from files."""
    from test_shards import files, launch
    flags = [*own_flags(own), "--out_dataset", f"folder:{own / 'ood'}", *CPU]
    for ranks in (1, 2):
        for method in ("odin", "knn"):
            done = launch(tmp_path / f"ranks{ranks}", "main.py", *flags, "--method", method,
                          ranks=ranks)
            assert done.returncode == 0, done.stderr[-3000:]
    one, two = files(tmp_path / "ranks1"), files(tmp_path / "ranks2")
    assert len([name for name in one if "confidence_" in name]) == 6
    assert one.keys() == two.keys()
    assert [name for name in one if one[name] != two[name]] == []


def test_the_size_policy_by_hand(tmp_path):
    """An image of the input size is kept pixel for pixel; a 64x32 one (shorter side already
    32) loses a quarter of its width each side; a 16x16 one is scaled up whole."""
    exact = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    wide = np.zeros((32, 64, 3), dtype=np.uint8)
    wide[:, :16] = (255, 0, 0)
    wide[:, 16:48] = (0, 255, 0)
    wide[:, 48:] = (0, 0, 255)
    small = np.full((16, 16, 3), 77, dtype=np.uint8)
    for name, image in (("a_exact", exact), ("b_wide", wide), ("c_small", small)):
        Image.fromarray(image).save(tmp_path / f"{name}.png")
    images = file_sets.file_set(f"folder:{tmp_path}", 32)
    assert (images[0][0].permute(1, 2, 0).numpy() == exact).all()
    assert (images[1][0].permute(1, 2, 0).numpy() == (0, 255, 0)).all()
    assert images[2][0].shape == (3, 32, 32) and (images[2][0] == 77).all()
    assert images.labels.tolist() == [-1, -1, -1]                # a flat folder: unlabelled


def test_the_model_name_follows_the_images_of_its_sets_not_their_path(own, tmp_path):
    """The same images by another path: the same model, the same runs; another image in the
    test folder: another model name, so no run or table of the old images is reused."""
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(own / "test", copy)
    flags = dict(arch="resnet18", weights=own / "r18.pt", num_classes=3, image_size=32,
                 train_dataset=f"folder:{own / 'train'}")
    first = from_files.from_files(in_dataset=f"folder:{own / 'test'}", **flags).name
    assert from_files.from_files(in_dataset=f"folder:{copy}", **flags).name == first
    Image.new("RGB", (32, 32)).save(copy / "cat" / "extra.png")
    file_sets.file_set.cache_clear()
    assert from_files.from_files(in_dataset=f"folder:{copy}", **flags).name != first


def test_sets_from_files_are_read_before_any_work(own, capsys):
    """A bad path in --sets or --validation-set, a class folder with no images, a training
    set without one of the classes: each an error before any scoring."""
    flags = [*own_flags(own), "--tune-images", "10", *CPU[:2]]
    assert compare.main([*flags, "--sets", "folder:/no/such/folder"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert compare.main([*flags, "--validation-set", "npz:/no/such.npz"]) == 2
    assert "unreadable" in capsys.readouterr().err
    assert not list(runs_dir().glob("*"))


def test_class_folders_and_classes_checked(own, tmp_path, capsys):
    tree = tmp_path / "tree"
    for name, count in (("a", 2), ("b", 0), ("c", 2)):
        (tree / name).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (32, 32)).save(tree / name / f"{i}.png")
    with pytest.raises(UserError, match="a class folder with no images .*label 1"):
        file_sets.file_set(f"folder:{tree}", 32)
    labels = np.array([0] * 30 + [2] * 30)                     # no image of class 1
    np.savez(tmp_path / "two.npz", images=np.zeros((60, 32, 32, 3), np.uint8), labels=labels)
    flags = own_flags(own)
    flags[flags.index("--train-dataset") + 1] = f"npz:{tmp_path / 'two.npz'}"
    err = error_of([*flags, "--out_dataset", f"npz:{own / 'ood.npz'}", "--method", "rmd",
                    *CPU], capsys)
    assert "no image of class(es) 1" in err


def test_a_registry_model_fitted_on_another_set_keeps_its_release_settings(installed, tmp_path):
    from oodbench.commands import table
    np.savez(tmp_path / "t.npz", images=np.zeros((4, 32, 32, 3), np.uint8),
             labels=np.arange(4))
    densenet = registry.get_spec("densenet10")
    assert from_files.with_sets(densenet, "CIFAR-10", None) is densenet     # nothing changed
    fitted = from_files.with_sets(densenet, None, f"npz:{tmp_path / 't.npz'}")
    assert fitted.name != "densenet10" and fitted.registry_name == "densenet10"
    assert table.default_settings(fitted.name) == "release"
    tested = from_files.with_sets(densenet, f"npz:{tmp_path / 't.npz'}", None)
    assert tested.registry_name is None and table.default_settings(tested.name) == "transfer"
