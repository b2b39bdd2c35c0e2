"""A trusted full pickle to a plain state_dict (layer 6: the convert_checkpoint.py command).

Convert a full pickled checkpoint you trust into a plain state_dict.

The ODIN release ships whole pickled modules (``torch.save(model)``); unpickling
runs arbitrary code when loaded, so the project loads them only when their
sha256 is a known release file. For any other pickle you trust, this script
unpickles it once, explicitly, and saves only its tensors:

    python code/convert_checkpoint.py models/densenet100.pth models/densenet100.state_dict.pt
    mv models/densenet100.state_dict.pt models/densenet100.pth

The state_dict loads with ``torch.load(weights_only=True)``: no code runs.
"""
import argparse
import warnings
from pathlib import Path

import torch

from oodbench.commands.cli import description
from oodbench.core import files
from oodbench.core.paths import UserError, report_errors
from oodbench.networks.registry import release_module_names, state_dict_of


def convert(source, target):
    if not source.is_file():
        raise UserError(f"{source}: no such file")
    if target.exists():
        raise UserError(f"{target} exists; choose another name")
    with warnings.catch_warnings(), release_module_names():
        warnings.simplefilter("ignore")
        try:
            obj = torch.load(source, map_location="cpu", weights_only=False)
        except Exception as e:    # a truncated file, or no pickle at all
            raise UserError(f"{source}: not a readable checkpoint ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''})") from None
    state = state_dict_of(obj, source)
    files.save_torch({k: v.clone() for k, v in state.items()}, target)
    print(f"wrote {len(state)} tensors to {target}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=description(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="checkpoint to convert (you must trust it)")
    parser.add_argument("target", type=Path, help="where to write the state_dict")
    args = parser.parse_args(argv)
    return report_errors(lambda: convert(args.source, args.target))
