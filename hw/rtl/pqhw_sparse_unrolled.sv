// Fully unrolled integer layer with constant weights (ternary, integer or power-of-two weights), optional
// fused MultiThreshold: all MH neurons against one MW-element input vector each cycle. Same stream interface
// and flow control as pqhw_mvau with PE = MH and SIMD = MW: one input beat is the whole vector, one output
// beat all MH outputs, one frame a cycle in steady state.
//
// A zero weight costs nothing: the layer is given as a list of terms, each +-(x_s << k) for one input s and
// shift k, and only the terms exist. hw/kinds/mvau.py writes a weight w as its canonical signed digits
// (w = sum of +-2^k, fewest nonzero digits: one term for a power of two or a ternary weight, none for a
// zero), so no multiplier and no partial product of a zero bit is built. A subtracted term enters the tree
// as ~(x_s << k), which is -(x_s << k) - 1; the missing +1s of a neuron are one constant, ADD_INIT's (or,
// with thresholds, already subtracted from the neuron's thresholds by the generator).
//
// Each neuron sums its terms by a balanced tree of pairs, registered after every level; all neurons get
// L = clog2(most terms of a neuron) levels (a neuron with fewer terms passes its sum through registers,
// flip-flops only). Node widths: a leaf is LW = IN_BITS + 1 + SH_MAX signed bits, a level-k node LW + k, at
// most DOT_BITS (sums wrap modulo 2^DOT_BITS, exact because the result fits). Latency: 1 (input register)
// + L + (1 when NT > 0) cycles to the output FIFO.
//
// Terms: TERMS term t at [t*TB], TB = SRC_BITS + SH_BITS + 1: input index (SRC_BITS), shift (SH_BITS),
// subtracted (1 bit); neuron n owns terms START[n] .. START[n+1]-1 (START: MH+1 fields of 32 bits).
`default_nettype none

module pqhw_sparse_unrolled #(
    parameter int MW        = 4,   // inputs (matrix width)
    parameter int MH        = 4,   // neurons (matrix height)
    parameter int IN_BITS   = 2,   // bits of one input element (1..16)
    parameter bit IN_SIGNED = 0,   // input elements are two's complement
    parameter int NTERM     = 0,   // terms of all neurons together (>= 0; START says the same)
    parameter int SRC_BITS  = 2,   // bits of a term's input index (>= clog2(MW), >= 1)
    parameter int SH_BITS   = 1,   // bits of a term's shift (>= 1)
    parameter int SH_MAX    = 0,   // largest shift of any term (0..15)
    parameter int DOT_BITS  = 8,   // signed bits of a neuron's result (its tree plus ADD_INIT), 2..32
    parameter logic [(NTERM > 0 ? NTERM : 1)*(SRC_BITS+SH_BITS+1)-1:0] TERMS = '0,  // term t at [t*TB]
    parameter logic [(MH+1)*32-1:0] START = '0,        // neuron n's first term at [n*32], START[MH] = NTERM
    parameter logic [MH*DOT_BITS-1:0] ADD_INIT = '0,   // constant added to neuron n's tree, at [n*DOT_BITS]
    parameter int NT        = 0,   // thresholds per channel; 0 = no activation, output the result
    parameter int TH_BITS   = 9,   // bits of one signed threshold (>= DOT_BITS + 1 when NT > 0)
    parameter int BIAS      = 0,   // MultiThreshold out_bias
    parameter bit TH_SORTED = 0,   // every threshold row is non-decreasing: the count is decoded
    parameter int OUT_BITS  = 8,   // bits of one output element (>= DOT_BITS without thresholds, or the
                                   // result's own width: the low OUT_BITS bits are sent)
    parameter logic [(NT > 0 ? MH * NT * TH_BITS : 1)-1:0] T_INIT = '0,  // lane n thr i at [(n*NT+i)*TH_BITS]
    parameter int OUT_DEPTH = 4    // output FIFO beats beyond the pipeline depth (>= 2)
) (
    input  wire logic                  clk,
    input  wire logic                  rst,            // synchronous, active high
    input  wire logic [MW*IN_BITS-1:0] s_axis_tdata,   // input s at [s*IN_BITS]
    input  wire logic                  s_axis_tvalid,
    output logic                       s_axis_tready,
    output logic [MH*OUT_BITS-1:0]     m_axis_tdata,   // neuron n at [n*OUT_BITS]
    output logic                       m_axis_tvalid,
    input  wire logic                  m_axis_tready
);
    localparam int TB = SRC_BITS + SH_BITS + 1;         // bits of one term
    localparam int LW = IN_BITS + 1 + SH_MAX;           // signed bits of a leaf
    localparam int MAXT = most_terms(0);                // most terms of one neuron
    localparam int L = MAXT > 1 ? $clog2(MAXT) : 0;     // tree levels
    localparam int MR = NT > 0 ? 1 : 0;                 // registered threshold comparisons
    localparam int LAT = 1 + L + MR;                    // cycles from an accepted beat to the output FIFO
    localparam int FD = OUT_DEPTH + LAT + 1;            // output FIFO beats (+1: the credit is registered)

    // Field n of START (a 32-bit index), read bit by bit (Yosys's constant functions take no casts of
    // part-selects).
    function automatic int start(input int n);
        int v;
        v = 0;
        for (int b = 0; b < 31; b++) begin
            if (START[n*32 + b]) begin
                v = v | (1 << b);
            end
        end
        start = v;
    endfunction

    // Largest START[n+1] - START[n]. No nested calls: Icarus.
    function automatic int most_terms(input int unused);
        int m, a, b;
        m = unused;
        for (int n = 0; n < MH; n++) begin
            a = 0;
            b = 0;
            for (int i = 0; i < 31; i++) begin
                if (START[n*32 + i]) begin
                    a = a | (1 << i);
                end
                if (START[(n+1)*32 + i]) begin
                    b = b | (1 << i);
                end
            end
            if (b - a > m) begin
                m = b - a;
            end
        end
        most_terms = m;
    endfunction

    // Signed width of a node at level k (level 0: the leaves).
    function automatic int node_bits(input int k);
        node_bits = LW + k < DOT_BITS ? LW + k : DOT_BITS;
    endfunction

    // Nodes of a neuron with c terms at level k (at least one: a neuron without terms sums a zero leaf).
    function automatic int nodes(input int c, input int k);
        int m;
        m = c > 1 ? c : 1;
        nodes = (m + (1 << k) - 1) >> k;
    endfunction

    // Offset of level k (0..L) in a neuron's flat node vector of c terms. No nested calls: Icarus.
    function automatic int level_offset(input int c, input int k);
        int off, m, w;
        off = 0;
        m = c > 1 ? c : 1;
        for (int i = 0; i < k; i++) begin
            w = LW + i < DOT_BITS ? LW + i : DOT_BITS;
            off = off + ((m + (1 << i) - 1) >> i) * w;
        end
        level_offset = off;
    endfunction

    if (MW < 1 || MH < 1 || IN_BITS < 1 || IN_BITS > 16 || NTERM < 0) begin : g_bad_shape
        pqhw_error_sparse_unrolled_mw_mh_positive_in_bits_1_to_16 u_err ();
    end
    if (SRC_BITS < 1 || (MW > 1 && SRC_BITS < $clog2(MW)) || SH_BITS < 1 || SH_MAX < 0 || SH_MAX > 15
        || (SH_MAX > 0 && SH_BITS < $clog2(SH_MAX + 1))) begin : g_bad_terms
        pqhw_error_sparse_unrolled_src_bits_clog2_mw_sh_bits_clog2_sh_max_plus_1 u_err ();
    end
    if (start(0) != 0 || start(MH) != NTERM) begin : g_bad_start
        pqhw_error_sparse_unrolled_start_must_run_from_0_to_nterm u_err ();
    end
    if (DOT_BITS < 2 || DOT_BITS > 32 || (NT > 0 && TH_BITS < DOT_BITS + 1)) begin : g_bad_dot
        pqhw_error_sparse_unrolled_dot_bits_2_to_32_and_th_bits_above_it u_err ();
    end
    if (NT < 0 || OUT_BITS < 1 || OUT_DEPTH < 2) begin : g_bad_misc
        pqhw_error_sparse_unrolled_nt_ge_0_out_bits_ge_1_out_depth_ge_2 u_err ();
    end

    // ---- issue: credit check, input register -------------------------------------------------------
    // Each accepted frame reserves its result's slot in the output FIFO (pqhw_credit_fifo, registered).
    logic credit_ok;
    assign s_axis_tready = credit_ok;
    wire logic fire = s_axis_tvalid && credit_ok;
    logic [MW*IN_BITS-1:0] x_r;
    always_ff @(posedge clk) begin
        if (fire) begin
            x_r <= s_axis_tdata;
        end
    end

    // ---- per neuron: its terms as leaves, then its tree --------------------------------------------
    wire logic [MH*DOT_BITS-1:0] dot;  // neuron n's tree plus ADD_INIT at [n*DOT_BITS]
    localparam int B0 = node_bits(0);
    for (genvar n = 0; n < MH; n++) begin : g_neuron
        localparam int T0 = start(n);
        localparam int C = start(n + 1) - T0;           // this neuron's terms
        localparam int NL = C > 1 ? C : 1;              // leaves (a zero leaf without terms)
        localparam int NV = L > 0 ? level_offset(C, L + 1) - level_offset(C, 1) : 1;  // bits of levels 1..L
        localparam logic [DOT_BITS-1:0] ADD = ADD_INIT[n*DOT_BITS +: DOT_BITS];
        wire logic [NL*B0-1:0] leaf;  // leaf j at [j*B0]
        logic [NV-1:0] node;          // level k (1..L) node j at [level_offset(C, k) - level_offset(C, 1) + j*node_bits(k)]

        if (C == 0) begin : g_no_terms
            assign leaf = '0;
        end
        for (genvar j = 0; j < C; j++) begin : g_leaf
            localparam logic [TB-1:0] TRM = TERMS[(T0 + j)*TB +: TB];
            localparam int SRC = int'(TRM[SRC_BITS-1:0]);
            localparam int SH = int'(TRM[SRC_BITS +: SH_BITS]);
            localparam bit NEG = TRM[TB-1];
            logic signed [IN_BITS:0] xn;
            logic signed [LW-1:0] xs;
            always_comb begin
                xn = {IN_SIGNED & x_r[SRC*IN_BITS + IN_BITS - 1], x_r[SRC*IN_BITS +: IN_BITS]};
                /* verilator lint_off WIDTHEXPAND */
                xs = xn;  // sign-extended by assignment
                /* verilator lint_on WIDTHEXPAND */
            end
            wire logic [LW-1:0] shifted = xs <<< SH;
            /* verilator lint_off WIDTHTRUNC */
            assign leaf[j*B0 +: B0] = NEG ? ~shifted : shifted;  // the low DOT_BITS bits if narrower
            /* verilator lint_on WIDTHTRUNC */
        end

        for (genvar k = 1; k <= L; k++) begin : g_level
            localparam int NK = nodes(C, k);
            localparam int NP = nodes(C, k - 1);
            localparam int BK = node_bits(k);
            localparam int BP = node_bits(k - 1);
            localparam int OK = level_offset(C, k) - level_offset(C, 1);
            localparam int OP = k > 1 ? level_offset(C, k - 1) - level_offset(C, 1) : 0;
            wire logic [NP*BP-1:0] src;  // level k-1, node j at [j*BP]
            if (k == 1) begin : g_from_leaves
                assign src = leaf;
            end else begin : g_from_level
                assign src = node[OP +: NP*BP];
            end
            always_ff @(posedge clk) begin
                for (int j = 0; j < NK; j++) begin
                    logic signed [BP-1:0] a, b;
                    logic signed [BK-1:0] ea, eb;
                    a = src[2*j*BP +: BP];
                    if (2*j + 1 < NP) begin
                        b = src[(2*j + 1)*BP +: BP];
                    end else begin
                        b = '0;
                    end
                    /* verilator lint_off WIDTHEXPAND */
                    ea = a;  // sign-extended by assignment
                    eb = b;
                    /* verilator lint_on WIDTHEXPAND */
                    node[OK + j*BK +: BK] <= ea + eb;
                end
            end
        end

        // the tree's result (level L, one node) sign-extended to DOT_BITS, plus the neuron's constant
        localparam int BL = node_bits(L);
        logic signed [BL-1:0] top;
        logic signed [DOT_BITS-1:0] etop;
        if (L == 0) begin : g_leaf_top
            assign top = leaf[0 +: BL];
        end else begin : g_tree_top
            assign top = node[NV - BL +: BL];
        end
        always_comb begin
            /* verilator lint_off WIDTHEXPAND */
            etop = top;  // sign-extended by assignment
            /* verilator lint_on WIDTHEXPAND */
        end
        assign dot[n*DOT_BITS +: DOT_BITS] = etop + ADD;
    end

    // valid through the input register and the tree levels
    logic [L:0] v_t;
    always_ff @(posedge clk) begin
        if (rst) begin
            v_t <= '0;
        end else begin
            v_t <= (L + 1)'({v_t, fire});
        end
    end
    wire logic v_dot = v_t[L];

    // ---- activation (comparisons registered when NT > 0), into the output FIFO -----------------------
    logic [MH*OUT_BITS-1:0] y_d;
    logic v_y;  // y_d is a finished frame
    if (NT > 0) begin : g_act
        pqhw_mt #(
            .LANES(MH), .IN_BITS(DOT_BITS), .IN_SIGNED(1), .NT(NT), .TH_BITS(TH_BITS),
            .BIAS(BIAS), .OUT_BITS(OUT_BITS), .REG(1), .SORTED(TH_SORTED)
        ) u_mt (
            .clk(clk), .in_data(dot), .thresholds(T_INIT), .out_data(y_d)
        );
        always_ff @(posedge clk) begin
            if (rst) begin
                v_y <= 1'b0;
            end else begin
                v_y <= v_dot;
            end
        end
    end else begin : g_no_act
        assign v_y = v_dot;
        always_comb begin
            for (int n = 0; n < MH; n++) begin
                logic signed [DOT_BITS-1:0] d;
                logic signed [(OUT_BITS > DOT_BITS ? OUT_BITS : DOT_BITS)-1:0] e;
                d = dot[n*DOT_BITS +: DOT_BITS];
                /* verilator lint_off WIDTHEXPAND */
                e = d;  // sign-extended by assignment; the low OUT_BITS bits are the element
                /* verilator lint_on WIDTHEXPAND */
                y_d[n*OUT_BITS +: OUT_BITS] = e[OUT_BITS-1:0];
            end
        end
    end

    pqhw_credit_fifo #(
        .WIDTH(MH*OUT_BITS), .DEPTH(FD), .REG_CREDIT(1)
    ) u_out (
        .clk(clk), .rst(rst), .reserve(fire), .credit_ok(credit_ok),
        .s_tdata(y_d), .s_tvalid(v_y),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready)
    );
endmodule

`default_nettype wire
