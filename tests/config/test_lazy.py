import textwrap
from collections import OrderedDict

import pytest
import torch
from omegaconf import DictConfig

from astrodet.config import L, LazyCall, LazyConfig, instantiate


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def tree(tmp_path):
    _write(
        tmp_path / "common" / "models" / "net.py",
        """
        import torch
        from astrodet.config import LazyCall as L

        model = L(torch.nn.Linear)(in_features=4, out_features=2)
        sizes = dict(a=(1, 2), b=[3, 4])
        """,
    )
    _write(tmp_path / "common" / "train.py", "train = dict(max_iter=10, seed=0, device='auto')\n")
    _write(
        tmp_path / "exp.py",
        """
        from .common.models.net import model, sizes
        from .common.train import train
        from .common import train as train_module

        model.out_features = 3
        train.max_iter = 20
        _private = dict(x=1)
        helper_value = 5
        """,
    )
    return tmp_path


def test_lazycall_records_call():
    cfg = L(torch.nn.Linear)(in_features=3, out_features=1)
    assert isinstance(cfg, DictConfig)
    assert cfg._target_ is torch.nn.Linear and cfg.in_features == 3
    assert LazyCall is L
    with pytest.raises(TypeError):
        L(3)


def test_load_relative_imports_and_isolation(tree):
    cfg = LazyConfig.load(tree / "exp.py")
    assert set(cfg) == {"model", "sizes", "train"}
    assert cfg.train.max_iter == 20 and cfg.model.out_features == 3
    assert list(cfg.sizes.a) == [1, 2]
    # the imported file is executed afresh on each load: edits do not leak
    base = LazyConfig.load(tree / "common" / "models" / "net.py")
    assert base.model.out_features == 2
    assert LazyConfig.load(tree / "exp.py", keys="train").max_iter == 20


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.py"):
        LazyConfig.load(tmp_path / "missing.py")
    bad = _write(tmp_path / "bad.py", "from .nothere import x\n")
    with pytest.raises(ImportError, match="nothere.py does not exist"):
        LazyConfig.load(bad)
    other = _write(tmp_path / "cfg.txt", "x")
    with pytest.raises(ValueError, match=r"\.py or \.yaml"):
        LazyConfig.load(other)


def test_apply_overrides_parses_values(tree):
    cfg = LazyConfig.load(tree / "exp.py")
    LazyConfig.apply_overrides(
        cfg,
        [
            "train.max_iter=100",
            "train.seed=1e-3",
            "train.device=cpu",
            "+model.bias=false",
            "train.amp=null" if "amp" in cfg.train else "+train.amp=null",
            "sizes.b=[5,6,7]",
            "+train.new_key=none",
            "train.seed=None",
        ],
    )
    assert cfg.train.max_iter == 100 and isinstance(cfg.train.max_iter, int)
    assert cfg.train.device == "cpu"
    assert cfg.model.bias is False
    assert cfg.train.amp is None and cfg.train.seed is None
    assert list(cfg.sizes.b) == [5, 6, 7]
    assert cfg.train.new_key == "none"  # the string, not None


def test_apply_overrides_bad_key(tree):
    cfg = LazyConfig.load(tree / "exp.py")
    with pytest.raises(KeyError) as err:
        LazyConfig.apply_overrides(cfg, ["train.max_itr=5"])
    msg = str(err.value)
    assert "'train.max_itr' does not exist" in msg and "train.max_iter" in msg
    with pytest.raises(KeyError, match="'nothing' does not exist"):
        LazyConfig.apply_overrides(cfg, ["nothing.deeper=1"])
    with pytest.raises(KeyError, match="holds a value"):
        LazyConfig.apply_overrides(cfg, ["train.max_iter.x=1"])
    with pytest.raises(ValueError, match="key=value"):
        LazyConfig.apply_overrides(cfg, ["train.max_iter"])


def test_save_load_round_trip(tree, tmp_path):
    cfg = LazyConfig.load(tree / "exp.py")
    cfg.model.in_features = "${train.max_iter}"
    out = LazyConfig.save(cfg, tmp_path / "out" / "config.yaml")
    back = LazyConfig.load(out)
    assert back.model._target_ == "torch.nn.Linear"
    assert back.train == cfg.train and list(back.sizes.a) == [1, 2]
    model = instantiate(back.model)
    assert isinstance(model, torch.nn.Linear) and model.in_features == 20
    assert not list((tmp_path / "out").glob("*.tmp*"))


def test_save_refuses_unsaveable(tmp_path):
    cfg = DictConfig({"a": L(lambda: 1)()}, flags={"allow_objects": True})
    with pytest.raises(ValueError, match="importable"):
        LazyConfig.save(cfg, tmp_path / "x.yaml")
    cfg = DictConfig({"opt": {"model": torch.nn.Linear(1, 1)}}, flags={"allow_objects": True})
    with pytest.raises(ValueError, match="'opt.model'"):
        LazyConfig.save(cfg, tmp_path / "y.yaml")
    assert not (tmp_path / "y.yaml").exists()


def test_instantiate_recursive():
    built = torch.nn.ReLU()
    cfg = L(torch.nn.Sequential)(
        a=L(torch.nn.Linear)(in_features=2, out_features=2),
    )
    cfg = DictConfig(
        {
            "seq": L(OrderedDict)(),
            "net": L("torch.nn.Linear")(in_features=2, out_features=3),
            "plain": {"xs": [L(torch.nn.Identity)(), 1], "obj": built},
            "t": (1, 2),
        },
        flags={"allow_objects": True},
    )
    out = instantiate(cfg)
    assert isinstance(out, dict) and isinstance(out["net"], torch.nn.Linear)
    assert out["net"].out_features == 3
    assert isinstance(out["plain"]["xs"][0], torch.nn.Identity) and out["plain"]["xs"][1] == 1
    assert out["plain"]["obj"] is built  # already built objects pass through
    assert out["t"] == [1, 2] and isinstance(out["seq"], OrderedDict)
    assert instantiate({"a": (1, 2)}) == {"a": (1, 2)}  # plain tuples stay tuples
    with pytest.raises(TypeError, match="Linear"):
        instantiate(L(torch.nn.Linear)(in_features=2, wrong=1))
