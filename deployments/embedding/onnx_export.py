"""Export a sentence-transformers model's transformer to ONNX, once, into the model cache.

The export needs torch; running the exported model needs only onnxruntime and tokenizers. The
export runs in a child process (torch, once imported, stays mapped for a process's life: about 350
MB in a replica that exported in its own process), and under a lock on the cache folder, so the
Ingress and the Embedder starting together on a cold cache export once. Run
`python -m deployments.embedding.onnx_export` at image build time to ship a warm cache.
"""

import contextlib
import fcntl
import hashlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported only in the export's child process
    import torch

ONNX_OPSET = 17
# Part of the cache key: a change to how the model is exported makes caches of the old export stale.
# 2: attention exported as plain matrix products (below), not torch's fused SDPA.
# 3: texts packed into lines where the model allows (packs_texts), not only a padded line each.
EXPORT_REVISION = 3
REPO = Path(__file__).resolve().parents[2]  # where `python -m deployments...` runs
# The export's inputs: several texts in a line, each attending to itself only (no padding to run), or
# one text a line, padded to the longest. The backend reads which from the model (OnnxBackend._run).
PACKED_INPUTS = ["input_ids", "position_ids", "segment_ids"]
PADDED_INPUTS = ["input_ids", "attention_mask", "token_type_ids"]


def cached_onnx_path(model_path: Path, cache_dir: Path) -> Path:
    """Where the export of this model folder lives: keyed by the folder and its weights' size and time."""
    weights = sorted(model_path.glob("*.safetensors")) + sorted(model_path.glob("pytorch_model.bin"))
    stamp = "|".join(f"{w.name}:{w.stat().st_size}:{w.stat().st_mtime_ns}" for w in weights)
    key = hashlib.sha256(
        f"{model_path.resolve()}|{stamp}|opset{ONNX_OPSET}|export{EXPORT_REVISION}".encode()
    ).hexdigest()[:16]
    return cache_dir / f"{model_path.name}-{key}" / "model.onnx"


@contextlib.contextmanager
def _exclusive(folder: Path) -> Iterator[None]:
    """Held by one process at a time (a lock on the folder itself: nothing is left behind)."""
    folder.mkdir(parents=True, exist_ok=True)
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # releases the lock


def _build_once(target: Path, build: Callable[[Path], object]) -> Path:
    """`target`, made by `build(partial_path)` unless already there: once across processes (a lock,
    then a second look) and atomically (a temporary file renamed into place), so nobody reads half."""
    if target.is_file():
        return target
    with _exclusive(target.parent):
        if target.is_file():  # another process made it while we waited
            return target
        handle, partial = tempfile.mkstemp(dir=target.parent, suffix=".onnx.partial")
        os.close(handle)
        try:
            build(Path(partial))
            os.replace(partial, target)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    return target


def export_onnx(model_path: Path, target: Path) -> Path:
    """Export unless already there, in a child process (torch stays out of this one)."""
    child = [sys.executable, "-m", "deployments.embedding.onnx_export", "--model", str(model_path), "--target"]
    return _build_once(target, lambda partial: subprocess.run([*child, str(partial)], check=True, cwd=REPO))


def _export_here(model_path: Path, target: Path) -> None:
    """The export itself, with torch, into `target` (in the child process; export_onnx renames it)."""
    from transformers import AutoModel

    # Eager attention: exported from torch's SDPA, attention is a pattern ONNX Runtime's graph
    # optimiser does not recognise; as plain matrix products it does, and fuses it. Same vectors (to
    # 2e-7); one thread, 16 SciFact passages a run: 61 -> 53 CPU ms a passage, int8 34 -> 25 ms
    # (2026-12-05, in-process, same run); short queries unchanged.
    model = AutoModel.from_pretrained(str(model_path), local_files_only=True, attn_implementation="eager").eval()
    export_model(model, target, packed=packs_texts(model))


def _packed_forward(model: "torch.nn.Module") -> "torch.nn.Module":
    """`model` taking texts packed into lines: `segment_ids` numbers each token's text within its
    line (0: padding), `position_ids` counts from 0 in each text. A token attends only to the tokens of
    its own text, so each text's hidden states are those it has alone."""
    import torch

    class Packed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(
            self, input_ids: torch.Tensor, position_ids: torch.Tensor, segment_ids: torch.Tensor
        ) -> torch.Tensor:
            same_text = segment_ids[:, None, :, None] == segment_ids[:, None, None, :]
            allowed = same_text & (segment_ids != 0)[:, None, None, :]
            # A prepared 4D mask is added to the attention scores as it is (transformers' masking_utils).
            blocked = torch.full((), torch.finfo(torch.float32).min)
            mask = torch.where(allowed, torch.zeros(()), blocked)
            output = self.model(
                input_ids=input_ids,
                attention_mask=mask,
                position_ids=position_ids,
                token_type_ids=torch.zeros_like(input_ids),
            )
            return output.last_hidden_state  # type: ignore[no-any-return]

    return Packed()


