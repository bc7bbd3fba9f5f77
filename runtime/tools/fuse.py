"""Fold inference-mode BatchNorm into the convolution before it: ``fuse_bn_(model)``, in place.

A BatchNorm in eval mode is an affine map per channel, ``y = (x - mean) / sqrt(var + eps) * gamma + beta``; when
its input is a convolution's output and nothing else reads that output, the map folds into the conv's weight and
bias, and the BatchNorm becomes ``nn.Identity``. The model keeps its class, forward and output; it is faster, but
it is an inference model: its state_dict has no ``norm`` entries any more (load weights *before* fusing) and
training it again would train without normalisation.

Which conv feeds which BatchNorm is found two ways:

* ``nn.Sequential`` children in a row (conv, then norm) — what npc's ``ConvLayer`` emits; always safe;
* a ``torch.fx`` trace of the whole model, for pairs that are separate attributes wired together in ``forward``:
  a pair is folded only if *every* call of the BatchNorm takes the output of a call of that same conv, and every
  call of the conv is read by that BatchNorm alone. Models that do not trace keep the Sequential pairs only.

``npc compile --fuse`` emits the first rule alone into model.py (``compiler/templates/block_fuse.py.jinja``: plain
torch, since a compiled model never imports npc); this module is what ``npc export`` uses.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["fuse_bn_", "merge_repconv_"]

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_PAIRS = {nn.Conv1d: nn.BatchNorm1d, nn.Conv2d: nn.BatchNorm2d, nn.Conv3d: nn.BatchNorm3d}


def fuse_bn_(model: nn.Module) -> int:
    """Fold every foldable (conv, BatchNorm) pair of ``model`` in place; returns how many were folded.

    The model is put in eval mode first (folding uses the running statistics).
    """
    model.eval()
    modules = dict(model.named_modules())
    pairs = _sequential_pairs(model)
    taken = {norm for _, norm in pairs} | {conv for conv, _ in pairs}
    pairs += [(c, n) for c, n in _traced_pairs(model, modules) if c not in taken and n not in taken]
    shared = _shared(model)  # a module reachable under two names could be read elsewhere: leave it alone
    pairs = [(c, n) for c, n in pairs if id(modules[c]) not in shared and id(modules[n]) not in shared]
    for conv_name, norm_name in pairs:
        _fold(modules[conv_name], modules[norm_name])
        _replace(model, norm_name, nn.Identity())
    return len(pairs)


def _shared(model: nn.Module) -> set[int]:
    seen: dict[int, int] = {}
    for _, module in model.named_modules(remove_duplicate=False):
        seen[id(module)] = seen.get(id(module), 0) + 1
    return {key for key, count in seen.items() if count > 1}


def _foldable(conv: nn.Module, norm: nn.Module) -> bool:
    return (
        type(conv) in _PAIRS
        and type(norm) is _PAIRS[type(conv)]
        and norm.track_running_stats
        and norm.running_mean is not None
        and norm.num_features == conv.out_channels
    )


def _sequential_pairs(model: nn.Module) -> list[tuple[str, str]]:
    pairs = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (conv_key, conv), (norm_key, norm) in zip(children, children[1:]):
            if _foldable(conv, norm):
                prefix = f"{name}." if name else ""
                pairs.append((prefix + conv_key, prefix + norm_key))
    return pairs


def _traced_pairs(model: nn.Module, modules: dict[str, nn.Module]) -> list[tuple[str, str]]:
    """(conv, norm) module names wired conv → norm in every call, found from a torch.fx trace (or [] if none)."""
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # not traceable (data-dependent control flow): the Sequential pairs still fold
        return []
    conv_calls: dict[str, list] = {}
    norm_calls: dict[str, list] = {}
    for node in graph.nodes:
        if node.op != "call_module":
            continue
        module = modules.get(node.target)
        if isinstance(module, _CONVS):
            conv_calls.setdefault(node.target, []).append(node)
        elif isinstance(module, _NORMS):
            norm_calls.setdefault(node.target, []).append(node)
    pairs = []
    for norm_name, calls in norm_calls.items():
        sources = {call.args[0].target if _is_conv_call(call.args[0], conv_calls) else None for call in calls}
        if len(sources) != 1 or None in sources:
            continue
        conv_name = sources.pop()
        if not _foldable(modules[conv_name], modules[norm_name]):
            continue
        only_this_norm = all(
            len(call.users) == 1 and next(iter(call.users)).target == norm_name for call in conv_calls[conv_name]
        )
        if only_this_norm and all(len(call.args) == 1 and not call.kwargs for call in calls):
            pairs.append((conv_name, norm_name))
    return pairs


def _is_conv_call(node, conv_calls: dict[str, list]) -> bool:
    return isinstance(node, torch.fx.Node) and node.op == "call_module" and node.target in conv_calls


@torch.no_grad()
def _fold(conv: nn.Module, norm: nn.Module) -> None:
    scale = norm.weight if norm.weight is not None else torch.ones_like(norm.running_mean)
    shift = norm.bias if norm.bias is not None else torch.zeros_like(norm.running_mean)
    factor = scale * torch.rsqrt(norm.running_var + norm.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    weight = conv.weight * factor.reshape([-1] + [1] * (conv.weight.dim() - 1))
    conv.weight = nn.Parameter(weight.to(conv.weight.dtype), requires_grad=conv.weight.requires_grad)
    conv.bias = nn.Parameter(((bias - norm.running_mean) * factor + shift).to(conv.weight.dtype))


def merge_repconv_(model: nn.Module) -> int:
    """Merge each RepVGG-style ``RepConv`` (GELAN, YOLOv9: a 3x3 conv-BN + a 1x1 conv-BN + an optional identity BN,
    summed, then activated) into one 3x3 conv with bias followed by the activation, in place; returns how many.

    Each branch is an affine map of the same input, so their sum is one: the 1x1 kernel sits at the centre of a
    3x3 one, the identity is a 3x3 kernel with 1 at the centre of each channel's own slice, and each branch's
    BatchNorm folds into its kernel (eval-mode statistics). Only the layout npc emits is merged (stride 1, no
    groups or dilation, "same" padding); anything else is left as it is.
    """
    model.eval()
    merged = 0
    for name, module in list(model.named_modules()):
        branches = _repconv_branches(module)
        if branches is None:
            continue
        weight, bias = _merged_kernel(*branches)
        conv = nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1, bias=True)
        with torch.no_grad():
            conv.weight.copy_(weight)
            conv.bias.copy_(bias)
        _replace(model, name, nn.Sequential(conv, module.act))
        merged += 1
    return merged


def _repconv_branches(module: nn.Module):
    """(3x3 conv, its norm, 1x1 conv, its norm, identity norm or None) of an npc RepConv, else None."""
    if type(module).__name__ != "RepConv" or not hasattr(module, "act"):
        return None
    try:
        conv3, norm3 = module.conv1.block.conv, module.conv1.block.norm
        conv1, norm1 = module.conv2.block.conv, module.conv2.block.norm
    except AttributeError:
        return None
    identity = getattr(module, "rbr_identity", None)
    shapes_ok = (
        conv3.kernel_size == (3, 3)
        and conv3.padding == (1, 1)
        and conv1.kernel_size == (1, 1)
        and conv1.padding == (0, 0)
        and all(c.stride == (1, 1) and c.groups == 1 and c.dilation == (1, 1) for c in (conv3, conv1))
        and conv3.in_channels == conv3.out_channels == conv1.in_channels == conv1.out_channels
    )
    norms_ok = all(_foldable(c, n) for c, n in ((conv3, norm3), (conv1, norm1))) and (
        identity is None or (type(identity) is nn.BatchNorm2d and identity.num_features == conv3.out_channels)
    )
    return (conv3, norm3, conv1, norm1, identity) if shapes_ok and norms_ok else None


@torch.no_grad()
def _merged_kernel(conv3, norm3, conv1, norm1, identity) -> tuple[torch.Tensor, torch.Tensor]:
    weight, bias = _folded(conv3.weight, conv3.bias, norm3)
    one, one_bias = _folded(conv1.weight, conv1.bias, norm1)
    weight = weight + nn.functional.pad(one, [1, 1, 1, 1])
    bias = bias + one_bias
    if identity is not None:
        channels = conv3.out_channels
        eye = torch.zeros(channels, channels, 3, 3, dtype=weight.dtype)
        eye[torch.arange(channels), torch.arange(channels), 1, 1] = 1.0
        eye_weight, eye_bias = _folded(eye, None, identity)
        weight, bias = weight + eye_weight, bias + eye_bias
    return weight, bias


def _folded(weight: torch.Tensor, bias: torch.Tensor | None, norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel and bias of ``norm(conv(x))`` for a conv with ``weight`` and ``bias`` (eval statistics)."""
    scale = norm.weight if norm.weight is not None else torch.ones_like(norm.running_mean)
    shift = norm.bias if norm.bias is not None else torch.zeros_like(norm.running_mean)
    factor = scale * torch.rsqrt(norm.running_var + norm.eps)
    base = bias if bias is not None else torch.zeros_like(norm.running_mean)
    return weight * factor.reshape(-1, 1, 1, 1), (base - norm.running_mean) * factor + shift


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)
