"""The spec's ``losses`` as one ``nn.Module``, and the criterion behind each head.

* :mod:`.build` — ``build_loss``: each criterion times its ``weight``, summed; ``CRITERIA`` maps a loss name to
  its implementation (which tasks and heads take it comes from the component registry); classification and
  segmentation criteria (cross-entropy, focal).
* :mod:`.detection` — ``retinanet_loss`` and ``yolox_loss``, with the box IoU and focal helpers they share.
* :mod:`.yolo` — ``yolov9_loss`` and ``yolofastest_loss``.
* :mod:`.detr` — ``detr_loss``: Hungarian matching for RT-DETR.
* :mod:`.zoo` — losses of single zoo models: ``pidnet_loss``, ``rtmcc_loss``.
"""

from .build import CRITERIA, CombinedLoss, build_loss, default_loss

__all__ = ["CRITERIA", "CombinedLoss", "build_loss", "default_loss"]
