"""Internal columns of the compiled plan, shared by the compiler, the Spark plan and the kernel
(a module of its own so that neither pulls in the other's imports)."""

from typing import Final

TIME: Final = "_t"  # a row's time: the spine's event time, or the source row's time
SPINE: Final = "_spine"  # true on the rows features are computed for
BLOCK: Final = "_block"  # which source block a row belongs to (0: the spine dataset)
