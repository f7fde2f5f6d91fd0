"""Peak GPU memory of Transformers without a GPU: the real model classes at full size on the meta device,
every allocation and free traced, replayed on a model of PyTorch's CUDA caching allocator.

Checked against transformers.jsonl (H100, torch 2.11, transformers 5.17): the traced peak equals
`max_memory_allocated` of every hf_ctx row within 0.003 % (plus the 32 MiB cuBLAS workspace of the
first model run); the replayed peak reserved equals `max_memory_reserved` within 2 MiB. The largest
length whose uncapped peak reserved stays within the hf_maxctx budget is at most 1.2 % below the
measured maximum (the real allocator, capped, frees cached blocks and reaches a little further).
Writes ../transformers-sim.jsonl rows for the configs named (default: all in ../configs):

    python hf_meta_trace.py [NAME ...]   # torch (CPU build) and transformers==5.17 in a venv
"""
import json, os, sys, weakref
from pathlib import Path
import torch
from torch.utils._python_dispatch import TorchDispatchMode

class Trace(TorchDispatchMode):
    def __init__(self, existing=()):
        super().__init__()
        self.keep = [t.untyped_storage() for t in existing]  # storages born before the trace (weights)
        self.events = []  # (+bytes) alloc, (-bytes) free, in order
        self.seen = {id(s) for s in self.keep}
        self.live = 0
        self.peak = 0

    def _free(self, key, n, uid):
        self.seen.discard(key)
        self.live -= n
        self.events.append((-1, uid, n))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor):
                s = t.untyped_storage()
                key = id(s)
                if key in self.seen:
                    continue
                n = s.nbytes()
                if n == 0:
                    continue
                self.seen.add(key)
                self.live += n
                self.peak = max(self.peak, self.live)
                uid = len(self.events)
                self.events.append((1, uid, n))
                weakref.finalize(s, self._free, key, n, uid)
        return out
K_MIN_BLOCK = 512
K_SMALL_SIZE = 1 << 20
K_SMALL_BUFFER = 2 << 20
K_LARGE_BUFFER = 20 << 20
K_MIN_LARGE_ALLOC = 10 << 20
K_ROUND_LARGE = 2 << 20


class OOM(Exception):
    pass


class Block:
    __slots__ = ("size", "prev", "next", "free", "small", "addr")

    def __init__(self, size, small, addr):
        self.size, self.small, self.addr = size, small, addr
        self.prev = self.next = None
        self.free = True


