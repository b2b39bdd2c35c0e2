"""One command's work shared by the processes torchrun starts (layer 0).

Without torchrun (no WORLD_SIZE, or 1) nothing here does anything: ``map_shards`` calls its
function on all the indices, ``by_leader`` functions just run.

Under ``torchrun --nproc_per_node N code/main.py ...`` every rank runs the same command
(single program, many data):

* the long loops (scoring images, tuning grids, the feature pass) call ``map_shards``: each
  rank computes a contiguous shard of the image indices and the parts are gathered, in
  rank order, to every rank, so every rank holds what one process would have computed
  (scores do not depend on how images are batched: tests/test_scoring.py);
* only rank 0 touches the runs/, results/ and figures/ folders: a function decorated with
  ``by_leader`` (every write, and every read that decides what is computed next) runs on
  rank 0 alone and its result, or its error, is sent to every rank. So the ranks always take
  the same path, and ranks on other machines need no shared filesystem (only the data and
  weights installed);
* ranks other than 0 print nothing but errors (no progress bars).

The process group uses gloo on CPUs and GPUs alike: what crosses between ranks is scores and
features already on the CPU (pickled), never a CUDA tensor, so NCCL would add nothing.
A rank that dies makes torchrun stop the others; they exit saying so. Score files, cache
entries and run.json (which marks a run finished) are written atomically by rank 0, so
rerunning the command (or torchrun's --max-restarts) resumes from the finished runs and cache
entries; tables and figures are written again by the rerun.
"""
import atexit
import datetime
import functools
import os
import signal
import sys

import torch.distributed as dist

from oodbench.core.paths import UserError

TIMEOUT = datetime.timedelta(hours=2)    # a rank waits this long for the others at most
EXIT_WAIT = datetime.timedelta(minutes=2)


def launched():
    """Whether torchrun (or another launcher setting WORLD_SIZE > 1) started this process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank():
    return dist.get_rank() if dist.is_initialized() else 0


def size():
    return dist.get_world_size() if dist.is_initialized() else 1


def local_rank():
    """This rank's index on its machine (its GPU is --gpu + this)."""
    return int(os.environ.get("LOCAL_RANK", "0")) if launched() else 0


def leader():
    return rank() == 0


def join():
    """Join torchrun's process group (once; a no-op without torchrun). Ranks other than 0
    then print only errors, and every rank exits with a message when torchrun stops it."""
    if not launched() or dist.is_initialized():
        return
    # torchrun's store outlives a failed attempt: the keys of each attempt get their own
    # prefix, or a restarted rank could read a dead rank's address and fail to connect
    store, rank_here, ranks = next(dist.rendezvous("env://", timeout=TIMEOUT))
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    dist.init_process_group("gloo", store=dist.PrefixStore(f"odin/attempt{attempt}", store),
                            rank=rank_here, world_size=ranks, timeout=TIMEOUT)
    signal.signal(signal.SIGTERM, _stopped)
    previous_hook = sys.excepthook

    def failed(*exception):
        _failed.append(True)
        previous_hook(*exception)
    sys.excepthook = failed
    atexit.register(_leave)
    if not leader():
        _quiet()


_failed = []      # a rank that failed leaves without waiting for the others


def _leave():
    """At an exit that is not a crash (a UserError included), wait a while for every rank
    before closing the group: a rank that closed its connections while another still used
    them would make that one abort. A rank that never comes (it stopped with an error of its
    own) is not waited for beyond EXIT_WAIT."""
    if dist.is_initialized() and not _failed:
        try:
            dist.monitored_barrier(timeout=EXIT_WAIT)
            dist.destroy_process_group()
        except RuntimeError:
            pass


RESUME = ("Files are written whole or not at all: rerun the same command to resume from the "
          "finished runs.")


def _stopped(signum, frame):
    _failed.append(True)
    raise SystemExit(f"rank {rank()}: stopped by torchrun (another rank failed: see its "
                     f"report). {RESUME}")


