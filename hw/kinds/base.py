"""What every layer kind provides, and the registry the rest of pqhw iterates instead of naming kinds.

A kind is one pydantic class (its fields are what graph.json stores) in one module of hw/kinds, registered
under its `kind` name. It owns everything about itself: reading itself from FINN's node (`from_finn`), its
numpy reference (`reference`), its RTL block and parameters (`rtl`), what the estimator prices in that
block (`features`), its cycles per frame and its legal foldings (`cycles`, `fold_options`), its row in
compile.json (`report_row`) and the cocotb testbench that proves its block (`testbench`).
"""
from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from common.errors import UserError

# kind name -> class; filled by @register as hw.kinds imports each module of the package.
KINDS: dict[str, type["LayerKind"]] = {}


def register(cls: type["LayerKind"]) -> type["LayerKind"]:
    name = cls.model_fields["kind"].default
    if name in KINDS:
        raise TypeError(f"layer kind {name!r} registered twice ({KINDS[name].__module__}, {cls.__module__})")
    KINDS[name] = cls
    return cls


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def finn_attrs(node) -> dict:
    """A FINN/QONNX custom node's attributes by name, with the op's own defaults applied. Attributes the op
    does not declare are left out (FINN's InferPool sets Pool's cpp_interface, which only Pool_hls declares)."""
    from qonnx.custom_op.registry import getCustomOp

    inst = getCustomOp(node)
    declared = inst.get_nodeattr_types()
    return {a.name: inst.get_nodeattr(a.name) for a in node.attribute if a.name in declared}


def finn_ints(arr, what: str) -> np.ndarray:
    """An initializer that must hold integers after streamlining (weights, thresholds)."""
    a = np.asarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
        raise UserError(f"{what}: values are not integers; the graph is not fully streamlined")
    return a.astype(np.int64)


class LayerKind(BaseModel):
    """One streaming layer. Subclasses set `kind` (a Literal), the class variables below and the methods."""

    model_config = ConfigDict(extra="forbid")
    name: str
    pe: int = 1

    finn_ops: ClassVar[tuple[str, ...]] = ()        # FINN HW op types this kind reads
    rtl_modules: ClassVar[dict[str, list[str]]] = {}  # RTL module -> the hand-written modules it instantiates
    testbench: ClassVar[str] = ""                   # the sim module whose cocotb test drives this kind's block
    computes: ClassVar[bool] = False                # holds weights (counted in MACs/BOPs, the compute layers)
    ends_graph: ClassVar[bool] = False              # its output is the accelerator's result (last layer only)

    # -- reading ----------------------------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def from_finn(cls, model, node, attrs: dict, prev_dtype: str | None) -> "LayerKind":
        """The layer read from one of its FINN HW nodes (`finn_ops`); prev_dtype is the stream it gets."""

    # -- arithmetic -------------------------------------------------------------------------------------------
    @abstractmethod
    def reference(self, x: np.ndarray) -> np.ndarray:
        """Integer outputs [N, out_channels] (or [N, k]) for integer inputs [N, in_channels]."""

    @property
    def stream_dtype(self) -> str:
        """The datatype of what this layer puts on its output stream."""
        return self.output_dtype

    # -- shape and folding ------------------------------------------------------------------------------------
    @property
    @abstractmethod
    def in_channels(self) -> int:
        """Elements of one input vector."""

    @property
    @abstractmethod
    def out_channels(self) -> int:
        """Elements of one output vector."""

    @property
    def in_vectors(self) -> int:
        """Input vectors (pixels, windows) per frame, of in_channels elements each."""
        return getattr(self, "num_vectors", 1)

    @property
    def out_vectors(self) -> int:
        """Output vectors per frame, of out_channels elements each."""
        return self.in_vectors

    @property
    def frame_in(self) -> int:
        """Elements of one frame on the input stream."""
        return self.in_channels * self.in_vectors

    @property
    def frame_out(self) -> int:
        """Elements of one frame on the output stream."""
        return self.out_channels * self.out_vectors

    @property
    def in_fold(self) -> int:
        """Elements per input beat."""
        return self.pe

    @property
    def out_fold(self) -> int:
        """Elements per output beat."""
        return self.pe

    def fold_totals(self) -> dict[str, int]:
        """Each folding parameter and the count it must divide."""
        return {"pe": self.in_channels}

    @abstractmethod
    def cycles(self) -> int:
        """Cycles one frame takes in this layer alone at its folding (FINN's exp_cycles)."""

    def fold_options(self) -> list[dict]:
        """Every legal folding, fewest parallel lanes first."""
        totals = self.fold_totals()
        opts = [{}]
        for key, total in totals.items():
            opts = [{**o, key: d} for o in opts for d in divisors(total)]
        return sorted(opts, key=lambda o: (int(np.prod(list(o.values()))), o.get("pe", 1), -o.get("simd", 1)))

    def folded(self, **fold) -> "LayerKind":
        """A copy with the given folding, checked against fold_totals."""
        totals = self.fold_totals()
        for key, value in fold.items():
            if key not in totals:
                raise UserError(f"layer {self.name}: {key!r} is not a folding of a {self.kind} layer; "
                                f"accepted: {sorted(totals)}")
            if not isinstance(value, int) or isinstance(value, bool) or value < 1 or totals[key] % value:
                raise UserError(f"layer {self.name}: {key} = {value!r} does not divide {totals[key]}; "
                                f"accepted: {divisors(totals[key])}")
        return self.model_copy(update=fold)

    # -- hardware ---------------------------------------------------------------------------------------------
    @abstractmethod
    def rtl(self, in_fmt, prefix: str):
        """The block (hw.layer_rtl.LayerRTL) for input elements in `in_fmt`; memory files named prefix_*."""

    @classmethod
    @abstractmethod
    def features(cls, module: str, params: dict, family: str) -> tuple[dict, list, int]:
        """(features, memories, dsps) of one of this kind's RTL blocks, for hw.estimate to price."""

    def weight_memories(self) -> tuple[str, ...]:
        """The weight storages this layer can be built with (none for a layer without weights)."""
        return ()

    def as_estimated(self) -> "LayerKind":
        """The layer as the estimator plans it (a kind may price a variant of itself, see MVAU)."""
        return self

    def estimate_notes(self) -> dict:
        """Extra columns of this layer's row in estimate.json."""
        return {}

    def summary(self, params: dict) -> str:
        return f"layer {self.name}, PE={self.pe}"

    def report_row(self) -> dict:
        """The kind's own columns in compile.json's layer table."""
        return {"mh": self.out_channels, "mw": self.in_channels, "simd": None, "weight_dtype": None}


class ImageStream:
    """Mixin of the kinds that move an image SIMD channels a beat, in and out (pad, swg): one folding, SIMD."""

    @property
    def in_fold(self) -> int:
        return self.simd

    @property
    def out_fold(self) -> int:
        return self.simd

    def fold_totals(self) -> dict[str, int]:
        return {"simd": self.channels}


class MatrixShape:
    """Shape and folding of a matrix-vector kind (fields mh, mw, pe, simd, num_vectors): MH outputs folded by
    PE, MW inputs folded by SIMD, one matrix-vector product per input vector."""

    @property
    def in_channels(self) -> int:
        return self.mw

    @property
    def out_channels(self) -> int:
        return self.mh

    @property
    def in_fold(self) -> int:
        return self.simd

    def fold_totals(self) -> dict[str, int]:
        return {"pe": self.mh, "simd": self.mw}

    def cycles(self) -> int:
        return (self.mh // self.pe) * (self.mw // self.simd) * self.num_vectors
