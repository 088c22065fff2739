"""Quality passes: what context buys, measured on the same length axis as its cost.

Untimed passes that share the sweep's loaded model and lengths: loss of fixed target
windows vs the context read before them (:mod:`.loss`), needle retrieval over length ×
depth (:mod:`.needle`), and what follows from both (:mod:`.effective`). Importing this
package imports neither torch nor Qt: reports read quality results without them.
"""

from ctxscope.core.quality.config import KINDS, TEXTS, QualityConfig
from ctxscope.core.quality.records import LossPoint, NeedleTrial, QualityPoint, QualityResult

__all__ = ["KINDS", "TEXTS", "LossPoint", "NeedleTrial", "QualityConfig", "QualityPoint", "QualityResult"]
