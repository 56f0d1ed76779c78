// Standalone MultiThreshold on a stream of CH-element vectors, PE elements a beat (FINN Thresholding).
// Per-channel thresholds are read per neuron fold from a constant table or a ROM; shared thresholds are one
// row used by every channel. One beat a cycle; credit-based like the MVAU, so s_axis_tready only depends
// on registered state.
`default_nettype none

module pqhw_threshold #(
    parameter int CH        = 4,   // channels per vector (PE divides CH)
    parameter int PE        = 1,   // channels per beat
    parameter int IN_BITS   = 8,   // bits of one input element
    parameter bit IN_SIGNED = 1,   // input elements are two's complement
    parameter int NT        = 1,   // thresholds per channel (>= 1)
    parameter bit TH_SHARED = 0,   // one threshold row for all channels
    parameter int TH_BITS   = 9,   // bits of one signed threshold (>= IN_BITS + 1, + 2 if unsigned input)
    parameter int BIAS      = 0,   // MultiThreshold out_bias
    parameter bit TH_SORTED = 0,   // every threshold row is non-decreasing: the count is decoded, not added
    parameter bit TH_SEARCH = 0,   // sorted rows found by binary search (pqhw_mt_search; T_INIT / T_FILE its tables)
    parameter int TH_WREG   = 0,   // search: deepest stages with a registered threshold (its WREG_STAGES)
    parameter int OUT_BITS  = 2,   // bits of one output element
    parameter int MEM_STYLE = 0,   // 0 constants from T_INIT, 1 ROM from T_FILE
    parameter T_FILE = "",         // $readmemh thresholds: word nf, lane p thr i at [(p*NT+i)*TH_BITS]
    parameter logic [(TH_SHARED ? 1 : CH)*(TH_SEARCH ? (1 << $clog2(NT + 1)) - 1 : NT)*TH_BITS-1:0]
        T_INIT = '0,               // threshold words, word a at [a*TW] (search: its stage tables)
    parameter int OUT_DEPTH = 4    // output FIFO beats; >= 4 sustains one beat per cycle
) (
    input  wire logic                     clk,
    input  wire logic                     rst,            // synchronous, active high
    input  wire logic [PE*IN_BITS-1:0]    s_axis_tdata,
    input  wire logic                     s_axis_tvalid,
    output logic                          s_axis_tready,
    output logic [PE*OUT_BITS-1:0]        m_axis_tdata,
    output logic                          m_axis_tvalid,
    input  wire logic                     m_axis_tready
);
    localparam int NF = CH / PE;
    localparam int TD = TH_SHARED ? 1 : NF;
    localparam int TW = (TH_SHARED ? 1 : PE) * NT * TH_BITS;
    localparam int TAW = TD > 1 ? $clog2(TD) : 1;
    localparam int SL = TH_SEARCH ? $clog2(NT + 1) + TH_WREG + 1 : 0;  // the search's latency
    localparam int FD = OUT_DEPTH + SL;  // output FIFO beats: the search's results in flight too

    if (CH < 1 || PE < 1 || CH % PE != 0) begin : g_bad_fold
        pqhw_error_threshold_pe_must_divide_ch u_err ();
    end
    if (NT < 1 || TH_BITS < IN_BITS + (IN_SIGNED ? 1 : 2) || OUT_DEPTH < 2) begin : g_bad_th
        pqhw_error_threshold_needs_nt_ge_1_th_bits_gt_in_bits_out_depth_ge_2 u_err ();
    end
    if (TH_SEARCH && !TH_SORTED) begin : g_bad_search
        pqhw_error_threshold_search_needs_sorted_thresholds u_err ();
    end

    logic [TAW-1:0] nf;
    logic credit_ok;  // a result slot is free in the output FIFO (pqhw_credit_fifo)
    wire logic fire = s_axis_tvalid && credit_ok;
    assign s_axis_tready = credit_ok;

    logic [PE*IN_BITS-1:0] x_b;
    logic v_b;
    always_ff @(posedge clk) begin
        if (rst) begin
            nf <= '0;
            v_b <= 1'b0;
        end else begin
            v_b <= fire;
            if (fire) begin
                nf <= (nf == TAW'(TD - 1)) ? '0 : nf + 1'b1;
            end
        end
        if (fire) begin
            x_b <= s_axis_tdata;
        end
    end

    logic [PE*OUT_BITS-1:0] y_b;
    logic v_y;  // y_b is a result
    if (TH_SEARCH) begin : g_search
        // one threshold per lane and stage read a cycle (pqhw_mt_search), the row is the beat's channel fold
        logic [TAW-1:0] nf_b;
        always_ff @(posedge clk) begin
            if (fire) begin
                nf_b <= nf;
            end
        end
        pqhw_mt_search #(
            .LANES(PE), .IN_BITS(IN_BITS), .IN_SIGNED(IN_SIGNED), .NT(NT), .TH_BITS(TH_BITS), .BIAS(BIAS),
            .OUT_BITS(OUT_BITS), .ROWS(TD), .SHARED(TH_SHARED), .MEM_STYLE(MEM_STYLE), .T_FILE(T_FILE),
            .T_INIT(T_INIT), .WREG_STAGES(TH_WREG)
        ) u_mt (
            .clk(clk), .in_data(x_b), .in_row(nf_b), .out_data(y_b)
        );
        logic [SL-1:0] v_s;
        always_ff @(posedge clk) begin
            v_s <= rst ? '0 : SL'({v_s, v_b});
        end
        assign v_y = v_s[SL-1];
    end else begin : g_parallel
        // The threshold word is registered once more before the comparators (t_c, with x_c and v_c beside it):
        // a block-RAM table's word then comes from the RAM's own output register (hw/ecp5_outreg.py), and a
        // LUT table is not merged into the comparator logic (on ECP5 that merge took 991 instead of 352 LUTs
        // for 64 channels, PE 4, 3 thresholds; bench/rtllib_compare.py). Latency 2; the credit FIFO's 4 beats
        // still sustain one beat a cycle (2 in flight + 1 held < 4).
        logic [TW-1:0] t_b, t_c;
        logic [PE*IN_BITS-1:0] x_c;
        logic v_c;
        always_ff @(posedge clk) begin
            v_c <= !rst && v_b;
            t_c <= t_b;
            x_c <= x_b;
        end
        pqhw_mem #(
            .WIDTH(TW), .DEPTH(TD), .STYLE(MEM_STYLE), .INIT_FILE(T_FILE), .INIT(T_INIT)
        ) u_tmem (
            .clk(clk), .en(fire), .addr(nf), .rdata(t_b)
        );

        logic [PE*NT*TH_BITS-1:0] t_lanes;
        if (TH_SHARED) begin : g_shared
            assign t_lanes = {PE{t_c}};
        end else begin : g_per_channel
            assign t_lanes = t_c;
        end

        pqhw_mt #(
            .LANES(PE), .IN_BITS(IN_BITS), .IN_SIGNED(IN_SIGNED), .NT(NT), .TH_BITS(TH_BITS),
            .BIAS(BIAS), .OUT_BITS(OUT_BITS), .SORTED(TH_SORTED)
        ) u_mt (
            .clk(clk), .in_data(x_c), .thresholds(t_lanes), .out_data(y_b)
        );
        assign v_y = v_c;
    end

    pqhw_credit_fifo #(
        .WIDTH(PE*OUT_BITS), .DEPTH(FD), .REG_CREDIT(0)
    ) u_out (
        .clk(clk), .rst(rst), .reserve(fire), .credit_ok(credit_ok),
        .s_tdata(y_b), .s_tvalid(v_y),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready)
    );
endmodule

`default_nettype wire
