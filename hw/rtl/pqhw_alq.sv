// Multi-bit binary-basis layer (ALQ, paper 003): MH x MW weights, each row the sum of up to NB binary bases
// 2^shift_i (2 plane_i - 1), times a streamed MW-vector, PE rows by SIMD columns a cycle, optional fused
// MultiThreshold. Each input element is split into its IN_BITS bit planes (the sign plane counts -2^k when
// IN_SIGNED); per lane, basis and plane the block counts popcount(plane AND bit_k) and popcount(bit_k), so
//
//   acc = sum_i sum_k c_k 2^(shift_i + k) (2 popcount(plane_i AND bit_k) - popcount(bit_k))
//
// (the xnor-popcount 2 popcount(XNOR(beta, d)) - n of {-1, +1} vectors, reduced to {0, 1} input bits). All NB
// bases and IN_BITS planes of a column fold are done in parallel, so a frame costs NF * SF cycles (NF = MH/PE,
// SF = MW/SIMD) in steady state, as pqhw_mvau: the first row fold reads the stream, the input buffer replays
// the vector for the others.
//
// Memories: bit-plane words (word nf*SF+sf: lane p, basis i, element s at bit (p*NB + i)*SIMD + s; 1 = +1),
// constants (P_INIT) or a ROM file; the exponent table (word nf: lane p, basis i at (p*NB + i)*(SH_BITS+1),
// {live, shift}; a slot that is not live adds nothing) is a constant. Sums wrap modulo 2^ACC_BITS, exact
// whenever the true accumulator range fits ACC_BITS (the kind sizes it so).
//
// Pipeline: B plane word and input beat registered; R registered again (block RAM outputs are slow); P the
// popcounts and the row fold's exponents, registered; S1 per basis the planes' terms summed narrow,
// registered; S2 each basis shifted by its exponent, registered; S3 the bases of a lane summed by a balanced
// tree, registered; C
// accumulate over the SF column folds; D thresholds [table read registered] compared, registered, counted;
// then the output FIFO. Flow control is credit based as in pqhw_mvau: a row fold starts only when its
// result has a slot in the output FIFO, so s_axis_tready depends on registered state only.
`default_nettype none

module pqhw_alq #(
    parameter int MW         = 4,   // matrix width: input vector length
    parameter int MH         = 4,   // matrix height: output vector length
    parameter int SIMD       = 1,   // input elements per beat (divides MW)
    parameter int PE         = 1,   // output elements per beat (divides MH)
    parameter int NB         = 1,   // basis slots per row (the largest per-row basis count)
    parameter int IN_BITS    = 4,   // bits of one input element (1..8)
    parameter bit IN_SIGNED  = 0,   // input elements are two's complement
    parameter int SH_BITS    = 1,   // bits of a basis shift
    parameter int ACC_BITS   = 16,  // accumulator bits (2..32)
    parameter bit ACC_SIGNED = 1,   // accumulator read as signed (thresholds, output extension)
    parameter int NT         = 0,   // thresholds per channel; 0 = no activation, output the accumulator
    parameter bit TH_SHARED  = 0,   // one threshold row for all channels instead of one per channel
    parameter int TH_BITS    = 17,  // bits of one signed threshold (>= ACC_BITS + 1, + 2 if unsigned, when NT > 0)
    parameter int BIAS       = 0,   // MultiThreshold out_bias
    parameter bit TH_SORTED  = 0,   // every threshold row is non-decreasing: the count is decoded, not added
    parameter int OUT_BITS   = 16,  // bits of one output element
    parameter int MEM_STYLE  = 0,   // bit planes and thresholds: 0 constants (P_INIT, T_INIT), 1 ROM files
    parameter P_FILE = "",          // $readmemh bit-plane words (layout above)
    parameter T_FILE = "",          // $readmemh thresholds: word nf, lane p thr i at [(p*NT+i)*TH_BITS]
    parameter logic [MH*NB*MW-1:0] P_INIT = '0,                           // bit-plane words, word a at [a*PE*NB*SIMD]
    parameter logic [MH*NB*(SH_BITS+1)-1:0] E_INIT = '0,                  // exponent table, word nf at [nf*PE*NB*(SH_BITS+1)]
    parameter logic [(NT > 0 ? (TH_SHARED ? 1 : MH) * NT * TH_BITS : 1)-1:0] T_INIT = '0,  // threshold words
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
    localparam int WD = NF * SF;                       // plane words
    localparam int WW = PE * NB * SIMD;                // bits per plane word
    localparam int EB = SH_BITS + 1;                   // bits per exponent entry
    localparam int EW = PE * NB * EB;                  // bits per exponent word
    localparam int TD = TH_SHARED ? 1 : NF;            // threshold words
    localparam int TW = (TH_SHARED ? 1 : PE) * (NT > 0 ? NT : 1) * TH_BITS;
    localparam int CW = $clog2(SIMD + 1);              // bits of a popcount
    localparam int VW = CW + IN_BITS + 2;              // signed bits of one basis' sum over the planes
    localparam int XW = VW > ACC_BITS ? VW : ACC_BITS; // that sum sign-extended before its shift
    localparam int SFW = SF > 1 ? $clog2(SF) : 1;
    localparam int NFW = NF > 1 ? $clog2(NF) : 1;
    localparam int WAW = WD > 1 ? $clog2(WD) : 1;
    localparam int TAW = TD > 1 ? $clog2(TD) : 1;
    localparam int MR = NT > 1 ? 2 : NT > 0 ? 1 : 0;   // registered threshold comparisons (and count)
    localparam int TR = NT > 0 && TD > 1 ? 1 : 0;      // threshold table read register
    localparam int NBL = NB > 1 ? $clog2(NB) : 0;      // levels of the bases' adder tree
    localparam int LAT = 7 + TR + MR;                  // cycles from issue to the output FIFO
    localparam int FD = OUT_DEPTH + LAT + 1;           // output FIFO beats (+1: the credit is registered)

    if (MW < 1 || MH < 1 || SIMD < 1 || PE < 1 || MW % SIMD != 0 || MH % PE != 0) begin : g_bad_fold
        pqhw_error_alq_simd_must_divide_mw_and_pe_divide_mh u_err ();
    end
    if (NB < 1 || IN_BITS < 1 || IN_BITS > 8 || SH_BITS < 1 || SH_BITS > 5) begin : g_bad_bases
        pqhw_error_alq_needs_nb_ge_1_in_bits_1_to_8_sh_bits_1_to_5 u_err ();
    end
    if (ACC_BITS < 2 || ACC_BITS > 32 || OUT_DEPTH < 2) begin : g_bad_acc
        pqhw_error_alq_acc_bits_2_to_32_and_out_depth_ge_2 u_err ();
    end
    if (NT > 0 && TH_BITS < ACC_BITS + (ACC_SIGNED ? 1 : 2)) begin : g_bad_th
        pqhw_error_alq_th_bits_must_exceed_acc_bits u_err ();
    end
    if (NT == 0 && OUT_BITS < ACC_BITS) begin : g_bad_out
        pqhw_error_alq_out_bits_must_hold_the_accumulator u_err ();
    end
    if (MEM_STYLE != 0 && MEM_STYLE != 1) begin : g_bad_mem
        pqhw_error_alq_mem_style_must_be_0_const_or_1_rom u_err ();
    end

    // ---- issue: fold counters, credit check, input buffer (as pqhw_mvau) -----------------------------
    logic [SFW-1:0] sf;
    logic [NFW-1:0] nf;
    logic [WAW-1:0] waddr;
    logic last_sf, from_stream;
    logic credit_ok;
    wire logic may_issue   = !last_sf || credit_ok;
    wire logic fire        = may_issue && (from_stream ? s_axis_tvalid : 1'b1);
    assign s_axis_tready   = from_stream && may_issue;

    logic [SIMD*IN_BITS-1:0] x_b;
    logic v_b, first_b, last_b;
    logic [NFW-1:0] nf_b;

    if (NF > 1) begin : g_ibuf
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
                sf <= last_sf ? '0 : sf + 1'b1;
                last_sf <= last_sf ? (SF == 1) : (sf == SFW'(SF - 2));
                if (last_sf) begin
                    nf <= (nf == NFW'(NF - 1)) ? '0 : nf + 1'b1;
                    from_stream <= (nf == NFW'(NF - 1));
                end
                waddr <= (waddr == WAW'(WD - 1)) ? '0 : waddr + 1'b1;
            end
        end
        if (fire) begin
            first_b <= (sf == '0);
            last_b <= last_sf;
            nf_b <= nf;
        end
    end

    logic [WW-1:0] p_b;
    pqhw_mem #(
        .WIDTH(WW), .DEPTH(WD), .STYLE(MEM_STYLE), .INIT_FILE(P_FILE), .INIT((WW*WD)'(P_INIT))
    ) u_pmem (
        .clk(clk), .en(fire), .addr(waddr), .rdata(p_b)
    );

    // ---- R: table output and input beat registered ----------------------------------------------------
    logic [SIMD*IN_BITS-1:0] x_r;
    logic [WW-1:0] p_r;
    logic v_r, first_r, last_r;
    logic [NFW-1:0] nf_r;
    always_ff @(posedge clk) begin
        if (rst) begin
            v_r <= 1'b0;
        end else begin
            v_r <= v_b;
        end
        x_r <= x_b;
        p_r <= p_b;
        first_r <= first_b;
        last_r <= last_b;
        nf_r <= nf_b;
    end

    // ---- P: popcounts of plane AND bit_k per lane and basis, popcount of bit_k, the fold's exponents ---
    logic [PE*NB*IN_BITS*CW-1:0] ones_p;
    logic [IN_BITS*CW-1:0] count_p;
    logic [EW-1:0] e_p;
    logic v_p, first_p, last_p;
    logic [NFW-1:0] nf_p;
    always_ff @(posedge clk) begin
        for (int k = 0; k < IN_BITS; k++) begin
            logic [CW-1:0] c;
            c = '0;
            for (int s = 0; s < SIMD; s++) begin
                c = c + CW'(x_r[s*IN_BITS + k]);
            end
            count_p[k*CW +: CW] <= c;
        end
        for (int p = 0; p < PE; p++) begin
            for (int i = 0; i < NB; i++) begin
                for (int k = 0; k < IN_BITS; k++) begin
                    logic [CW-1:0] c;
                    c = '0;
                    for (int s = 0; s < SIMD; s++) begin
                        c = c + CW'(x_r[s*IN_BITS + k] & p_r[(p*NB + i)*SIMD + s]);
                    end
                    ones_p[((p*NB + i)*IN_BITS + k)*CW +: CW] <= c;
                end
            end
        end
        e_p <= E_INIT[nf_r*EW +: EW];
        first_p <= first_r;
        last_p <= last_r;
        nf_p <= nf_r;
        if (rst) begin
            v_p <= 1'b0;
        end else begin
            v_p <= v_r;
        end
    end

    // ---- S1: per basis the planes' terms c_k 2^k (2 ones - count), exact in VW bits, registered with the
    // exponents ---------------------------------------------------------------------------------------------
    logic [PE*NB*VW-1:0] v_q;
    logic [EW-1:0] e_q;
    logic v_1, first_1, last_1;
    logic [NFW-1:0] nf_1;
    always_ff @(posedge clk) begin
        for (int p = 0; p < PE; p++) begin
            for (int i = 0; i < NB; i++) begin
                logic signed [VW-1:0] v;
                v = '0;
                for (int k = 0; k < IN_BITS; k++) begin
                    logic signed [VW-1:0] d;
                    d = (VW'(ones_p[((p*NB + i)*IN_BITS + k)*CW +: CW]) << 1) - VW'(count_p[k*CW +: CW]);
                    v = (IN_SIGNED && k == IN_BITS - 1) ? v - (d <<< k) : v + (d <<< k);
                end
                v_q[(p*NB + i)*VW +: VW] <= v;
            end
        end
        e_q <= e_p;
        first_1 <= first_p;
        last_1 <= last_p;
        nf_1 <= nf_p;
        if (rst) begin
            v_1 <= 1'b0;
        end else begin
            v_1 <= v_p;
        end
    end

    // ---- S2: each live basis shifted by its exponent (0 when not live), registered ------------------------
    logic [PE*NB*ACC_BITS-1:0] t_q;
    logic v_2, first_2, last_2;
    logic [NFW-1:0] nf_2;
    always_ff @(posedge clk) begin
        for (int p = 0; p < PE; p++) begin
            for (int i = 0; i < NB; i++) begin
                logic [EB-1:0] e;
                logic signed [VW-1:0] v;
                logic signed [XW-1:0] vx;
                e = e_q[(p*NB + i)*EB +: EB];
                v = v_q[(p*NB + i)*VW +: VW];
                /* verilator lint_off WIDTHEXPAND */
                vx = v;  // sign-extended by assignment (XW >= VW; Icarus 11 zero-extends a size cast of $signed)
                /* verilator lint_on WIDTHEXPAND */
                t_q[(p*NB + i)*ACC_BITS +: ACC_BITS] <= e[SH_BITS] ? ACC_BITS'(vx << e[SH_BITS-1:0]) : '0;
            end
        end
        first_2 <= first_1;
        last_2 <= last_1;
        nf_2 <= nf_1;
        if (rst) begin
            v_2 <= 1'b0;
        end else begin
            v_2 <= v_1;
        end
    end

    // ---- S3: the lane's bases summed by a balanced tree, modulo 2^ACC_BITS, registered --------------------
    logic [PE*ACC_BITS-1:0] dot_s;
    logic v_s, first_s, last_s;
    logic [NFW-1:0] nf_s;
    always_ff @(posedge clk) begin
        for (int p = 0; p < PE; p++) begin
            logic [NB*ACC_BITS-1:0] t;
            t = t_q[p*NB*ACC_BITS +: NB*ACC_BITS];
            for (int l = 0; l < NBL; l++) begin
                for (int j = 0; j < NB; j++) begin
                    if (j % (2 << l) == 0 && j + (1 << l) < NB) begin
                        t[j*ACC_BITS +: ACC_BITS] = t[j*ACC_BITS +: ACC_BITS] + t[(j + (1 << l))*ACC_BITS +: ACC_BITS];
                    end
                end
            end
            dot_s[p*ACC_BITS +: ACC_BITS] <= t[0 +: ACC_BITS];
        end
        first_s <= first_2;
        last_s <= last_2;
        nf_s <= nf_2;
        if (rst) begin
            v_s <= 1'b0;
        end else begin
            v_s <= v_2;
        end
    end
    wire logic v_c = v_s;
    wire logic first_c = first_s;
    wire logic last_c = last_s;
    wire logic [NFW-1:0] nf_c = nf_s;

    // ---- C: accumulate; a finished row fold moves on to D ----------------------------------------------
    logic [PE*ACC_BITS-1:0] acc, acc_next, res_d;
    logic v_d;
    always_comb begin
        for (int p = 0; p < PE; p++) begin
            acc_next[p*ACC_BITS +: ACC_BITS] = (first_c ? ACC_BITS'(0) : acc[p*ACC_BITS +: ACC_BITS])
                                               + dot_s[p*ACC_BITS +: ACC_BITS];
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

    // ---- D: activation (comparisons registered when NT > 0), into the output FIFO ----------------------
    logic [PE*OUT_BITS-1:0] y_d;
    logic v_y;
    if (NT > 0) begin : g_act
        logic [TW-1:0] t_d;
        logic [PE*NT*TH_BITS-1:0] t_lanes;
        pqhw_mem #(
            .WIDTH(TW), .DEPTH(TD), .STYLE(MEM_STYLE), .INIT_FILE(T_FILE), .INIT(T_INIT)
        ) u_tmem (
            .clk(clk), .en(v_c && last_c), .addr(TH_SHARED ? TAW'(0) : TAW'(nf_c)), .rdata(t_d)
        );
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
        logic [MR-1:0] v_m;
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