def _together(collective, *args, **kwargs):
    """A collective call; a rank lost on the way stops this one with a clear message."""
    try:
        return collective(*args, **kwargs)
    except RuntimeError as e:        # gloo's errors (DistBackendError is one)
        _failed.append(True)
        raise SystemExit(f"rank {rank()}: lost contact with another rank (it failed: see "
                         f"torchrun's report; {str(e).splitlines()[0][:160]}). {RESUME}") from None


def _quiet():
    """No output but errors: stdout to /dev/null and no progress bars."""
    from tqdm import tqdm
    sys.stdout = open(os.devnull, "w")
    shown = tqdm.__init__

    def hidden(self, *args, **kwargs):
        shown(self, *args, **{**kwargs, "disable": True})
    tqdm.__init__ = hidden


def agree(check):
    """``check()`` on every rank; if it raised a UserError on any rank, every rank raises
    the first such error, naming its rank. For what each rank must do before any work
    (choosing its device)."""
    try:
        result, error = check(), None
    except UserError as e:
        result, error = None, str(e)
    if size() == 1:
        if error is not None:
            raise UserError(error)
        return result
    errors = [None] * size()
    _together(dist.all_gather_object, errors, error)
    for r, message in enumerate(errors):
        if message is not None:
            raise UserError(f"rank {r}: {message}")
    return result


def shard(indices, of_rank=None, ranks=None, align=1):
    """The contiguous part of ``indices`` (a range or sequence) that rank ``of_rank`` of
    ``ranks`` computes, in rank order. The parts are cut at multiples of ``align`` (the batch
    size: each rank then scores exactly the batches one process would, on any device) and
    differ by at most one such block."""
    of_rank = rank() if of_rank is None else of_rank
    ranks = size() if ranks is None else ranks
    blocks = -(-len(indices) // align)
    first, stop = of_rank * blocks // ranks, (of_rank + 1) * blocks // ranks
    return indices[first * align:stop * align]


_in_leader_call = False


def map_shards(compute, indices, join_parts, what, align=1):
    """``compute(indices)`` shared by the ranks: each computes ``compute(shard)`` (shards cut
    at multiples of ``align``), and ``join_parts([parts in rank order])`` of the non-empty
    shards' results is returned on every rank. An error on one rank is raised on every rank.
    ``what`` names the work: the ranks must all be doing the same."""
    if size() == 1:
        return compute(indices)
    if _in_leader_call:
        raise RuntimeError(f"{what}: shared work inside a by_leader function would wait forever")
    mine = shard(indices, align=align)
    try:
        outcome = (True, compute(mine) if len(mine) else None)
    except Exception as e:          # sent to the other ranks, raised on every rank
        outcome = (False, e)
    gathered = [None] * size()
    _together(dist.all_gather_object, gathered, ((what, len(indices)), outcome))
    _same_call([call for call, _ in gathered])
    for ok, value in (outcome for _, outcome in gathered):
        if not ok:
            raise value
    return join_parts([value for _, (_, value) in gathered if value is not None])


def _same_call(calls):
    if len(set(calls)) != 1:
        raise RuntimeError(f"the ranks diverged (each rank's call: {calls}): a rank's data or "
                           "files differ from rank 0's")


def by_leader(function):
    """Decorator: ``function`` runs on rank 0 alone; every rank returns its result (or
    raises its error). Calls nested inside it just run."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        global _in_leader_call
        if size() == 1 or _in_leader_call:
            return function(*args, **kwargs)
        outcome = [None]
        if leader():
            _in_leader_call = True
            try:
                outcome[0] = (function.__qualname__, True, function(*args, **kwargs))
            except Exception as e:          # sent to the other ranks, raised on every rank
                outcome[0] = (function.__qualname__, False, e)
            finally:
                _in_leader_call = False
        _together(dist.broadcast_object_list, outcome, src=0)
        called, ok, value = outcome[0]
        _same_call([called, function.__qualname__])
        if not ok:
            raise value
        return value
    return wrapper
