// Matrix-vector-activation unit: MH x MW matrix times a streamed MW-vector, PE rows by SIMD columns a
// cycle, optional fused MultiThreshold. One beat of SIMD inputs is consumed per cycle while the first of
// the NF = MH/PE neuron folds runs; the vector is kept in an input buffer and replayed for the other
// folds, so a frame costs NF * SF cycles (SF = MW/SIMD) in steady state.
//
// Arithmetic modes: 0 xnor-popcount (BINARY {0,1} codes of bipolar weights and inputs: acc counts
// equal bits), 1 ternary (weights {-1,0,1}: add, subtract or skip), 2 integer (weights and inputs of
// 1..8 bits, signed or unsigned), 3 shift (weights 0 or +-2^k, k <= SH_MAX: each product is the input
// shifted by k, added or subtracted, one leaf and its correction bit instead of an integer product's
// W_BITS partial products; a weight is the code {negative, nonzero, k} of W_BITS = 2 + SB bits).
// The accumulator is ACC_BITS wide and read as signed or unsigned per ACC_SIGNED; sums wrap modulo
// 2^ACC_BITS, exact whenever the true range fits.
//
// Pipeline (one row fold enters per cycle): B weight word and input beat registered; [tables: registered
// again, block RAM outputs are slow]; [codebook: codes decoded to weights, registered]; each PE lane's
// products, as leaves free of carry chains and multipliers, summed by a tree that adds FANIN leaves or
// partial sums per stage with a register after every stage; C accumulate over the SF column folds; D
// thresholds [tables: read registered] compared, registered, counted; then the output FIFO.
//
// Weight memory: plain words of PE x SIMD weights, or (ternary, ROM) the codebook of quant/codebook.py:
// each lane's SIMD weights zero-padded to a multiple of three, three weights per 5-bit code
// t0 + 3 t1 + 9 t2 with trit t = w mod 3 (0, +1 -> 1, -1 -> 2).
//
// Flow control is credit based: a row fold is only started when its result has a guaranteed slot in the
// output FIFO, so the datapath never stalls mid-pipeline and s_axis_tready depends on registered state
// only (no combinational path from m_axis_tready).
`default_nettype none

module pqhw_mvau #(
    parameter int MODE       = 2,   // 0 xnor, 1 ternary, 2 integer, 3 shift (power-of-two weights)
    parameter int MW         = 4,   // matrix width: input vector length
    parameter int MH         = 4,   // matrix height: output vector length
    parameter int SIMD       = 1,   // input elements per beat (divides MW)
    parameter int PE         = 1,   // output elements per beat (divides MH)
    parameter int IN_BITS    = 4,   // bits of one input element (1 for xnor)
    parameter bit IN_SIGNED  = 0,   // input elements are two's complement
    parameter int W_BITS     = 4,   // bits of one weight (1 for xnor, 2 for ternary)
    parameter bit W_SIGNED   = 1,   // weights are two's complement (integer mode)
    parameter int SH_MAX     = 0,   // shift mode: largest shift k of a weight +-2^k (W_BITS = 2 + SB, SB its bits)
    parameter int ACC_BITS   = 16,  // accumulator bits (xnor: >= clog2(MW+1))
    parameter bit ACC_SIGNED = 1,   // accumulator read as signed (thresholds, output extension)
    parameter int NT         = 0,   // thresholds per channel; 0 = no activation, output the accumulator
    parameter bit TH_SHARED  = 0,   // one threshold row for all channels instead of one per channel
    parameter int TH_BITS    = 17,  // bits of one signed threshold (>= ACC_BITS + 1, + 2 if unsigned, when NT > 0)
    parameter int BIAS       = 0,   // MultiThreshold out_bias
    parameter bit TH_SORTED  = 0,   // every threshold row is non-decreasing: the count is decoded, not added
    parameter bit TH_SEARCH  = 0,   // sorted rows found by binary search (pqhw_mt_search), its tables from T_INIT /
                                    // T_FILE as it reads them; else all NT compared at once (pqhw_mt)
    parameter int TH_WREG    = 0,   // search: deepest stages with a registered threshold (pqhw_mt_search WREG_STAGES)
    parameter int OUT_BITS   = 16,  // bits of one output element
    parameter int MEM_STYLE  = 0,   // weights and thresholds: 0 constants (W_INIT, T_INIT), 1 ROM files
    parameter bit W_CODEBOOK = 0,   // ternary ROM words hold 5-bit codes of three weights (needs MODE 1, MEM_STYLE 1)
    parameter W_FILE = "",          // $readmemh weights: word nf*SF+sf, lane p simd s at [(p*SIMD+s)*W_BITS];
                                    // codebook: lane p code g (simd 3g..3g+2) at [(p*CG+g)*5], CG = ceil(SIMD/3)
    parameter T_FILE = "",          // $readmemh thresholds: word nf, lane p thr i at [(p*NT+i)*TH_BITS]
    parameter logic [MH*MW*W_BITS-1:0] W_INIT = '0,                      // weight words, word a at [a*PE*SIMD*W_BITS]
    parameter logic [(NT > 0 ? (TH_SHARED ? 1 : MH) * (TH_SEARCH ? (1 << $clog2(NT + 1)) - 1 : NT) * TH_BITS : 1)-1:0]
        T_INIT = '0,                // threshold words (search: its stage tables)
    parameter int FANIN      = 16,  // leaves added per node in the adder tree's first stage (>= 2)
    parameter int FANIN_UP   = 2,   // partial sums added per node in every later stage (>= 2)
    parameter bit LEAF_REG   = 1,   // register the leaves before the tree (the products leave the weight RAM's path)
    parameter int OUT_DEPTH  = 4    // output FIFO beats beyond the pipeline depth; >= 4 sustains one row fold a cycle
) (
    input  wire logic                     clk,
    input  wire logic                     rst,            // synchronous, active high
    input  wire logic [SIMD*IN_BITS-1:0]  s_axis_tdata,   // element s at [s*IN_BITS]
    input  wire logic                     s_axis_tvalid,
    output logic                          s_axis_tready,
    output logic [PE*OUT_BITS-1:0]        m_axis_tdata,   // lane p = row nf*PE+p at [p*OUT_BITS]
    output logic                          m_axis_tvalid,
    input  wire logic                     m_axis_tready
);
    localparam int SF = MW / SIMD;
    localparam int NF = MH / PE;
    localparam int WD = NF * SF;                       // weight words
    localparam int CG = (SIMD + 2) / 3;                // codes per lane and word (codebook)
    localparam int WW = W_CODEBOOK ? PE * CG * 5 : PE * SIMD * W_BITS;  // bits per weight word
    localparam int TD = TH_SHARED ? 1 : NF;            // threshold words
    localparam int TW = (TH_SHARED ? 1 : PE) * (NT > 0 ? NT : 1) * TH_BITS;
    localparam int SFW = SF > 1 ? $clog2(SF) : 1;
    localparam int NFW = NF > 1 ? $clog2(NF) : 1;
    localparam int WAW = WD > 1 ? $clog2(WD) : 1;
    localparam int TAW = TD > 1 ? $clog2(TD) : 1;
    localparam int SB = SH_MAX > 0 ? $clog2(SH_MAX + 1) : 1;  // bits of a shift amount (shift mode)
    localparam int PW = MODE == 0 ? 2 : MODE == 1 ? IN_BITS + 1 : MODE == 3 ? IN_BITS + 1 + SH_MAX
                        : IN_BITS + W_BITS + 1;        // signed term bits
    localparam int K = MODE == 0 ? 1 : MODE == 1 || MODE == 3 ? 2 : W_BITS + (W_SIGNED ? 1 : 0);  // terms per product
    localparam int N0 = SIMD * K;                      // tree leaves per lane
    localparam int T = tree_stages(N0, FANIN);         // adder-tree register stages
    localparam int N1 = (N0 + FANIN - 1) / FANIN;      // tree nodes per lane after the first stage
    localparam int RR = WD > 1 ? 1 : 0;                // weight table read register
    localparam int CB = W_CODEBOOK ? 1 : 0;            // decode stage
    localparam int MR = NT > 0 && TH_SEARCH ? $clog2(NT + 1) + TH_WREG + 1  // search stages, output register
                        : NT > 1 ? 2 : NT > 0 ? 1 : 0;   // registered threshold comparisons (and count)
    localparam int TR = NT > 0 && TD > 1 && !TH_SEARCH ? 1 : 0;  // threshold table read register
    localparam int LR = LEAF_REG ? 1 : 0;              // leaf register
    localparam int LAT = 2 + RR + CB + LR + T + TR + MR;  // cycles from issue to the output FIFO
    localparam int FD = OUT_DEPTH + LAT + 1;           // output FIFO beats (+1: the credit is registered)

    // Stages of a tree adding at most f leaves in its first stage and FANIN_UP partial sums in each later one,
    // until one sum per lane is left (at least one). Multi-bit partial sums added 8 at a time were SFC_1W1A's
    // critical path (128.4 MHz); 2 at a time: 148.7 MHz and 2 % fewer LUTs (bench.lut_efficiency's design).
    function automatic int tree_stages(input int n, input int f);
        int stages, span;
        stages = 1;
        span = f;
        for (int i = 0; i < 32; i++) begin
            if (span < n) begin
                stages = stages + 1;
                span = span * FANIN_UP;
            end
        end
        tree_stages = stages;
    endfunction

    // Bits of a tree node after stage k (>= 1): the exact range of the leaves under it, at most ACC_BITS (the
    // sums wrap modulo 2^ACC_BITS anyway). xnor leaves are 0 or 1, so n of them need clog2(n + 1) unsigned
    // bits; every other leaf is a signed PW-bit term, n of them PW + clog2(n). A node as wide as the
    // accumulator cost twice the carry logic and flip-flops of an exact one (LFC_1W1A's 1024-leaf popcounts).
    function automatic int node_bits(input int k);
        int n, b;
        n = FANIN;
        for (int i = 1; i < 32; i++) begin
            if (i < k && n < N0) begin
                n = n * FANIN_UP;
            end
        end
        if (n > N0) begin
            n = N0;
        end
        b = MODE == 0 ? $clog2(n + 1) : PW + $clog2(n);
        node_bits = b < ACC_BITS ? b : ACC_BITS;
    endfunction

    // x + 1 in plain logic: the fold counters are a few bits wide, and on ECP5 an adder's carry chain costs 4
    // LUTs beyond its bits (its entry and exit cells, bench.lut_breakdown). Callers keep the low bits.
    function automatic logic [31:0] plus1(input logic [31:0] x);
        logic c;
        c = 1'b1;
        for (int i = 0; i < 32; i++) begin
            plus1[i] = x[i] ^ c;
            c = c & x[i];
        end
    endfunction

    if (MODE < 0 || MODE > 3) begin : g_bad_mode
        pqhw_error_mvau_mode_must_be_0_xnor_1_ternary_2_int_3_shift u_err ();
    end
    if (MODE == 3 && (SH_MAX < 0 || SH_MAX > 7 || W_BITS != SB + 2 || IN_BITS < 1 || IN_BITS > 8)) begin : g_bad_shift
        pqhw_error_mvau_shift_needs_sh_max_0_to_7_w_bits_2_plus_shift_bits_and_1_to_8_bit_inputs u_err ();
    end
    if (MW < 1 || MH < 1 || SIMD < 1 || PE < 1 || MW % SIMD != 0 || MH % PE != 0) begin : g_bad_fold
        pqhw_error_mvau_simd_must_divide_mw_and_pe_divide_mh u_err ();
    end
    if (MODE == 0 && (IN_BITS != 1 || W_BITS != 1 || ACC_SIGNED || ACC_BITS < $clog2(MW + 1))) begin : g_bad_xnor
        pqhw_error_mvau_xnor_needs_1bit_inputs_weights_and_unsigned_clog2_mw_plus_1_acc u_err ();
    end
    if (MODE == 1 && (W_BITS != 2 || IN_BITS < 1 || IN_BITS > 32)) begin : g_bad_ternary
        pqhw_error_mvau_ternary_needs_2bit_weights u_err ();
    end
    if (MODE == 2 && (W_BITS < 1 || W_BITS > 8 || IN_BITS < 1 || IN_BITS > 8)) begin : g_bad_int
        pqhw_error_mvau_int_needs_1_to_8_bit_weights_and_inputs u_err ();
    end
    if (NT > 0 && TH_BITS < ACC_BITS + (ACC_SIGNED ? 1 : 2)) begin : g_bad_th
        pqhw_error_mvau_th_bits_must_exceed_acc_bits u_err ();
    end
    if (NT == 0 && OUT_BITS < ACC_BITS) begin : g_bad_out
        pqhw_error_mvau_out_bits_must_hold_the_accumulator u_err ();
    end
    if (OUT_DEPTH < 2 || ACC_BITS < 1 || ACC_BITS > 32 || FANIN < 2 || FANIN_UP < 2) begin : g_bad_misc
        pqhw_error_mvau_out_depth_ge_2_fanin_ge_2_and_acc_bits_1_to_32 u_err ();
    end
    if (W_CODEBOOK && (MODE != 1 || MEM_STYLE != 1)) begin : g_bad_codebook
        pqhw_error_mvau_codebook_needs_ternary_mode_and_rom_weights u_err ();
    end
    if (MEM_STYLE != 0 && MEM_STYLE != 1) begin : g_bad_mem
        pqhw_error_mvau_mem_style_must_be_0_const_or_1_rom u_err ();
    end
    if (TH_SEARCH && NT > 0 && !TH_SORTED) begin : g_bad_search
        pqhw_error_mvau_th_search_needs_sorted_thresholds u_err ();
    end

    // ---- issue: fold counters, credit check, input buffer -------------------------------------------
    logic [SFW-1:0] sf;
    logic [NFW-1:0] nf;
    logic [WAW-1:0] waddr;

    // registered fold flags: sf == SF-1 and nf == 0, updated with the counters
    logic last_sf, from_stream;
    // A row fold's last column fold reserves its result's slot in the output FIFO (pqhw_credit_fifo:
    // the credit is registered, so s_axis_tready stays a few gates from flip-flops).
    logic credit_ok;
    wire logic may_issue   = !last_sf || credit_ok;
    wire logic fire        = may_issue && (from_stream ? s_axis_tvalid : 1'b1);
    assign s_axis_tready   = from_stream && may_issue;

    logic [SIMD*IN_BITS-1:0] x_b;
    logic v_b, first_b, last_b;
    logic [NFW-1:0] nf_b;

    if (NF > 1 && SF == 1) begin : g_hold
        // the whole vector is one beat: x_b itself keeps it for the other folds (no buffer, no multiplexer;
        // LFC_1W1A's 1,024-bit layers spent a LUT and a flip-flop a bit on them)
        always_ff @(posedge clk) begin
            if (fire && from_stream) begin
                x_b <= s_axis_tdata;
            end
        end
    end else if (NF > 1) begin : g_ibuf
        logic [SIMD*IN_BITS-1:0] ibuf [SF];
        always_ff @(posedge clk) begin
            if (fire && from_stream) begin
                ibuf[sf] <= s_axis_tdata;
            end
            if (fire) begin
                x_b <= from_stream ? s_axis_tdata : ibuf[sf];
            end
        end
    end else begin : g_no_ibuf
        always_ff @(posedge clk) begin
            if (fire) begin
                x_b <= s_axis_tdata;
            end
        end
    end

    always_ff @(posedge clk) begin
        if (rst) begin
            sf <= '0;
            nf <= '0;
            waddr <= '0;
            v_b <= 1'b0;
            last_sf <= (SF == 1);
            from_stream <= 1'b1;
        end else begin
            v_b <= fire;
            if (fire) begin
                sf <= last_sf ? '0 : SFW'(plus1(32'(sf)));
                last_sf <= last_sf ? (SF == 1) : (sf == SFW'(SF - 2));
                if (last_sf) begin
                    nf <= (nf == NFW'(NF - 1)) ? '0 : NFW'(plus1(32'(nf)));
                    from_stream <= (nf == NFW'(NF - 1));
                end
                waddr <= (waddr == WAW'(WD - 1)) ? '0 : WAW'(plus1(32'(waddr)));
            end
        end
        if (fire) begin
            first_b <= (sf == '0);
            last_b <= last_sf;
            nf_b <= nf;
        end
    end

    logic [WW-1:0] w_b;
    pqhw_mem #(
        .WIDTH(WW), .DEPTH(WD), .STYLE(MEM_STYLE), .INIT_FILE(W_FILE), .INIT((WW*WD)'(W_INIT))
    ) u_wmem (
        .clk(clk), .en(fire), .addr(waddr), .rdata(w_b)
    );

    // ---- table read register: block RAM outputs are slow (clk-to-q about 5.6 ns on ECP5), so they go
    // straight into registers. Constant tables count too: Yosys turns a large one into a block RAM ROM.
    // A single constant word (one fold) needs none.
    logic [SIMD*IN_BITS-1:0] x_r;
    logic [WW-1:0] w_r;
    logic v_r, first_r, last_r;
    logic [NFW-1:0] nf_r;
    if (RR == 1) begin : g_rom_reg
        always_ff @(posedge clk) begin
            if (rst) begin
                v_r <= 1'b0;
            end else begin
                v_r <= v_b;
            end
            x_r <= x_b;
            w_r <= w_b;
            first_r <= first_b;
            last_r <= last_b;
            nf_r <= nf_b;
        end
    end else begin : g_const_out
        assign x_r = x_b;
        assign w_r = w_b;
        assign v_r = v_b;
        assign first_r = first_b;
        assign last_r = last_b;
        assign nf_r = nf_b;
    end

    // ---- codebook: 5-bit codes to ternary weights (two's complement 2-bit), registered -----------------
    logic [SIMD*IN_BITS-1:0] x_e;
    logic [PE*SIMD*W_BITS-1:0] w_e;
    logic v_e, first_e, last_e;
    logic [NFW-1:0] nf_e;
    if (W_CODEBOOK) begin : g_decode
        logic [PE*SIMD*W_BITS-1:0] w_dec;
        always_comb begin
            for (int p = 0; p < PE; p++) begin
                for (int s = 0; s < SIMD; s++) begin
                    logic [4:0] code;
                    logic [4:0] trit;
                    code = w_r[(p*CG + s/3)*5 +: 5];
                    trit = (s % 3 == 0) ? code % 5'd3 : (s % 3 == 1) ? (code / 5'd3) % 5'd3 : code / 5'd9;
                    w_dec[(p*SIMD + s)*W_BITS +: W_BITS] = (trit == 5'd1) ? W_BITS'(1) : (trit == 5'd2) ? '1 : '0;
                end
            end
        end
        always_ff @(posedge clk) begin
            if (rst) begin
                v_e <= 1'b0;
            end else begin
                v_e <= v_r;
            end
            x_e <= x_r;
            w_e <= w_dec;
            first_e <= first_r;
            last_e <= last_r;
            nf_e <= nf_r;
        end
    end else begin : g_plain
        assign x_e = x_r;
        assign w_e = w_r;
        assign v_e = v_r;
        assign first_e = first_r;
        assign last_e = last_r;
        assign nf_e = nf_r;
    end

    // ---- products as tree leaves, without carry chains or multipliers: -x is ~x + 1, so a subtracted
    // term is ~x plus a 1-bit correction leaf; an integer product is its weight's partial products
    // (x AND weight bit j, shifted), the sign bit's one subtracted the same way. Leaf c*SIMD + s of lane p
    // at [(p*N0 + c*SIMD + s)*PW]: c = 0 the (first) term, c > 0 further partial products / corrections.
    logic [PE*N0*PW-1:0] leaf;
    always_comb begin
        leaf = '0;
        for (int p = 0; p < PE; p++) begin
            for (int s = 0; s < SIMD; s++) begin
                logic [IN_BITS-1:0] x;
                logic [W_BITS-1:0] w;
                logic signed [IN_BITS:0] xn;
                logic signed [PW-1:0] xs;
                x = x_e[s*IN_BITS +: IN_BITS];
                w = w_e[(p*SIMD + s)*W_BITS +: W_BITS];
                xn = {IN_SIGNED & x[IN_BITS-1], x};
                /* verilator lint_off WIDTHEXPAND */
                xs = xn;  // sign-extended by assignment (Icarus 11 zero-extends a size cast of $signed here)
                /* verilator lint_on WIDTHEXPAND */
                if (MODE == 0) begin
                    leaf[(p*N0 + s)*PW +: PW] = PW'({1'b0, x[0] ~^ w[0]});
                end else if (MODE == 1) begin
                    // w = 01: +x; w = 11: -x = ~x + 1; otherwise 0
                    leaf[(p*N0 + s)*PW +: PW] = (w == W_BITS'(1)) ? xs : (w == {W_BITS{1'b1}}) ? ~xs : '0;
                    leaf[(p*N0 + SIMD + s)*PW +: PW] = PW'({1'b0, w == {W_BITS{1'b1}}});
                end else if (MODE == 3) begin
                    // code {negative, nonzero, k}: +(x << k), -(x << k) = ~(x << k) + 1, or 0
                    logic [PW-1:0] sh;
                    sh = xs <<< w[SB-1:0];
                    /* verilator lint_off SELRANGE */  // w[SB+1] exists in MODE 3 only (this branch)
                    leaf[(p*N0 + s)*PW +: PW] = !w[SB] ? '0 : w[SB+1] ? ~sh : sh;
                    leaf[(p*N0 + SIMD + s)*PW +: PW] = PW'(w[SB] & w[SB+1]);
                    /* verilator lint_on SELRANGE */
                end else begin
                    for (int j = 0; j < W_BITS; j++) begin
                        if (W_SIGNED && j == W_BITS - 1) begin
                            // weight bit W_BITS-1 counts -2^j: -(x << j) = ~(x << j) + 1
                            leaf[(p*N0 + j*SIMD + s)*PW +: PW] = w[j] ? ~(xs <<< j) : '0;
                            leaf[(p*N0 + W_BITS*SIMD + s)*PW +: PW] = PW'(w[j]);
                        end else begin
                            leaf[(p*N0 + j*SIMD + s)*PW +: PW] = w[j] ? (xs <<< j) : '0;
                        end
                    end
                end
            end
        end
    end

    // ---- leaf register: the weight RAM's word, its routing and the product logic end at a flip-flop, and
    // the first tree stage starts at one (FINN's TFC_2W2A: 128.1 MHz without, see bench.lut_efficiency)
    logic [PE*N0*PW-1:0] leaf_t;   // the leaves the tree adds
    logic v_l, first_l, last_l;
    logic [NFW-1:0] nf_l;
    if (LEAF_REG) begin : g_leaf_reg
        always_ff @(posedge clk) begin
            if (rst) begin
                v_l <= 1'b0;
            end else begin
                v_l <= v_e;
            end
            leaf_t <= leaf;
            first_l <= first_e;
            last_l <= last_e;
            nf_l <= nf_e;
        end
    end else begin : g_leaf_comb
        assign leaf_t = leaf;
        assign v_l = v_e;
        assign first_l = first_e;
        assign last_l = last_e;
        assign nf_l = nf_e;
    end

    // ---- adder tree: stage k adds FANIN nodes of stage k-1 (stage 0: the leaves), registered ------------
    // Node j of lane p after stage k (1..T) in the low node_bits(k) bits of [(((k-1)*PE + p)*N1 + j)*ACC_BITS]
    // (the bits above are never written, so synthesis keeps no flip-flop for them); xnor nodes are unsigned.
    logic [T*PE*N1*ACC_BITS-1:0] tr;
    for (genvar k = 1; k <= T; k++) begin : g_tree
        localparam int SK = FANIN * FANIN_UP**(k-1);                      // leaves per node after stage k
        localparam int SP = k == 1 ? 1 : FANIN * FANIN_UP**(k-2);         // leaves per node before it
        localparam int F = k == 1 ? FANIN : FANIN_UP;                       // nodes added per node
        localparam int NK = (N0 + SK - 1) / SK;                            // nodes per lane after stage k
        localparam int NP = (N0 + SP - 1) / SP;                            // nodes per lane before it
        localparam int NB = node_bits(k);                                  // bits of a node after stage k
        localparam int NBP = k == 1 ? PW : node_bits(k > 1 ? k - 1 : 1);   // bits of a node before it
        localparam int NBN = NBP < ACC_BITS ? NBP : ACC_BITS;              // = NBP where k > 1 (nodes are capped)
        always_ff @(posedge clk) begin
            for (int p = 0; p < PE; p++) begin
                for (int j = 0; j < NK; j++) begin
                    logic signed [NB-1:0] sum;
                    logic [NB-1:0] usum;
                    logic signed [NBP-1:0] term;   // a leaf or node, sign-extended by the signed addition
                    logic [NBP-1:0] uterm;         // xnor: zero-extended
                    sum = '0;
                    usum = '0;
                    for (int i = 0; i < F; i++) begin
                        if (j*F + i < NP) begin
                            if (k == 1) begin
                                uterm = NBP'(leaf_t[(p*N0 + j*F + i)*PW +: PW]);  // NBP = PW at stage 1
                            end else begin
                                uterm = NBP'(tr[(((k > 1 ? k - 2 : 0)*PE + p)*N1 + j*F + i)*ACC_BITS +: NBN]);
                            end
                            term = uterm;
                            /* verilator lint_off WIDTHEXPAND */
                            /* verilator lint_off WIDTHTRUNC */
                            sum = sum + term;     // modulo 2^NB when a leaf is wider (NB capped at ACC_BITS)
                            usum = usum + uterm;
                            /* verilator lint_on WIDTHTRUNC */
                            /* verilator lint_on WIDTHEXPAND */
                        end
                    end
                    tr[(((k-1)*PE + p)*N1 + j)*ACC_BITS +: NB] <= MODE == 0 ? usum : sum;
                end
            end
        end
    end

    localparam int NBT = node_bits(T);
    logic [PE*ACC_BITS-1:0] dot_c;
    always_comb begin
        for (int p = 0; p < PE; p++) begin
            logic signed [NBT-1:0] root;
            logic [NBT-1:0] uroot;
            logic signed [ACC_BITS-1:0] ext;   // sign-extended by assignment (no size cast: see the leaves)
            logic [ACC_BITS-1:0] uext;
            uroot = tr[(((T-1)*PE + p)*N1)*ACC_BITS +: NBT];
            root = uroot;
            /* verilator lint_off WIDTHEXPAND */
            ext = root;
            uext = uroot;
            /* verilator lint_on WIDTHEXPAND */
            dot_c[p*ACC_BITS +: ACC_BITS] = MODE == 0 ? uext : ext;
        end
    end

    // side band through the tree: valid, first/last column fold, neuron fold
    logic [T-1:0] v_t, first_t, last_t;
    logic [T*NFW-1:0] nf_t;
    always_ff @(posedge clk) begin
        if (rst) begin
            v_t <= '0;
        end else begin
            v_t <= T'({v_t, v_l});
        end
        first_t <= T'({first_t, first_l});
        last_t <= T'({last_t, last_l});
        nf_t <= (T*NFW)'({nf_t, nf_l});
    end
    wire logic v_c = v_t[T-1];
    wire logic first_c = first_t[T-1];
    wire logic last_c = last_t[T-1];
    wire logic [NFW-1:0] nf_c = nf_t[(T-1)*NFW +: NFW];

    // ---- stage C: accumulate; a finished row fold moves on to D ----------------------------------------
    logic [PE*ACC_BITS-1:0] acc, acc_next, res_d;
    logic v_d;
    always_comb begin
        for (int p = 0; p < PE; p++) begin
            acc_next[p*ACC_BITS +: ACC_BITS] = (first_c ? ACC_BITS'(0) : acc[p*ACC_BITS +: ACC_BITS])
                                               + dot_c[p*ACC_BITS +: ACC_BITS];
        end
    end
    always_ff @(posedge clk) begin
        if (rst) begin
            v_d <= 1'b0;
        end else begin
            v_d <= v_c && last_c;
        end
        if (v_c) begin
            acc <= acc_next;
        end
        if (v_c && last_c) begin
            res_d <= acc_next;
        end
    end

    // ---- stage D: activation (comparisons registered when NT > 0), into the output FIFO ----------------
    logic [PE*OUT_BITS-1:0] y_d;
    logic v_y;  // y_d is a finished row fold
    if (NT > 0 && TH_SEARCH) begin : g_search
        // one threshold per lane and stage read a cycle (8-bit outputs: 8 stages of 1..128 thresholds a row
        // instead of one word of 255), the row is the neuron fold
        logic [NFW-1:0] nf_d;
        always_ff @(posedge clk) begin
            if (v_c && last_c) begin
                nf_d <= nf_c;
            end
        end
        pqhw_mt_search #(
            .LANES(PE), .IN_BITS(ACC_BITS), .IN_SIGNED(ACC_SIGNED), .NT(NT), .TH_BITS(TH_BITS), .BIAS(BIAS),
            .OUT_BITS(OUT_BITS), .ROWS(TD), .SHARED(TH_SHARED), .MEM_STYLE(MEM_STYLE), .T_FILE(T_FILE),
            .T_INIT(T_INIT), .WREG_STAGES(TH_WREG)
        ) u_mt (
            .clk(clk), .in_data(res_d), .in_row(TH_SHARED ? TAW'(0) : TAW'(nf_d)), .out_data(y_d)
        );
        logic [MR-1:0] v_m;  // valid through the search's MR cycles
        always_ff @(posedge clk) begin
            if (rst) begin
                v_m <= '0;
            end else begin
                v_m <= MR'({v_m, v_d});
            end
        end
        assign v_y = v_m[MR-1];
    end else if (NT > 0) begin : g_act
        logic [TW-1:0] t_d;
        logic [PE*NT*TH_BITS-1:0] t_lanes;
        pqhw_mem #(
            .WIDTH(TW), .DEPTH(TD), .STYLE(MEM_STYLE), .INIT_FILE(T_FILE), .INIT(T_INIT)
        ) u_tmem (
            .clk(clk), .en(v_c && last_c), .addr(TH_SHARED ? TAW'(0) : TAW'(nf_c)), .rdata(t_d)
        );
        // a threshold table output goes straight into a register, like the weight table's
        logic [TW-1:0] t_q;
        logic [PE*ACC_BITS-1:0] res_q;
        logic v_q;
        if (TR == 1) begin : g_t_reg
            always_ff @(posedge clk) begin
                if (rst) begin
                    v_q <= 1'b0;
                end else begin
                    v_q <= v_d;
                end
                t_q <= t_d;
                res_q <= res_d;
            end
        end else begin : g_t_const
            assign t_q = t_d;
            assign res_q = res_d;
            assign v_q = v_d;
        end
        if (TH_SHARED) begin : g_shared
            assign t_lanes = {PE{t_q}};
        end else begin : g_per_channel
            assign t_lanes = t_q;
        end
        pqhw_mt #(
            .LANES(PE), .IN_BITS(ACC_BITS), .IN_SIGNED(ACC_SIGNED), .NT(NT), .TH_BITS(TH_BITS),
            .BIAS(BIAS), .OUT_BITS(OUT_BITS), .REG(MR), .SORTED(TH_SORTED)
        ) u_mt (
            .clk(clk), .in_data(res_q), .thresholds(t_lanes), .out_data(y_d)
        );
        logic [MR-1:0] v_m;  // valid through the MR registers of pqhw_mt
        always_ff @(posedge clk) begin
            if (rst) begin
                v_m <= '0;
            end else begin
                v_m <= MR'({v_m, v_q});
            end
        end
        assign v_y = v_m[MR-1];
    end else begin : g_no_act
        assign v_y = v_d;
        always_comb begin
            for (int p = 0; p < PE; p++) begin
                y_d[p*OUT_BITS +: OUT_BITS] = {{(OUT_BITS - ACC_BITS){ACC_SIGNED & res_d[p*ACC_BITS + ACC_BITS - 1]}},
                                               res_d[p*ACC_BITS +: ACC_BITS]};
            end
        end
    end

    pqhw_credit_fifo #(
        .WIDTH(PE*OUT_BITS), .DEPTH(FD), .REG_CREDIT(1)
    ) u_out (
        .clk(clk), .rst(rst), .reserve(fire && last_sf), .credit_ok(credit_ok),
        .s_tdata(y_d), .s_tvalid(v_y),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready)
    );
endmodule

`default_nettype wire