def packs_texts(model: "torch.nn.Module") -> bool:
    """Whether `model`'s hidden states for texts packed into one line equal those of each text alone:
    true of BERT's family; not of a model that numbers positions its own way (RoBERTa's start
    after the padding token's id), which is then exported for padded lines instead."""
    import torch

    lengths = [5, 9]
    ids = [torch.arange(10, 10 + n)[None] for n in lengths]  # any ids the vocabulary has
    with torch.no_grad():
        alone = [model(input_ids=i, attention_mask=torch.ones_like(i)).last_hidden_state[0] for i in ids]
        packed = _packed_forward(model)(
            torch.cat(ids, dim=1),
            torch.cat([torch.arange(n) for n in lengths])[None],
            torch.cat([torch.full((n,), k + 1) for k, n in enumerate(lengths)])[None],
        )[0]
    return bool(torch.allclose(packed, torch.cat(alone), atol=1e-4))


def export_model(model: "torch.nn.Module", target: Path, packed: bool) -> None:
    """`model` (a transformers encoder) to ONNX at `target`: taking packed lines (PACKED_INPUTS,
    _packed_forward) or padded ones (PADDED_INPUTS), how many and how long dynamic; the output is
    the last hidden state, pooled by the backend."""
    import torch

    class Padded(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
        ) -> torch.Tensor:
            output = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return output.last_hidden_state  # type: ignore[no-any-return]

    example = torch.ones((2, 8), dtype=torch.long)  # two lines: none of the shapes is traced as a constant 1
    if packed:
        wrapper, inputs = _packed_forward(model), PACKED_INPUTS
        positions = torch.tensor([[0, 1, 2, 0, 1, 2, 3, 0], [0, 1, 2, 3, 4, 0, 0, 0]])
        segments = torch.tensor([[1, 1, 1, 2, 2, 2, 2, 0], [1, 1, 1, 1, 1, 0, 0, 0]])
        arguments = (example, positions, segments)
    else:
        wrapper, inputs, arguments = Padded(), PADDED_INPUTS, (example, example, torch.zeros_like(example))
    torch.onnx.export(
        wrapper,
        arguments,
        str(target),
        input_names=inputs,
        output_names=["last_hidden_state"],
        dynamic_axes={name: {0: "lines", 1: "tokens"} for name in [*inputs, "last_hidden_state"]},
        opset_version=ONNX_OPSET,
        dynamo=False,  # the TorchScript exporter needs no onnxscript and handles BERT models
    )


# Part of the int8 model's file name: a change to how it is quantised makes the old file stale.
# 2: the first half of the layers' feed-forward down-projections stay fp32 (kept_in_fp32).
QUANTIZE_REVISION = 2


def quantized_onnx_path(exported: Path) -> Path:
    return exported.with_name(f"model-int8-r{QUANTIZE_REVISION}.onnx")


def kept_in_fp32(exported: Path) -> list[str]:
    """The matrix products left unquantised: the feed-forward down-projections (a weight with more
    rows than columns: 1,536 -> 384 in MiniLM) of the first half of the layers. Their inputs, the
    GELU's outputs, have a few large values, and dynamic quantisation scales each run's input with
    one number, so the rest lose their precision. Measured on all-MiniLM-L6-v2 (SciFact, 2026-12-07,
    README: Settings): against the fp32 model's vectors, 1 - cosine 5.3e-3 with every product in
    int8; 4.1e-3, 4.7e-3 and 4.4e-3 with layer 0's, 1's or 2's down-projection kept, 5.1-5.2e-3 with
    any one later layer's; 2.8e-3 with layers 0-2's, at about 10 % more CPU (2.4e-3 with all six, 30 %).
    """
    import onnx

    model = onnx.load(str(exported), load_external_data=False)
    shapes = {weight.name: tuple(weight.dims) for weight in model.graph.initializer}
    down = [
        node.name
        for node in model.graph.node  # in the order the layers run
        if node.op_type == "MatMul" and len(shape := shapes.get(node.input[1], ())) == 2 and shape[0] > shape[1]
    ]
    return down[: (len(down) + 1) // 2]


def quantize_onnx(exported: Path) -> Path:
    """The exported model with int8 weights (dynamic quantisation of its matrix products, per
    channel, but those kept_in_fp32), once, atomically, under the same lock; onnxruntime's own
    quantiser, no torch. Speed and retrieval quality measured in README: Performance and Retrieval
    quality."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def quantize(partial: Path) -> None:
        quantize_dynamic(
            exported,
            partial,
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=kept_in_fp32(exported),
            per_channel=True,
            weight_type=QuantType.QInt8,
        )

    return _build_once(quantized_onnx_path(exported), quantize)


def main(argv: list[str]) -> int:
    """`python -m deployments.embedding.onnx_export`: the settings' model, both exports (the image build);
    `--model FOLDER --target FILE`: that export alone, in this process (export_onnx's child)."""
    if argv[:1] == ["--model"] and argv[2:3] == ["--target"] and len(argv) == 4:
        _export_here(Path(argv[1]), Path(argv[3]))
        return 0
    from deployments.core.config import load_settings

    settings = load_settings()
    target = export_onnx(settings.model_path, cached_onnx_path(settings.model_path, settings.onnx_cache_dir))
    print(f"ONNX model ready: {target}")
    print(f"int8 ONNX model ready: {quantize_onnx(target)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
