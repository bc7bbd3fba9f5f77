"""What works on a compiled or trained model, each behind one ``npc`` command.

* :mod:`.summary` — ``npc summary``: shape, parameters and FLOPs per component; parameter counts for docs.
* :mod:`.export` — ``npc export``: ONNX, ExportedProgram or fx, verified against eager before it is written.
* :mod:`.quantize` — ``npc export --quantize int8``: calibrated static int8 ONNX, written if accuracy holds.
* :mod:`.fuse` — BatchNorm folding and RepConv merging before export.
* :mod:`.check_weights` — ``npc check-weights``: would these weights load, and if not, where not.
* :mod:`.infer` — ``npc evaluate`` and ``npc predict`` on torch weights or an exported ONNX file.
* :mod:`.onnx_model` — an exported ONNX file run through onnxruntime like the torch model.
* :mod:`.drawing` — boxes, masks and keypoints drawn onto predicted images.
* :mod:`.run_extras` — what ``logging.yaml`` asks for at the end of a run (sample predictions, ONNX export).
* :mod:`.zoo_table` — ``npc list --zoo``.

Names are imported on first use: ``import npc.runtime.tools`` loads neither onnxruntime nor the models.
"""

from .. import lazy_exports

_EXPORTS = {
    "build_model": "summary",
    "summarize": "summary",
    "parameter_counts": "summary",
    "ExportOptions": "export",
    "export_model": "export",
    "export_target": "export",
    "QuantizeOptions": "quantize",
    "quantize_path": "quantize",
    "fuse_bn_": "fuse",
    "merge_repconv_": "fuse",
    "check_shapes": "check_weights",
    "evaluate_weights": "infer",
    "evaluate_onnx_file": "infer",
    "predict_images": "infer",
    "OnnxModel": "onnx_model",
    "is_onnx": "onnx_model",
    "zoo_rows": "zoo_table",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
