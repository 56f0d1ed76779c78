// MultiThreshold by pipelined binary search, FINN semantics: y = #{i : a >= T[i]} + BIAS, for rows of many
// sorted thresholds (FINN's are non-decreasing per channel). pqhw_mt compares all NT thresholds of a row at
// once, so a row is one memory word of NT * TH_BITS bits: 255 thresholds of an 8-bit activation make words
// thousands of bits wide, and block RAMs are then counted by width, not by bits. Here the count is found one
// bit a stage, most significant first: with S = clog2(NT + 1) and the row padded to 2^S - 1 thresholds,
// stage j knows the count's top j bits m and compares a against T[(m << (S - j)) + 2^(S-1-j) - 1]. So stage j
// holds 2^j thresholds per row, in its own memory (per lane: one threshold read a cycle, the address is the
// row and m), and the tables together hold each threshold once: small shallow stages end up in logic, the
// deep ones in block RAM, at the bits they hold. Padding thresholds are the largest TH_BITS value, which no
// input reaches (TH_BITS exceeds the input's range, as for pqhw_mt), so the count stays NT at most.
//
// One input a cycle, no stall: latency LAT = S + WREG_STAGES + 1 cycles from in_data to out_data (a stage
// takes one cycle, the deepest WREG_STAGES take two: their threshold is registered before the comparison,
// which lets a block RAM's own output register hold it, hw/ecp5_outreg.py; then the output register).
//
// Tables (caller: hw/kinds/mvau.py search_tables): stage j, lane table l (l = 0 when SHARED), word
// r * 2^j + m. MEM_STYLE 0: all of them in T_INIT, stage j's tables from bit LT * ROWS * (2^j - 1) * TH_BITS,
// lane table l of it after l * ROWS * 2^j words (LT = SHARED ? 1 : LANES). MEM_STYLE 1: one $readmemh file
// each, named T_FILE + "_s" + j + "_l" + l (three digits) + ".memh".
`default_nettype none

module pqhw_mt_search #(
    parameter int LANES       = 1,   // elements processed side by side (1..999)
    parameter int IN_BITS     = 8,   // bits of one input element (>= 1)
    parameter bit IN_SIGNED   = 1,   // input elements are two's complement (1) or unsigned (0)
    parameter int NT          = 255, // thresholds per row (1..1023), each row non-decreasing
    parameter int TH_BITS     = 10,  // bits of one signed threshold (>= IN_BITS + 1, + 2 if unsigned input)
    parameter int BIAS        = 0,   // added to the count (FINN out_bias)
    parameter int OUT_BITS    = 8,   // bits of one output element; count + BIAS wraps to this width
    parameter int ROWS        = 1,   // threshold rows a lane chooses from by in_row (>= 1)
    parameter bit SHARED      = 0,   // all lanes read the same tables (one copy of the data, a read port each)
    parameter int MEM_STYLE   = 0,   // tables: 0 constants from T_INIT, 1 ROM files from T_FILE
    parameter T_FILE = "",           // MEM_STYLE 1: prefix of the tables' file names (see above)
    parameter logic [(SHARED ? 1 : LANES)*ROWS*((1 << $clog2(NT + 1)) - 1)*TH_BITS-1:0] T_INIT = '0,
    parameter int WREG_STAGES = 0    // deepest stages whose threshold is registered before the comparison (0..S)
) (
    input  wire logic                                 clk,
    input  wire logic [LANES*IN_BITS-1:0]             in_data,  // lane l at [l*IN_BITS]
    input  wire logic [(ROWS > 1 ? $clog2(ROWS) : 1)-1:0] in_row, // the row all lanes use with this input
    output logic [LANES*OUT_BITS-1:0]                 out_data  // LAT cycles after in_data
);
    localparam int S = $clog2(NT + 1);                 // stages (count bits)
    localparam int LT = SHARED ? 1 : LANES;            // lane tables per stage
    localparam int RAW = ROWS > 1 ? $clog2(ROWS) : 1;
    localparam int SW = S > 0 ? S : 1;

    if (LANES < 1 || LANES > 999 || IN_BITS < 1 || NT < 1 || NT > 1023 || OUT_BITS < 1 || ROWS < 1) begin : g_bad_shape
        pqhw_error_mt_search_lanes_1_999_nt_1_1023_bits_and_rows_positive u_err ();
    end
    if (TH_BITS < IN_BITS + (IN_SIGNED ? 1 : 2)) begin : g_bad_th
        pqhw_error_mt_search_th_bits_must_exceed_in_bits u_err ();
    end
    if (MEM_STYLE != 0 && MEM_STYLE != 1) begin : g_bad_style
        pqhw_error_mt_search_mem_style_must_be_0_const_or_1_rom u_err ();
    end
    if (WREG_STAGES < 0 || WREG_STAGES > S) begin : g_bad_wreg
        pqhw_error_mt_search_wreg_stages_must_be_0_to_s u_err ();
    end

    // What enters stage j: the inputs, the count's decided top bits per lane (lane l at [l*SW], bit S-1 first),
    // and the row. Entry 0 is the module input; entry S leaves the last stage.
    logic [(S+1)*LANES*IN_BITS-1:0] a_s;
    logic [(S+1)*LANES*SW-1:0]      m_s;
    logic [(S+1)*RAW-1:0]           r_s;
    assign a_s[0 +: LANES*IN_BITS] = in_data;
    assign m_s[0 +: LANES*SW] = '0;
    assign r_s[0 +: RAW] = in_row;

    for (genvar j = 0; j < S; j++) begin : g_stage
        localparam int D = ROWS << j;                   // words of one lane table
        localparam int AW = D > 1 ? $clog2(D) : 1;
        localparam int Q = j >= S - WREG_STAGES ? 2 : 1; // cycles of this stage
        wire logic [LANES*IN_BITS-1:0] a_in = a_s[j*LANES*IN_BITS +: LANES*IN_BITS];
        wire logic [LANES*SW-1:0] m_in = m_s[j*LANES*SW +: LANES*SW];
        wire logic [RAW-1:0] r_in = r_s[j*RAW +: RAW];

        // the input, decided bits and row wait beside the table read (Q cycles)
        logic [Q*LANES*IN_BITS-1:0] a_p;
        logic [Q*LANES*SW-1:0] m_p;
        logic [Q*RAW-1:0] r_p;
        always_ff @(posedge clk) begin
            a_p <= (Q*LANES*IN_BITS)'({a_p, a_in});
            m_p <= (Q*LANES*SW)'({m_p, m_in});
            r_p <= (Q*RAW)'({r_p, r_in});
        end
        wire logic [LANES*IN_BITS-1:0] a_d = a_p[(Q-1)*LANES*IN_BITS +: LANES*IN_BITS];
        wire logic [LANES*SW-1:0] m_d = m_p[(Q-1)*LANES*SW +: LANES*SW];

        logic [LANES*SW-1:0] m_next;
        for (genvar l = 0; l < LANES; l++) begin : g_lane
            localparam int LD = SHARED ? 0 : l;          // which lane table
            logic [AW-1:0] addr;
            if (j == 0) begin : g_row_only
                assign addr = AW'(r_in);
            end else begin : g_row_and_bits
                assign addr = AW'({r_in, m_in[l*SW + S - j +: j]});
            end
            logic [TH_BITS-1:0] th, th_d;
            if (MEM_STYLE == 0) begin : g_const
                localparam int OFF = (LT * ROWS * ((1 << j) - 1) + LD * D) * TH_BITS;
                pqhw_mem #(
                    .WIDTH(TH_BITS), .DEPTH(D), .STYLE(0), .INIT(T_INIT[OFF +: D*TH_BITS])
                ) u_tab (
                    .clk(clk), .en(1'b1), .addr(addr), .rdata(th)
                );
            end else begin : g_rom
                localparam logic [7:0] ZERO = 8'd48;  // "0"
                pqhw_mem #(
                    .WIDTH(TH_BITS), .DEPTH(D), .STYLE(1),
                    .INIT_FILE({T_FILE, "_s", ZERO + 8'(j), "_l", ZERO + 8'(LD / 100), ZERO + 8'((LD / 10) % 10),
                                ZERO + 8'(LD % 10), ".memh"})
                ) u_tab (
                    .clk(clk), .en(1'b1), .addr(addr), .rdata(th)
                );
            end
            if (Q == 2) begin : g_wreg
                always_ff @(posedge clk) begin
                    th_d <= th;
                end
            end else begin : g_direct
                assign th_d = th;
            end
            logic [TH_BITS-1:0] a;
            logic ge;
            always_comb begin
                a = {{(TH_BITS - IN_BITS){IN_SIGNED & a_d[l*IN_BITS + IN_BITS - 1]}}, a_d[l*IN_BITS +: IN_BITS]};
                ge = $signed(a) >= $signed(th_d);
                m_next[l*SW +: SW] = m_d[l*SW +: SW] | (SW'(ge) << (S - 1 - j));
            end
        end
        assign a_s[(j+1)*LANES*IN_BITS +: LANES*IN_BITS] = a_d;
        assign m_s[(j+1)*LANES*SW +: LANES*SW] = m_next;
        assign r_s[(j+1)*RAW +: RAW] = r_p[(Q-1)*RAW +: RAW];
    end

    always_ff @(posedge clk) begin
        for (int l = 0; l < LANES; l++) begin
            out_data[l*OUT_BITS +: OUT_BITS] <= OUT_BITS'(32'(m_s[S*LANES*SW + l*SW +: SW]) + BIAS);
        end
    end
endmodule

`default_nettype wire
