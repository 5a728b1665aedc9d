"""Every op of the IR, defined once. Importing this package registers them all in `REGISTRY`, and each op class is
`bmc.ops.<Name>`: a module's `__all__` lists its ops."""

from bmc.ops import (
    attention,
    conv,
    elementwise,
    gather,
    linalg,
    losses,
    nn,
    norm,
    random,
    reduce,
    resize,
    rnn,
    scan,
    shape,
)
from bmc.ops.attention import *  # noqa: F403
from bmc.ops.base import REGISTRY, NotDifferentiable, Op
from bmc.ops.conv import *  # noqa: F403
from bmc.ops.elementwise import *  # noqa: F403
from bmc.ops.gather import *  # noqa: F403
from bmc.ops.linalg import *  # noqa: F403
from bmc.ops.losses import *  # noqa: F403
from bmc.ops.nn import *  # noqa: F403
from bmc.ops.norm import *  # noqa: F403
from bmc.ops.random import *  # noqa: F403
from bmc.ops.reduce import *  # noqa: F403
from bmc.ops.resize import *  # noqa: F403
from bmc.ops.rnn import *  # noqa: F403
from bmc.ops.scan import *  # noqa: F403
from bmc.ops.shape import *  # noqa: F403

__all__ = ["REGISTRY", "NotDifferentiable", "Op", *attention.__all__, *conv.__all__, *elementwise.__all__,
           *gather.__all__, *linalg.__all__, *losses.__all__, *nn.__all__, *norm.__all__, *random.__all__,
           *reduce.__all__, *resize.__all__, *rnn.__all__, *scan.__all__, *shape.__all__]
