// Fully unrolled binary (xnor-popcount) layer with constant weights: all MH neurons against one MW-bit
// input vector each cycle, optional fused MultiThreshold. Same stream interface and flow control as
// pqhw_mvau with PE = MH and SIMD = MW: one input beat is the whole vector, one output beat all MH
// outputs, one frame a cycle in steady state.
//
// Inputs are split into G = ceil(MW/4) groups of up to four bits. For group g, neuron n needs
// popcount(x_g XNOR w_{n,g}), a value 0..4 that depends on the four input bits and the neuron's four
// constant weight bits only. So for each group the popcount is computed once per weight pattern (three
// LUT4s each: pure logic, no carry chain) and registered; each neuron takes the partial of its own
// pattern, chosen by a constant index at elaboration, and patterns no neuron uses are swept away by
// synthesis. With thresholds (NT > 0) a pattern whose top bit is set is read as the bitwise complement
// of its complement's partial, so a group needs at most 8 partials (details at the leaves). Each neuron
// then sums its G partials with a balanced adder tree of exact widths (level k adds pairs of nodes,
// node_bits(k) wide), registered after every level, then the threshold comparison (pqhw_mt, registered)
// and the output FIFO. Latency: 2 + clog2(G) cycles with thresholds, one less without.
//
// Weights: W_INIT bit n*MW + s is neuron n's weight for input s (pqhw_mvau's single word at PE = MH,
// SIMD = MW). Thresholds: T_INIT as pqhw_mvau's single threshold word.
//
// Flow control is credit based, as in pqhw_mvau: a frame is only accepted when its result has a guaranteed
// slot in the output FIFO, so the pipeline never stalls and s_axis_tready is a flip-flop.
`default_nettype none

module pqhw_xnor_unrolled #(
    parameter int MW        = 4,   // inputs (matrix width)
    parameter int MH        = 4,   // neurons (matrix height)
    parameter int ACC_BITS  = 3,   // popcount bits, unsigned (>= clog2(MW+1))
    parameter int NT        = 0,   // thresholds per channel; 0 = no activation, output the popcount
    parameter bit TH_SHARED = 0,   // one threshold row for all channels instead of one per channel
    parameter int TH_BITS   = 5,   // bits of one signed threshold (>= ACC_BITS + 2 when NT > 0)
    parameter int BIAS      = 0,   // MultiThreshold out_bias
    parameter bit TH_SORTED = 0,   // every threshold row is non-decreasing (the shifted and clipped rows stay so)
    parameter int OUT_BITS  = 3,   // bits of one output element
    parameter logic [MH*MW-1:0] W_INIT = '0,                                           // neuron n, input s at [n*MW + s]
    parameter logic [(NT > 0 ? (TH_SHARED ? 1 : MH) * NT * TH_BITS : 1)-1:0] T_INIT = '0,  // lane p thr i at [(p*NT+i)*TH_BITS]
    parameter int OUT_DEPTH = 4    // output FIFO beats beyond the pipeline depth (>= 2)
) (
    input  wire logic                  clk,
    input  wire logic                  rst,            // synchronous, active high
    input  wire logic [MW-1:0]         s_axis_tdata,   // input s at bit s
    input  wire logic                  s_axis_tvalid,
    output logic                       s_axis_tready,
    output logic [MH*OUT_BITS-1:0]     m_axis_tdata,   // neuron n at [n*OUT_BITS]
    output logic                       m_axis_tvalid,
    input  wire logic                  m_axis_tready
);
    localparam int G = (MW + 3) / 4;                   // input groups
    localparam int L = G > 1 ? $clog2(G) : 0;          // adder-tree levels
    localparam bit COMP = NT > 0 && G > 1;             // complemented leaves (see above), thresholds adjusted
    localparam int B0 = node_bits(0);                  // bits of one partial as a tree leaf
    localparam int SW = node_bits(L);                  // bits of the tree's result (clog2(MW + 1) if !COMP)
    localparam int MR = NT > 0 ? 1 : 0;                // registered threshold comparisons
    localparam int LAT = 1 + L + MR;                   // cycles from an accepted beat to the output FIFO
    localparam int FD = OUT_DEPTH + LAT + 1;           // output FIFO beats (+1: the credit is registered)

    // Nodes per neuron at tree level k (level 0: the partials).
    function automatic int nodes(input int k);
        nodes = (G + (1 << k) - 1) >> k;
    endfunction

    // Bits of a node at level k: it sums at most min(4 * 2^k, MW) input bits, or with complemented
    // leaves (each at most 7) min(2^k, G) leaves.
    function automatic int node_bits(input int k);
        int span;
        if (COMP) begin
            span = 7 * ((1 << k) < G ? (1 << k) : G);
        end else begin
            span = (4 << k) < MW ? (4 << k) : MW;
        end
        node_bits = $clog2(span + 1);
    endfunction

    // Offset of level k (1..L) in the flat tree register vector.
    function automatic int level_offset(input int k);
        int off, span;
        off = 0;
        for (int i = 1; i < k; i++) begin  // nodes(i) * node_bits(i) per neuron, written out for Icarus
            if (COMP) begin
                span = 7 * ((1 << i) < G ? (1 << i) : G);
            end else begin
                span = (4 << i) < MW ? (4 << i) : MW;
            end
            off = off + MH * ((G + (1 << i) - 1) >> i) * $clog2(span + 1);
        end
        level_offset = off;
    endfunction

    // Weight pattern of neuron n in group g: bit b is the weight of input 4g + b (inputs past MW read 0).
    function automatic int pattern(input int n, input int g);
        int v;
        v = 0;
        for (int b = 0; b < 4; b++) begin
            if (4*g + b < MW) begin  // nested: Icarus evaluates both sides of && in constant functions
                if (W_INIT[n*MW + 4*g + b]) begin
                    v = v | (1 << b);
                end
            end
        end
        pattern = v;
    endfunction

    // What neuron n's tree result exceeds its popcount by: 7 - GS for each complemented leaf (the bits ~c
    // of a partial c read 7 - c; the popcount against the complemented pattern is GS - c). A leaf is
    // complemented when the neuron's weight for the group's top input is 1 and the leaf goes into a
    // level-1 adder (not the odd last leaf, passed through to level 1). No nested calls: Icarus.
    function automatic int excess(input int n);
        int e, gs;
        e = 0;
        for (int g = 0; g < G; g++) begin
            gs = (MW - 4*g) < 4 ? (MW - 4*g) : 4;
            if (COMP && (g < G - 1 || G % 2 == 0)) begin
                if (W_INIT[n*MW + 4*g + gs - 1]) begin
                    e = e + 7 - gs;
                end
            end
        end
        excess = e;
    endfunction

    // Threshold i of neuron n from T_INIT (signed TH_BITS), raised by the neuron's excess e and clipped to
    // [0, 2^SW], the range where comparing the SW-bit tree result still decides every case.
    function automatic int threshold(input int n, input int i, input int e);
        int idx, t;
        idx = TH_SHARED ? i : n*NT + i;
        t = 0;
        for (int b = 0; b < TH_BITS; b++) begin
            if (T_INIT[idx*TH_BITS + b]) begin
                t = t | (1 << b);
            end
        end
        if (TH_BITS < 32 && T_INIT[idx*TH_BITS + TH_BITS - 1]) begin
            t = t - (1 << TH_BITS);  // sign
        end
        t = t + e;
        threshold = t < 0 ? 0 : t > (1 << SW) ? (1 << SW) : t;
    endfunction

    // popcount of four bits as gates (half adders), no carry chain: each output bit is one LUT4
    function automatic logic [2:0] popcount4(input logic [3:0] d);
        logic s0, c0, s1, c1, cm;
        s0 = d[0] ^ d[1];
        c0 = d[0] & d[1];
        s1 = d[2] ^ d[3];
        c1 = d[2] & d[3];
        cm = s0 & s1;
        // total = 2 * (c0 + c1 + cm) + (s0 ^ s1), and c0 + c1 + cm <= 2 (cm excludes c0 and c1)
        popcount4 = {c0 & c1, c0 ^ c1 ^ cm, s0 ^ s1};
    endfunction

    if (MW < 1 || MH < 1) begin : g_bad_shape
        pqhw_error_xnor_unrolled_mw_and_mh_must_be_positive u_err ();
    end
    if (ACC_BITS < $clog2(MW + 1) || ACC_BITS > 32) begin : g_bad_acc
        pqhw_error_xnor_unrolled_acc_bits_must_be_clog2_mw_plus_1_to_32 u_err ();
    end
    if (NT > 0 && TH_BITS < ACC_BITS + 2) begin : g_bad_th
        pqhw_error_xnor_unrolled_th_bits_must_exceed_acc_bits_by_2 u_err ();
    end
    if (NT == 0 && OUT_BITS < ACC_BITS) begin : g_bad_out
        pqhw_error_xnor_unrolled_out_bits_must_hold_the_popcount u_err ();
    end
    if (NT < 0 || OUT_BITS < 1 || OUT_DEPTH < 2 || TH_BITS > 32 || MW > 1 << 24) begin : g_bad_misc
        pqhw_error_xnor_unrolled_nt_ge_0_out_bits_ge_1_out_depth_ge_2_th_bits_le_32 u_err ();
    end

    // ---- issue: credit check -----------------------------------------------------------------------
    // Each accepted frame reserves its result's slot in the output FIFO (pqhw_credit_fifo, registered).
    logic credit_ok;
    assign s_axis_tready = credit_ok;
    wire logic fire = s_axis_tvalid && credit_ok;

    // ---- shared partials: per group, the popcount against every weight pattern, registered -----------
    // Group g, pattern p at [(g*16 + p)*3]. Unused patterns have no load and are removed by synthesis.
    logic [G*16*3-1:0] part;
    for (genvar g = 0; g < G; g++) begin : g_group
        localparam int GS = (MW - 4*g) < 4 ? (MW - 4*g) : 4;  // inputs in this group
        localparam logic [3:0] MASK = 4'((1 << GS) - 1);
        wire logic [3:0] xg = 4'(s_axis_tdata[4*g +: GS]);
        always_ff @(posedge clk) begin
            for (int p = 0; p < 16; p++) begin
                part[(g*16 + p)*3 +: 3] <= popcount4(MASK & ~(xg ^ 4'(p)));
            end
        end
    end

    // ---- tree leaves: each neuron's partial per group, picked by its constant weight pattern ---------
    // A pattern with the group's top bit set may be read as the bitwise complement of the partial of the
    // complemented pattern (7 - c for GS - c): then each group needs at most 2^(GS-1) partials, and the
    // inversion costs nothing inside the level-1 adder's LUTs. The excess is added to the thresholds.
    wire logic [MH*G*B0-1:0] leaf;  // neuron n, group g at [(n*G + g)*B0]
    for (genvar n = 0; n < MH; n++) begin : g_neuron
        for (genvar g = 0; g < G; g++) begin : g_leaf
            localparam int GS = (MW - 4*g) < 4 ? (MW - 4*g) : 4;
            localparam int P = pattern(n, g);
            localparam bit C = COMP && (g < G - 1 || G % 2 == 0) && ((P >> (GS - 1)) & 1) != 0;  // as in excess()
            localparam int Q = C ? P ^ ((1 << GS) - 1) : P;
            if (C) begin : g_complemented
                assign leaf[(n*G + g)*B0 +: B0] = ~part[(g*16 + Q)*3 +: B0];
            end else begin : g_plain
                assign leaf[(n*G + g)*B0 +: B0] = part[(g*16 + Q)*3 +: B0];
            end
        end
    end

    // ---- adder tree: level k adds pairs of level k-1 nodes at exact width, registered ----------------
    // Node j of neuron n at level k (1..L) at [level_offset(k) + (n*nodes(k) + j)*node_bits(k)].
    localparam int TRW = L > 0 ? level_offset(L + 1) : 1;
    localparam int OL = level_offset(L);  // the last level: one node per neuron
    logic [TRW-1:0] tr;
    for (genvar k = 1; k <= L; k++) begin : g_level
        localparam int NK = nodes(k);
        localparam int NP = nodes(k - 1);
        localparam int BK = node_bits(k);
        localparam int BP = node_bits(k - 1);
        localparam int OK = level_offset(k);
        localparam int OP = level_offset(k - 1);
        wire logic [MH*NP*BP-1:0] src;  // level k-1, neuron n node j at [(n*NP + j)*BP]
        if (k == 1) begin : g_from_leaves
            assign src = leaf;
        end else begin : g_from_level
            assign src = tr[OP +: MH*NP*BP];
        end
        always_ff @(posedge clk) begin
            for (int n = 0; n < MH; n++) begin
                for (int j = 0; j < NK; j++) begin
                    if (2*j + 1 < NP) begin
                        tr[OK + (n*NK + j)*BK +: BK] <= BK'(src[(n*NP + 2*j)*BP +: BP])
                                                      + BK'(src[(n*NP + 2*j + 1)*BP +: BP]);
                    end else begin
                        tr[OK + (n*NK + j)*BK +: BK] <= BK'(src[(n*NP + 2*j)*BP +: BP]);
                    end
                end
            end
        end
    end

    // tree result of each neuron: its popcount plus excess(n) (0 without complemented leaves)
    logic [MH*SW-1:0] dot;
    if (L == 0) begin : g_leaf_dot
        assign dot = leaf;
    end else begin : g_tree_dot
        assign dot = tr[OL +: MH*SW];
    end

    // valid through the partial register and the tree levels
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
        localparam int TB = SW + 2;  // clipped thresholds in [0, 2^SW]
        wire logic [MH*NT*TB-1:0] t_lanes;
        for (genvar n = 0; n < MH; n++) begin : g_lane
            localparam int E = excess(n);
            for (genvar i = 0; i < NT; i++) begin : g_thr
                localparam int T = threshold(n, i, E);
                assign t_lanes[(n*NT + i)*TB +: TB] = TB'(T);
            end
        end
        pqhw_mt #(
            .LANES(MH), .IN_BITS(SW), .IN_SIGNED(0), .NT(NT), .TH_BITS(TB),
            .BIAS(BIAS), .OUT_BITS(OUT_BITS), .REG(1), .SORTED(TH_SORTED)
        ) u_mt (
            .clk(clk), .in_data(dot), .thresholds(t_lanes), .out_data(y_d)
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
                y_d[n*OUT_BITS +: OUT_BITS] = OUT_BITS'(dot[n*SW +: SW]);
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
