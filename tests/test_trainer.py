"""What both families hand to the shared Trainer (lib/trainer.py) follows the module to its device.

The training code has to run on a GPU this test machine does not have. Lightning moves the
module (its parameters and buffers) to the device, then calls `on_fit_start`, then the first
`training_step`; any other tensor a step reads (a table kept as a plain attribute) stays on the
CPU and fails there with a device mismatch. Here `fit_early_stopping` is replaced by that
sequence on the `meta` device, which every tensor accepts as a target, and every tensor the
module can reach must then be on it.
"""
import numpy as np
import pytest
import torch
from torch import nn

from lib.models.config import ModelConfig, SeqRecConfig, TrainConfig
from lib.models.item_repr import ItemFeatures
from lib.sid.config import DecodeConfig, GPT2SidConfig, SidModelConfig, SidTrainConfig
from lib.sid.vocab import SidVocab
from tests.sid.conftest import cycle_split, sid_codes

DEVICE = torch.device("meta")  # stands in for the GPU


class Placed(Exception):
    """Raised by the stand-in trainer once the module is placed, carrying the module."""


def place_instead_of_training(module, *args, **kwargs):
    """Lightning's order (Trainer._run): setup, the strategy moves the module, on_fit_start, on_train_start."""
    module.setup("fit")
    module.to(DEVICE)
    module.on_fit_start()
    module.on_train_start()
    raise Placed(module)


def held_tensors(obj, name: str = "module", seen: set | None = None):
    """(path, tensor) of every tensor reachable from `obj`: parameters, buffers, and plain attributes.

    Plain attributes are followed through lists, tuples, dicts and this project's own objects
    (lib.*, e.g. the trie); other libraries' objects (data frames, configs) are not entered,
    nor private attributes (torchmetrics keeps its CPU defaults there on purpose).
    """
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if torch.is_tensor(obj):
        yield name, obj
    elif isinstance(obj, (list, tuple)):
        for i, x in enumerate(obj):
            yield from held_tensors(x, f"{name}[{i}]", seen)
    elif isinstance(obj, dict):
        for k, x in obj.items():
            yield from held_tensors(x, f"{name}[{k!r}]", seen)
    elif isinstance(obj, nn.Module):
        for k, x in [*obj._parameters.items(), *obj._buffers.items(), *obj._modules.items()]:
            yield from held_tensors(x, f"{name}.{k}", seen)
        for k, x in vars(obj).items():
            if not k.startswith("_"):
                yield from held_tensors(x, f"{name}.{k}", seen)
    elif type(obj).__module__.startswith("lib.") and hasattr(obj, "__dict__"):
        for k, x in vars(obj).items():
            yield from held_tensors(x, f"{name}.{k}", seen)


def assert_all_on_device(module) -> None:
    held = list(held_tensors(module))
    assert any(n.startswith("module.model.") for n, _ in held)  # the walk reached the network itself
    off = [f"{n} on {t.device}" for n, t in held if t.device != DEVICE]
    assert not off, "left behind when the module moved: " + ", ".join(off)


def test_held_tensors_finds_a_plain_tensor_attribute():
    """The check itself: a table kept outside the buffers is reported."""
    class Leaky(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = nn.Linear(2, 2)
            self.table = torch.zeros(3)

    m = Leaky().to(DEVICE)
    with pytest.raises(AssertionError, match="module.table on cpu"):
        assert_all_on_device(m)


def test_sid_generator_tensors_follow_the_module(tmp_path, monkeypatch):
    """training_step indexes the trie's child tables with on-device node ids (trie_softmax)."""
    from lib.sid import training

    codes, meta = sid_codes()
    vocab = SidVocab.from_meta(codes, meta, user_buckets=3)
    train, val = cycle_split(n_users=10)
    cfg = GPT2SidConfig(SidModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=8, user_buckets=3),
                        SidTrainConfig(batch_size=8, device="cpu"), DecodeConfig(beam_width=10, batch_size=4), 10)
    monkeypatch.setattr(training, "fit_early_stopping", place_instead_of_training)
    with pytest.raises(Placed) as placed:
        training.fit(cfg, vocab, meta, train, val, str(tmp_path / "ck"), progress=False)
    module = placed.value.args[0]
    assert module.trie is not None
    assert_all_on_device(module)


@pytest.mark.parametrize("backbone", ["sasrec", "gpt2"])
@pytest.mark.parametrize("representation", ["id", "content_plus_id", "sid_plus_id", "sid_bigram"])
def test_seqrec_tensors_follow_the_module(tmp_path, monkeypatch, backbone, representation):
    """Content, codes and cold-item masks are read by every step's item matrix."""
    from lib.models import training

    n_items = 24
    train, val = cycle_split(n_users=10, n_items=n_items)
    rng = np.random.default_rng(0)
    codes = np.stack([np.arange(n_items + 1) % 4, np.arange(n_items + 1) // 4], axis=1)
    codes[0] = -1
    warm = np.zeros(n_items + 1, dtype=bool)
    warm[train["item"].unique()] = True
    features = ItemFeatures(content=rng.normal(size=(n_items + 1, 8)).astype(np.float32), codes=codes, warm=warm)
    cfg = SeqRecConfig(ModelConfig(d_model=8, n_layers=1, max_len=8), TrainConfig(batch_size=8, device="cpu"), 5)
    monkeypatch.setattr(training, "fit_early_stopping", place_instead_of_training)
    with pytest.raises(Placed) as placed:
        training.fit(backbone, representation, cfg, train, val, n_items, features, str(tmp_path / "ck"),
                     progress=False)
    assert_all_on_device(placed.value.args[0])


def test_native_bfloat16_reads_the_cpu_flags():
    from lib.trainer import native_bfloat16
    avx2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
    assert not native_bfloat16(avx2)
    assert native_bfloat16(avx2.replace("avx2", "avx2 avx512f avx512_bf16"))
    assert native_bfloat16(avx2.replace("avx2", "avx2 amx_bf16 amx_tile"))
    assert native_bfloat16("Features\t: fp asimd bf16 i8mm\n") and not native_bfloat16("Features\t: fp asimd\n")
    assert native_bfloat16("")  # nothing to read: no warning


def test_emulated_bfloat16_is_warned_about(monkeypatch, caplog):
    import lib.trainer as trainer
    monkeypatch.setattr(trainer, "native_bfloat16", lambda: False)
    for tc, warned in ((TrainConfig(ce_dtype="bfloat16", device="cpu"), True),
                       (TrainConfig(ce_dtype="float32", device="cpu"), False),
                       (SidTrainConfig(precision="bf16-mixed", device="cpu"), True),
                       (SidTrainConfig(precision="32-true", device="cpu"), False)):
        caplog.clear()
        trainer.warn_if_emulated_bfloat16(tc)
        assert ("no bfloat16 arithmetic" in caplog.text) == warned, tc
    monkeypatch.setattr(trainer, "native_bfloat16", lambda: True)
    caplog.clear()
    trainer.warn_if_emulated_bfloat16(TrainConfig(ce_dtype="bfloat16", device="cpu"))
    assert not caplog.text


def test_machine_facts_name_the_cpu_kernels_and_threads():
    from lib.trainer import machine
    torch.set_num_threads(1)
    facts = machine("cpu")
    assert facts["threads"] == 1 and facts["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert isinstance(facts["cpu"], str) and facts["cpu_bf16"] in (True, False, None) and "gpu" not in facts
