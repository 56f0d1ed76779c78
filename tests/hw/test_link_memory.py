"""Where the links between layers keep their beats: a FIFO of 512 bits or more in block RAM, no FIFO where the
consumer takes its whole vector in one beat from a collecting width converter; both exact and at the cycles
of hw.cycles in simulation, and the block RAM is what synthesis makes of it."""
import pytest

from hw.emit import LINK_BLOCK_MIN_BITS, plan
from hw.estimate import place_memory
from hw.resources import Memory
from sim import graphs
from sim.verify import verify


def _one_beat_graph():
    # MVAU_1 reads all 16 inputs in one beat (SIMD = MW) from a 2 -> 16 collecting converter, then replays
    # them for its 12 neuron folds; MVAU_0 sets the interval: (16/2)(32/8) = 32 cycles.
    return graphs.mlp(1, "xnor", [32, 16, 12, 10], [(2, 8), (1, 16), (5, 4)], "BINARY", "BINARY", "BINARY",
                      weight_memory="rom")


def _block_graph():
    # MVAU_1 reads 16 2-bit elements a beat over 8 beats a vector: its link FIFO holds 2 x 8 beats of 32 bits,
    # 512 bits, in block RAM; MVAU_1 sets the interval: (32/4)(128/16) = 64 cycles.
    return graphs.mlp(2, "ternary", [16, 128, 32, 10], [(8, 16), (4, 16), (2, 8)], "UINT2", "INT2", "UINT2")


def test_link_placement_rules():
    one = plan(_one_beat_graph())
    assert [s.dwc for s in one[:3]] == [True, True, False]
    assert [s.fifo_depth for s in one[:3]] == [0, 2 * 12 // 4, 2 * 2]   # the one-beat link has none
    blk = plan(_block_graph())
    bits = [s.fifo_depth * s.fifo_width for s in blk[:3]]
    assert bits[0] == 2 * 8 * 32 >= LINK_BLOCK_MIN_BITS
    assert [s.fifo_block for s in blk[:3]] == [b >= LINK_BLOCK_MIN_BITS for b in bits]
    assert not all(s.fifo_block for s in blk[:3])


def test_estimate_counts_a_block_link_as_block_ram():
    small = Memory("link_fifo", 32, 16, rom=False)
    assert "brams" not in place_memory("ecp5", small)   # distributed RAM by size alone
    assert place_memory("ecp5", Memory("link_fifo", 32, 16, rom=False, block=True))["brams"] == 1


@pytest.mark.sim
@pytest.mark.parametrize("make,cycles", [(_one_beat_graph, 32), (_block_graph, 64)])
def test_links_exact_at_expected_cycles(make, cycles, tmp_path):
    graph = make()
    graph.save(tmp_path / "graph.json")
    rec = verify(tmp_path, vectors=40, sim="verilator", seed=5)
    assert rec["mismatches"] == 0 and rec["vectors"] == 40
    assert rec["expected_cycles_per_frame"] == cycles
    assert rec["cycles_per_frame"] == cycles
    top = (tmp_path / "rtl" / "pqhw_top.sv").read_text()
    if make is _block_graph:
        assert ".BLOCK(1)" in top
    else:
        assert "no FIFO" in top


@pytest.mark.bitstream
def test_block_fifo_synthesises_to_block_ram(tmp_path):
    """Yosys synth_ecp5: the same 32 x 16 FIFO takes DP16KDs with BLOCK, distributed RAM without."""
    from bench.rtllib_compare import pqhw_design, synthesise

    cells = {}
    for block in (0, 1):
        design = pqhw_design(f"fifo{block}", "pqhw_fifo", {"WIDTH": 32, "DEPTH": 16, "BLOCK": block}, 32, 32,
                             count=True)
        res = synthesise(design, tmp_path / f"b{block}")
        assert res["ok"], res.get("error")
        cells[block] = res["cells"]
    assert cells[1].get("DP16KD", 0) >= 1 and not cells[1].get("TRELLIS_DPR16X4")
    assert not cells[0].get("DP16KD") and cells[0].get("TRELLIS_DPR16X4", 0) >= 1