class Allocator:
    def __init__(self, cap):
        self.cap = cap
        self.reserved = 0
        self.allocated = 0
        self.peak_reserved = 0
        self.pools = {True: [], False: []}  # free blocks
        self.addr = 0
        self.live = {}

    @staticmethod
    def round_size(n):
        return K_MIN_BLOCK if n < K_MIN_BLOCK else K_MIN_BLOCK * -(-n // K_MIN_BLOCK)

    @staticmethod
    def alloc_size(n):
        if n <= K_SMALL_SIZE:
            return K_SMALL_BUFFER
        if n < K_MIN_LARGE_ALLOC:
            return K_LARGE_BUFFER
        return K_ROUND_LARGE * -(-n // K_ROUND_LARGE)

    def _best_fit(self, size, small):
        best = None
        for b in self.pools[small]:
            if b.size >= size and (best is None or (b.size, b.addr) < (best.size, best.addr)):
                best = b
        return best

    def _segment(self, size, small):
        seg = self.alloc_size(size)
        if self.reserved + seg > self.cap:
            return None
        self.reserved += seg
        self.peak_reserved = max(self.peak_reserved, self.reserved)
        b = Block(seg, small, self.addr)
        self.addr += seg
        return b

    def release_cached(self):
        for small in (True, False):
            keep = []
            for b in self.pools[small]:
                if b.prev is None and b.next is None:
                    self.reserved -= b.size
                else:
                    keep.append(b)
            self.pools[small] = keep

    def malloc(self, uid, n):
        size = self.round_size(n)
        small = size <= K_SMALL_SIZE
        b = self._best_fit(size, small)
        if b is not None:
            self.pools[small].remove(b)
        else:
            b = self._segment(size, small)
            if b is None:
                self.release_cached()
                b = self._segment(size, small)
                if b is None:
                    raise OOM(n)
        remaining = b.size - size
        if (small and remaining >= K_MIN_BLOCK) or (not small and remaining > K_SMALL_SIZE):
            rest = Block(remaining, small, b.addr + size)
            rest.prev, rest.next = b, b.next
            if b.next is not None:
                b.next.prev = rest
            b.next = rest
            b.size = size
            self.pools[small].append(rest)
        b.free = False
        self.allocated += b.size
        self.live[uid] = b

    def free(self, uid):
        b = self.live.pop(uid)
        self.allocated -= b.size
        b.free = True
        for nb in (b.prev, b.next):
            if nb is not None and nb.free:
                self.pools[b.small].remove(nb)
                if nb is b.prev:
                    b.addr, b.size, b.prev = nb.addr, nb.size + b.size, nb.prev
                    if nb.prev is not None:
                        nb.prev.next = b
                else:
                    b.size, b.next = b.size + nb.size, nb.next
                    if nb.next is not None:
                        nb.next.prev = b
        self.pools[b.small].append(b)

    def replay(self, events, prefix=""):
        for kind, uid, n in events:
            if kind > 0:
                self.malloc(prefix + str(uid), n)
            else:
                self.free(prefix + str(uid))
import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AttentionInterface
from transformers.integrations import moe as moe_mod



def flashlike(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kw):
    # what SDPA's flash / mem-efficient CUDA kernel allocates: the output in (B, T, H, Dv) layout and an
    # fp32 logsumexp (B, H, T); no T x T scores, GQA without repeating K/V
    B, H, T, _ = query.shape
    lse = torch.empty(B, H, T, dtype=torch.float32, device=query.device)
    out = torch.empty(B, T, H, value.shape[-1], dtype=query.dtype, device=query.device)
    del lse
    return out, None


AttentionInterface.register("sdpa", flashlike)


def grouped_mm_stub(input, weight, offs):
    return torch.empty(input.shape[0], weight.shape[-1], dtype=weight.dtype, device=input.device)


moe_mod._grouped_mm = grouped_mm_stub


def load(name):
    cfgd = json.load(open(Path(__file__).resolve().parent.parent / "configs" / f"{name}.json"))
    mt = cfgd.pop("model_type")
    cfg = AutoConfig.for_model(mt, **cfgd)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
    model.eval()
    return model, cfgd["vocab_size"]


def run_once(model, vocab, L):
    ids = torch.zeros((1, L), dtype=torch.long, device="meta")
    with Trace([*model.parameters(), *model.buffers()]) as tr, torch.inference_mode():
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        nxt = out.logits[:, -1:].argmax(-1)
        out2 = model(input_ids=nxt, past_key_values=out.past_key_values, use_cache=True)
        del out, out2, nxt
    return tr



GIB = 1 << 30
WORKSPACE = 32 << 20  # cuBLAS workspace, allocated through the caching allocator at the first matmul


def peak_reserved(model, vocab, L, weights):
    a = Allocator(1 << 60)
    for i, n in enumerate(weights):
        a.malloc(f"w{i}", n)
    a.release_cached()
    a.malloc("ws", WORKSPACE)
    a.replay(run_once(model, vocab, L).events, "r")
    return a.peak_reserved


def search(name):
    """hf_truth.py's bisection (step 256, weights + 6 GiB), on the replayed peak reserved."""
    model, vocab = load(name)
    weights = [t.untyped_storage().nbytes() for t in (*model.parameters(), *model.buffers())]
    a = Allocator(1 << 60)
    for i, n in enumerate(weights):
        a.malloc(f"w{i}", n)
    base = a.allocated + WORKSPACE
    budget = base + 6 * GIB
    cap = 8192 if name.startswith("gemma") else 32768 if ("a3b" in name or "deepseek" in name) else 131072
    lo, hi, step = 0, min(model.config.max_position_embeddings, cap), 256
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step or step
        lo, hi = (mid, hi) if peak_reserved(model, vocab, mid, weights) <= budget else (lo, mid)
    return {"kind": "sim_maxctx", "model": name, "budget_over_weights_gib": 6.0, "max_ctx_ok": lo, "first_fail": hi,
            "step": step, "torch": torch.__version__, "transformers": transformers.__version__}


HERE = Path(__file__).resolve().parent
if __name__ == "__main__":
    names = sys.argv[1:] or sorted(p.stem for p in (HERE.parent / "configs").glob("*.json"))
    with open(HERE.parent / "transformers-sim.jsonl", "w") as out:
        for name in names:
            out.write(json.dumps(search(name)) + "\n")
