"""fvcore is needed for the lr schedules only: the package imports without it."""

import pickle
import subprocess
import sys
import textwrap

from fvcore.common.param_scheduler import CompositeParamScheduler, CosineParamScheduler

from astrodet.config import locate
from astrodet.modeling import optim

HIDDEN_FVCORE = textwrap.dedent(
    """
    import sys
    sys.modules["fvcore"] = None  # any import of fvcore now raises ImportError
    import astrodet.modeling
    from astrodet.modeling import get_optimizer_params, optim
    import torch
    groups = get_optimizer_params(model=torch.nn.Linear(2, 2), base_lr=0.1, weight_decay=0.05)
    assert sum(len(g["params"]) for g in groups) == 2, groups
    try:
        optim.WarmupParamScheduler
    except ImportError as e:
        assert "fvcore" in str(e), e
        print("schedules need fvcore")
    else:
        raise AssertionError("WarmupParamScheduler built without fvcore")
    assert "fvcore" not in {m.split(".")[0] for m in sys.modules if sys.modules[m] is not None}
    print("imported without fvcore")
    """
)


def test_package_imports_with_fvcore_hidden():
    proc = subprocess.run(
        [sys.executable, "-c", HIDDEN_FVCORE], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "imported without fvcore" in proc.stdout
    assert "schedules need fvcore" in proc.stdout


def test_warmup_param_scheduler_is_fvcore_class_made_once():
    cls = optim.WarmupParamScheduler
    assert issubclass(cls, CompositeParamScheduler)
    assert optim.WarmupParamScheduler is cls
    assert cls.__module__ == "astrodet.modeling.optim"
    assert cls.__qualname__ == "WarmupParamScheduler"
    # configs name it by its path, as config.yaml writes it
    assert locate("astrodet.modeling.optim.WarmupParamScheduler") is cls
    s = cls(CosineParamScheduler(1.0, 0.0), warmup_factor=0.01, warmup_length=0.1)
    again = pickle.loads(pickle.dumps(s))
    assert type(again) is cls
    assert again(0.5) == s(0.5)
