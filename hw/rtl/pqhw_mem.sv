// Read-only parameter memory (weights, thresholds) with one cycle of read latency.
// STYLE 0 bakes the words into logic from INIT (fully unrolled layers: a constant XNOR is a wire);
// STYLE 1 is a ROM loaded from INIT_FILE with $readmemh (folded layers: maps to block/distributed RAM).
`default_nettype none

module pqhw_mem #(
    parameter int WIDTH = 8,                     // bits per word (>= 1)
    parameter int DEPTH = 1,                     // words (>= 1)
    parameter int STYLE = 0,                     // 0: constants from INIT, 1: ROM from INIT_FILE
    parameter INIT_FILE = "",                    // $readmemh file, one hex word a line (STYLE 1)
    parameter logic [WIDTH*DEPTH-1:0] INIT = '0, // word a at bits [a*WIDTH +: WIDTH] (STYLE 0)
    parameter int LOGIC_TABLE_BITS = 2048        // STYLE 0 tables up to this size register the address (see below)
) (
    input  wire logic                                  clk,
    input  wire logic                                  en,     // read enable
    input  wire logic [(DEPTH > 1 ? $clog2(DEPTH) : 1)-1:0] addr,
    output logic [WIDTH-1:0]                           rdata   // word at addr, one cycle after en
);
    if (WIDTH < 1 || DEPTH < 1) begin : g_bad_shape
        pqhw_error_mem_width_and_depth_must_be_positive u_err ();
    end
    if (STYLE != 0 && STYLE != 1) begin : g_bad_style
        pqhw_error_mem_style_must_be_0_const_or_1_rom u_err ();
    end

    if (STYLE == 0) begin : g_const
        if (DEPTH == 1) begin : g_single
            always_ff @(posedge clk) begin
                rdata <= INIT;
            end
        end else if (WIDTH * DEPTH <= LOGIC_TABLE_BITS) begin : g_small_table
            // Synthesis keeps a table this small in LUTs. Its address is registered, not the word: the same
            // cycle behaviour for constant words, and the LUT multiplexer starts at a flip-flop instead of
            // after the caller's address logic (a 640-word table behind an address counter took 7 ns on ECP5).
            logic [(DEPTH > 1 ? $clog2(DEPTH) : 1)-1:0] addr_q;
            always_ff @(posedge clk) begin
                if (en) begin
                    addr_q <= addr;
                end
            end
            assign rdata = INIT[addr_q*WIDTH +: WIDTH];
        end else begin : g_table
            // A large table may become a block RAM ROM: the word register is the RAM's read register, and the
            // caller's next register can become its output register (hw/ecp5_outreg.py).
            always_ff @(posedge clk) begin
                if (en) begin
                    rdata <= INIT[addr*WIDTH +: WIDTH];
                end
            end
        end
    end else begin : g_rom
        logic [WIDTH-1:0] rom [DEPTH];
        initial begin
            $readmemh(INIT_FILE, rom);
        end
        always_ff @(posedge clk) begin
            if (en) begin
                rdata <= rom[addr];
            end
        end
    end
endmodule

`default_nettype wire
